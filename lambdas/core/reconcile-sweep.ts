/**
 * The reconcile / on-demand cleanup sweep over ports (store, Kamailio): per node it reads the
 * rows in scope (paged), THEN asks the node which peers are connected (never in parallel: a row
 * whose connection is alive cannot be missed), classifies, deletes by id and the same predicate,
 * and refreshes each affected (presentity, event) once on that node. A refresh that hits a
 * transient fault (node unreachable) after the deletes is queued as a refresh.requested follow-up
 * for the worker: the rows that named the presentity are gone, so no later sweep would redo it.
 */

import { classifyRpcError, type Fault } from "./classify.ts";
import {
  type CleanupReport,
  type CleanupRequest,
  emptyCounts,
  type NodeReport,
  type RefreshOutcome,
  type ReportRow,
  type RowReason,
  summarize,
} from "./cleanup-request.ts";
import { type Clock, clockOf } from "./clock.ts";
import type { RefreshRequested } from "./contract.ts";
import type { ContactStyle, DatabaseEngine, NodeConfig, NodeFacts } from "./fleet.ts";
import { refreshRequested } from "./follow-up.ts";
import { type ChosenRow, deleteGuarded } from "./kernel/delete-guarded.ts";
import { liveSetOf } from "./kernel/liveness.ts";
import { gateNode, SWEEP_POLICY } from "./kernel/node-gate.ts";
import { decideRefreshOutcome } from "./kernel/refresh-outcome.ts";
import { forEachBounded } from "./pool.ts";
import {
  type DeletedBy,
  type FollowUpSink,
  factsFromStatus,
  type KamailioClient,
  type RowFilter,
  type SweepStore,
  type Telemetry,
  type WatcherRow,
} from "./ports.ts";
import {
  type Classification,
  type ClassifyContext,
  contactPeer,
  kamailioPurgesExpired,
  peerKey,
  sharedTableRefusals,
} from "./reconcile.ts";

export interface SweepHooks {
  /** Progress of a long sweep (rows read so far on a node). */
  onProgress?(event: {
    node: string;
    phase: "rows" | "delete" | "refresh";
    done: number;
    total?: number;
  }): void;
}

export interface SweepDeps {
  store: SweepStore;
  /** The same Kamailio port the worker uses: status, core.tcp_list, presence.refreshWatchers. */
  kamailio: KamailioClient;
  engine: DatabaseEngine;
  fleet: readonly NodeConfig[];
  /** The events queue, for refreshes owed after deletes that hit a transient fault. */
  followUps?: FollowUpSink;
  hooks?: SweepHooks;
  now?: () => number;
  /** Audit records and metrics of the deletes and refreshes (default: none, e.g. a dry-run tool). */
  telemetry?: Telemetry;
  /** Which path the audit records name: the reconciler (default), the on-demand cleanup, or kwc. */
  deletedBy?: DeletedBy;
}

/** Telemetry that records nothing. */
export const SILENT_TELEMETRY: Telemetry = {
  count: () => {},
  audit: () => {},
  ignored: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

export interface SweepOptions {
  /** Nodes swept at once. */
  concurrency?: number;
  /** Epoch ms after which no new node (or page) is started; what is left is reported. */
  deadline?: number;
  deleteChunk?: number;
  expiredGraceSeconds?: number;
  /** Cap on rows listed per node in the report (the Lambda response is limited to 6 MB). */
  maxListedRows?: number;
}

export class RequestError extends Error {
  override name = "RequestError";
}

const DEFAULT_DELETE_CHUNK = 1000;

function splitAor(aor: string): { username: string; domain: string } {
  const bare = aor.replace(/^sips?:/, "");
  const at = bare.indexOf("@");
  return { username: bare.slice(0, at), domain: bare.slice(at + 1) };
}

function filterFor(node: NodeConfig, request: CleanupRequest, nowSeconds: number, grace: number): RowFilter {
  const filter: RowFilter = { socketInfo: node.socketInfo };
  switch (request.scope) {
    case "presentity":
      filter.presentity = request.presentity;
      if (request.event) filter.event = request.event;
      break;
    case "watcher":
      filter.watcher = splitAor(request.watcher);
      break;
    case "dialog":
      filter.dialog = request.dialog;
      break;
    case "expired":
      filter.expiresBefore = nowSeconds - grace;
      break;
    case "node":
    case "reconcile":
      break;
  }
  return filter;
}

function emptyReport(node: string): NodeReport {
  return {
    node,
    outcome: "done",
    warnings: [],
    counts: emptyCounts(),
    rows: [],
    truncated: false,
    deleted: 0,
    refreshes: [],
    pages: 0,
    connections: 0,
    durationMs: 0,
  };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? `${err.name === "Error" ? "" : `${err.name}: `}${err.message}` : String(err);
}

/** One shared object per (presentity, event) of a node: rows point at it, refreshes iterate it. */
interface RefreshTarget {
  presentity: string;
  event: string;
}

/**
 * What the sweep keeps of a row between reading it and deleting it: the id and the `expires` the
 * delete needs, the contact's peer (already parsed) for the classification, and what the report
 * lists. Presentity, event and peer strings are shared between rows rather than copied per row.
 */
interface KeptRow {
  id: number;
  expires: number;
  /** peerKey() of the WebSocket peer the contact names; undefined when it names none. */
  peer: string | undefined;
  target: RefreshTarget;
  callId: string;
  toTag: string;
  fromTag: string;
  contact: string;
  reason: RowReason;
}

/** The rows of one node as read, with their repeated strings interned. */
class KeptRows {
  readonly rows: KeptRow[] = [];
  readonly #targets = new Map<string, RefreshTarget>();
  readonly #peers = new Map<string, string>();

  constructor(private readonly contactStyle: ContactStyle) {}

  add(row: WatcherRow): void {
    const parsed = contactPeer(row.contact, this.contactStyle);
    this.rows.push({
      id: row.id,
      expires: row.expires,
      peer: parsed ? this.#intern(peerKey(parsed)) : undefined,
      target: this.#target(row.presentityUri, row.event),
      callId: row.callId,
      toTag: row.toTag,
      fromTag: row.fromTag,
      contact: row.contact,
      reason: "live",
    });
  }

  #intern(peer: string): string {
    const known = this.#peers.get(peer);
    if (known !== undefined) return known;
    this.#peers.set(peer, peer);
    return peer;
  }

  #target(presentity: string, event: string): RefreshTarget {
    const key = `${event}\u0000${presentity}`;
    let target = this.#targets.get(key);
    if (!target) {
      target = { presentity, event };
      this.#targets.set(key, target);
    }
    return target;
  }
}

/** classifyRow()'s rules (reconcile.ts) on a kept row, whose peer was parsed when it was read. */
export function classifyKept(
  row: Pick<KeptRow, "expires" | "peer">,
  ctx: Omit<ClassifyContext, "contactStyle">,
): Classification {
  if (ctx.purgeExpired && row.expires + ctx.expiredGraceSeconds < ctx.now) return "expired";
  if (row.peer === undefined) return "live";
  return ctx.livePeers.has(row.peer) ? "live" : "conn-closed";
}

function reportRow(nodeId: string, row: KeptRow): ReportRow {
  return {
    id: row.id,
    node: nodeId,
    key: { callId: row.callId, toTag: row.toTag, fromTag: row.fromTag },
    presentity: row.target.presentity,
    event: row.target.event,
    contact: row.contact,
    ...(row.peer ? { peer: row.peer } : {}),
    reason: row.reason,
  };
}

/**
 * Rows whose contact names no WebSocket peer are judged by expiry only. Often they are UDP/TCP
 * watchers (nothing to do); on a WS listener they come from add_contact_alias() without
 * msg_apply_changes(), and then no death of theirs is ever noticed.
 */
export function noPeerWarning(nodeId: string, rows: number): string {
  return (
    `node ${nodeId}: ${rows} rows name no WebSocket peer in their contact, so only their expiry can make them stale. ` +
    "If they are WebSocket watchers, call msg_apply_changes() after add_contact_alias(), or use " +
    "fix_nated_contact() or set_contact_alias() (the two supported styles, kamailio/README.md)."
  );
}

/** What the kernel's guarded delete audits of a swept row. */
function chosenOf(row: KeptRow): ChosenRow {
  return {
    row: {
      id: row.id,
      presentityUri: row.target.presentity,
      event: row.target.event,
      contact: row.contact,
      callId: row.callId,
      toTag: row.toTag,
      fromTag: row.fromTag,
    },
    reason: row.reason === "live" ? "requested" : row.reason,
    peer: row.peer,
  };
}

const guardOf = (row: KeptRow) => ({ id: row.id, expires: row.expires });

function byId(rows: readonly KeptRow[], id: number): KeptRow {
  const row = rows.find((r) => r.id === id);
  if (!row) throw new Error(`deleted row ${id} was not chosen`);
  return row;
}

/** The fault of one refresh, classified as the worker classifies it (a 500 keeps its per-version meaning). */
async function refreshFault(
  deps: SweepDeps,
  node: NodeConfig,
  facts: NodeFacts,
  presentity: string,
  event: string,
): Promise<Fault | undefined> {
  try {
    await deps.kamailio.refreshWatchers(node, presentity, event);
    return undefined;
  } catch (err) {
    return classifyRpcError(err, "presence.refreshWatchers", facts, deps.engine);
  }
}

function refreshOutcomeOf(presentity: string, event: string, fault: Fault | undefined): RefreshOutcome {
  if (!fault) return { presentity, event, outcome: "ok" };
  const message = fault.kind === "refresh-fault" ? `${fault.detail}: ${fault.meaning}` : fault.detail;
  return { presentity, event, outcome: "failed", message };
}

/** Sweeps one node, as docs/reconcile.md lists the steps. Never throws: faults end up in the report. */
export async function sweepNode(
  deps: SweepDeps,
  node: NodeConfig,
  request: CleanupRequest,
  options: SweepOptions = {},
): Promise<NodeReport> {
  const clock = clockOf(deps.now);
  const started = clock.now();
  const report = emptyReport(node.id);
  const finish = (patch: Partial<NodeReport>): NodeReport =>
    Object.assign(report, patch, { durationMs: clock.now() - started });
  try {
    const before = await statusOf(deps, node); //                   1. identity and mode, then the gate
    report.bootId = before.bootId;
    const sockets = await deps.store.socketsInTable(node.watchersTable);
    const gate = gateNode(node, before, deps.engine, SWEEP_POLICY, deps.fleet, sockets);
    report.warnings.push(...gate.warnings);
    if (gate.refusal) return finish({ outcome: "refused", message: gate.refusal });
    const filter = filterFor(node, request, Math.floor(started / 1000), options.expiredGraceSeconds ?? 30);
    const kept = await readAllRows(deps, node, filter, report, () => outOfTime(clock, options)); // 2.
    if (!kept) {
      const message = `time budget ran out while reading rows; nothing deleted on ${node.id}`;
      return finish({ outcome: "not-reached", message });
    }
    const after = await connectionsAfterRows(deps, node, before.bootId, report); // 3. strictly after
    const stale = classifyAll(deps, node, kept, request, options, report, after, started); //  4.
    if (request.dryRun || stale.length === 0) return finish({ outcome: "done" });
    const targets = await deleteStale(deps, node, stale, filter, options, report); //         5.
    const refreshes = await refreshTargets(deps, node, after.facts, targets, report, clock); // 6.
    return finish({ outcome: "done", refreshes });
  } catch (err) {
    return finish({ outcome: "error", message: `node ${node.id}: ${errorMessage(err)}` });
  }
}

const outOfTime = (clock: Clock, options: SweepOptions) =>
  options.deadline !== undefined && clock.now() >= options.deadline;

/** Step 2: every row in scope, paged on id by the store, kept lean; undefined when time ran out. */
async function readAllRows(
  deps: SweepDeps,
  node: NodeConfig,
  filter: RowFilter,
  report: NodeReport,
  timeIsUp: () => boolean,
): Promise<KeptRows | undefined> {
  const kept = new KeptRows(node.contactStyle);
  let afterId = 0;
  for (;;) {
    if (timeIsUp()) return undefined;
    const page = await deps.store.readPage(node.watchersTable, filter, afterId);
    report.pages++;
    for (const row of page.rows) kept.add(row);
    deps.hooks?.onProgress?.({ node: node.id, phase: "rows", done: kept.rows.length });
    const last = page.rows.at(-1);
    if (page.done || !last) return kept;
    afterId = last.id;
  }
}

/** The node's facts from its status endpoint (the sweep never falls back to the config). */
async function statusOf(deps: SweepDeps, node: NodeConfig): Promise<NodeFacts & { bootId: string }> {
  const facts = factsFromStatus(node, await deps.kamailio.status(node));
  return { ...facts, bootId: facts.bootId ?? "unknown" };
}

interface AfterRows {
  live: Set<string>;
  facts: NodeFacts;
}

/** Step 3: the node's connections and status, asked after the rows were read. */
async function connectionsAfterRows(
  deps: SweepDeps,
  node: NodeConfig,
  bootBefore: string,
  report: NodeReport,
): Promise<AfterRows> {
  const connections = await deps.kamailio.tcpList(node);
  report.connections = connections.length;
  const after = await statusOf(deps, node);
  if (after.bootId !== bootBefore)
    report.warnings.push(`node ${node.id} restarted during the sweep (boot ${bootBefore} → ${after.bootId})`);
  report.bootId = after.bootId;
  return { live: liveSetOf(connections), facts: after };
}

/** Step 4: each row's reason (counted and listed); returns the rows to delete, up to the limit. */
function classifyAll(
  deps: SweepDeps,
  node: NodeConfig,
  kept: KeptRows,
  request: CleanupRequest,
  options: SweepOptions,
  report: NodeReport,
  after: AfterRows,
  startedMs: number,
): KeptRow[] {
  const ctx = {
    livePeers: after.live,
    now: Math.floor(startedMs / 1000),
    purgeExpired: request.scope === "expired" || !kamailioPurgesExpired(after.facts.kamailioVersion),
    expiredGraceSeconds: options.expiredGraceSeconds ?? 30,
  };
  const stale: KeptRow[] = [];
  let noPeer = 0;
  for (const row of kept.rows) {
    let reason: RowReason = classifyKept(row, ctx);
    if (reason === "live" && row.peer === undefined) noPeer++;
    // `expired` by hand: only expired rows; a row merely disconnected is left to reconcile.
    if (request.scope === "expired" && reason === "conn-closed") reason = "live";
    if (reason === "live" && request.includeLive) reason = "requested";
    row.reason = reason;
    report.counts[reason]++;
    if (reason === "live") continue;
    if (stale.length >= request.limit) report.truncated = true;
    else stale.push(row);
  }
  if (noPeer > 0) {
    (deps.telemetry ?? SILENT_TELEMETRY).count("GuardKeepsNoPeer", noPeer);
    report.warnings.push(noPeerWarning(node.id, noPeer));
  }
  const maxListed = options.maxListedRows ?? Number.POSITIVE_INFINITY;
  const shown = request.list === "all" ? kept.rows : stale;
  report.rows = shown.slice(0, maxListed).map((row) => reportRow(node.id, row));
  if (shown.length > maxListed) report.warnings.push(`${shown.length - maxListed} more rows not listed`);
  return stale;
}

/** Step 5: the kernel's guarded delete, in chunks; returns the (presentity, event) pairs touched. */
async function deleteStale(
  deps: SweepDeps,
  node: NodeConfig,
  stale: readonly KeptRow[],
  filter: RowFilter,
  options: SweepOptions,
  report: NodeReport,
): Promise<Set<RefreshTarget>> {
  const chunk = options.deleteChunk ?? DEFAULT_DELETE_CHUNK;
  const targets = new Set<RefreshTarget>();
  for (let i = 0; i < stale.length; i += chunk) {
    const part = stale.slice(i, i + chunk);
    const deleted = await deleteGuarded(
      deps.telemetry ?? SILENT_TELEMETRY,
      node,
      deps.deletedBy ?? "reconciler",
      part.map(chosenOf),
      () => deps.store.deleteRows(node.watchersTable, part.map(guardOf), filter),
    );
    report.deleted += deleted.length;
    for (const d of deleted) targets.add(byId(part, d.row.id).target);
    deps.hooks?.onProgress?.({ node: node.id, phase: "delete", done: i + part.length, total: stale.length });
  }
  return targets;
}

/**
 * Step 6: one refresh per pair, always (the rows' deaths are unknown: bounding by the previous
 * sweep is not safe, docs/reconcile.md); what a fault becomes is the worker's decideRefreshOutcome.
 */
async function refreshTargets(
  deps: SweepDeps,
  node: NodeConfig,
  facts: NodeFacts,
  targets: ReadonlySet<RefreshTarget>,
  report: NodeReport,
  clock: Clock,
): Promise<RefreshOutcome[]> {
  const telemetry = deps.telemetry ?? SILENT_TELEMETRY;
  const refreshes: RefreshOutcome[] = [];
  const owed: { outcome: RefreshOutcome; followUp: RefreshRequested }[] = [];
  // No death time bounds the window here (refresh-policy.ts): every presentity touched is refreshed.
  telemetry.count("RefreshSent", targets.size, { reason: "no-death-time" });
  for (const { presentity, event } of targets) {
    const fault = await refreshFault(deps, node, facts, presentity, event);
    const decision = decideRefreshOutcome(fault, {
      askedByEvents: false,
      canFollowUp: deps.followUps !== undefined,
    });
    const outcome = refreshOutcomeOf(presentity, event, fault);
    refreshes.push(outcome);
    if (decision !== "follow-up" && decision !== "retry") telemetry.count(REFRESH_METRIC[decision]);
    if (decision === "follow-up") {
      const followUp = refreshRequested(node.id, { presentityUri: presentity, event }, clock.now());
      owed.push({ outcome, followUp });
    }
    deps.hooks?.onProgress?.({
      node: node.id,
      phase: "refresh",
      done: refreshes.length,
      total: targets.size,
    });
  }
  await sendOwed(deps, node, owed, report);
  return refreshes;
}

const REFRESH_METRIC = { ok: "RefreshOk", failed: "RefreshFailed", degraded: "RefreshDegraded" } as const;

/** Refreshes owed after the deletes (node unreachable): refresh.requested on the follow-up queue. */
async function sendOwed(
  deps: SweepDeps,
  node: NodeConfig,
  owed: readonly { outcome: RefreshOutcome; followUp: RefreshRequested }[],
  report: NodeReport,
): Promise<void> {
  if (owed.length === 0 || !deps.followUps) return;
  try {
    await deps.followUps.send(owed.map((o) => o.followUp));
    (deps.telemetry ?? SILENT_TELEMETRY).count("RefreshDeferred", owed.length);
    for (const o of owed) {
      o.outcome.outcome = "deferred";
      o.outcome.message = `${o.outcome.message}; a refresh.requested follow-up was queued`;
    }
  } catch (err) {
    report.warnings.push(
      `node ${node.id}: ${owed.length} refreshes owed after the deletes could not be queued (${errorMessage(err)}); their survivors get the state with the next change of each presentity`,
    );
  }
}

/** Runs a request over the nodes it names (all, or one) with bounded parallelism and a deadline. */
export async function runCleanup(
  deps: SweepDeps,
  request: CleanupRequest,
  options: SweepOptions = {},
): Promise<CleanupReport> {
  const clock = clockOf(deps.now);
  const startedAt = new Date(clock.now());
  const nodes = request.node ? deps.fleet.filter((n) => n.id === request.node) : [...deps.fleet];
  if (request.node && nodes.length === 0) {
    throw new RequestError(
      `unknown node "${request.node}"; the fleet config has: ${deps.fleet.map((n) => n.id).join(", ") || "(none)"}`,
    );
  }
  const shared = sharedTableRefusals(deps.fleet);
  const reports: NodeReport[] = new Array(nodes.length);
  await forEachBounded(nodes, options.concurrency ?? 4, async (node, i) => {
    const sharedMessage = shared.get(node.id);
    if (sharedMessage) {
      reports[i] = { ...emptyReport(node.id), outcome: "refused", message: sharedMessage };
    } else if (outOfTime(clock, options)) {
      reports[i] = {
        ...emptyReport(node.id),
        outcome: "not-reached",
        message: "time budget ran out before this node",
      };
    } else {
      reports[i] = await sweepNode(deps, node, request, options);
    }
  });
  return summarize(request, startedAt, reports, clock.now());
}
