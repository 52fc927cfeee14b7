/**
 * Step 3, per node: boot admission → gate → candidate rows (first) → live peers (strictly after)
 * → the guard's verdict per row (pure, kernel/guard.ts) → the guarded delete with its audit and
 * metrics (kernel/delete-guarded.ts) → the refreshes owed. A statement that fails on the data one
 * event carried is split until that event is found and dead-lettered alone.
 */
import {
  classifyRpcError,
  classifyStoreError,
  type Fault,
  isDataError,
  RpcFaultError,
  RpcTransportError,
} from "../classify.ts";
import { factsFromConfig, type NodeConfig } from "../fleet.ts";
import { bootProblem } from "../kernel/admission.ts";
import { type ChosenRow, deleteGuarded } from "../kernel/delete-guarded.ts";
import { judgeRow, type Match, wsPeerKey } from "../kernel/guard.ts";
import { livePeers } from "../kernel/liveness.ts";
import { gateNode, WORKER_POLICY } from "../kernel/node-gate.ts";
import { peerKey, peersOfContact } from "../peer.ts";
import { liveAmongKeys } from "../peer-liveness.ts";
import { type DialogWork, dialogKeyId, type NodePlan, type PeerWork, type SourcedEvent } from "../plan.ts";
import { scopeOf, type WatcherCriteria, type WatcherRow } from "../ports.ts";
import type { BatchContext } from "./context.ts";
import { deleteGroups } from "./delete-groups.ts";

/** The events of one node still to act on: split in halves when a statement fails on their data. */
interface NodeWork {
  peers: PeerWork[];
  dialogs: DialogWork[];
}

const sourcesOf = (work: NodeWork): SourcedEvent[] => [
  ...work.peers.flatMap((p) => p.sources),
  ...work.dialogs.flatMap((d) => d.sources),
];

export async function cleanNode(ctx: BatchContext, plan: NodePlan): Promise<void> {
  const { node } = plan;
  const all = sourcesOf({ peers: [...plan.peers.values()], dialogs: [...plan.dialogs.values()] });
  let facts: Awaited<ReturnType<BatchContext["facts"]["current"]>>;
  try {
    const boots = new Set(all.map((s) => (s.event as { boot: string }).boot));
    facts = await ctx.facts.current(node, boots);
  } catch (error) {
    const fault = classifyRpcError(error, "kwc status", factsFromConfig(node), ctx.engine);
    return failWork(ctx, node, all, fault);
  }
  const work = admitByBoot(ctx, plan, facts.bootId);
  const admitted = sourcesOf(work);
  if (admitted.length === 0) return;
  const gate = gateNode(node, facts, ctx.engine, WORKER_POLICY);
  for (const warning of gate.warnings) ctx.ledger.log.warn("node gate", { node: node.id, warning });
  if (gate.refusal) {
    ctx.ledger.log.error("cleanup refused", { node: node.id, reason: gate.refusal });
    return ctx.ledger.deadLetter(admitted, `${gate.refusal} (cleanup refused)`, "EventsRefused");
  }
  await cleanInSlices(ctx, node, work);
}

/** Keys (peers and dialogs) cleaned at a time: the batch checks its deadline between slices. */
export const KEYS_PER_SLICE = 100;

/**
 * A mass disconnect's node work in slices. A slice starts only if it can end by the deadline,
 * judged by the longest slice so far (a slice of 100 dead BLF tabs is 10,000 rows: seconds through
 * the Data API); the slices not begun are retried.
 */
async function cleanInSlices(ctx: BatchContext, node: NodeConfig, work: NodeWork): Promise<void> {
  const slices = sliced(work, KEYS_PER_SLICE);
  let longest = 0;
  for (const [i, slice] of slices.entries()) {
    const start = ctx.clock.now();
    if (start + longest >= ctx.deadline) {
      const fault: Fault = { kind: "transient", detail: "the invocation's time budget ran out" };
      return ctx.ledger.retry(slices.slice(i).flatMap(sourcesOf), fault, `cleanup on node ${node.id}`);
    }
    await cleanWork(ctx, node, slice);
    longest = Math.max(longest, ctx.clock.now() - start);
  }
}

/** Only events of the node's current boot act; the others are ignored, counted and audited. */
function admitByBoot(ctx: BatchContext, plan: NodePlan, currentBoot: string | undefined): NodeWork {
  const admit = <W extends { sources: SourcedEvent[] }>(w: W): W | undefined => {
    const sources = w.sources.filter((s) => {
      const problem = bootProblem((s.event as { boot: string }).boot, currentBoot);
      if (problem) ctx.ledger.ignored(s, "boot", problem);
      return !problem;
    });
    return sources.length > 0 ? { ...w, sources } : undefined;
  };
  return {
    peers: [...plan.peers.values()].map(admit).filter((w) => w !== undefined),
    dialogs: [...plan.dialogs.values()].map(admit).filter((w) => w !== undefined),
  };
}

async function cleanWork(ctx: BatchContext, node: NodeConfig, work: NodeWork): Promise<void> {
  try {
    await deleteStale(ctx, node, work);
  } catch (error) {
    const size = keyCount(work);
    if (isDataError(error) && size > 1) {
      ctx.ledger.log.count("StatementsBisected");
      ctx.ledger.log.warn("statement failed on its data; splitting it", { node: node.id, size });
      const [a, b] = halves(work);
      await cleanWork(ctx, node, a);
      return cleanWork(ctx, node, b);
    }
    const fault =
      error instanceof RpcFaultError || error instanceof RpcTransportError
        ? classifyRpcError(error, "core.tcp_list", factsFromConfig(node), ctx.engine)
        : classifyStoreError(error);
    failWork(ctx, node, sourcesOf(work), fault);
  }
}

function halves(work: NodeWork): [NodeWork, NodeWork] {
  const [a = emptyWork(), b = emptyWork()] = sliced(work, Math.ceil(keyCount(work) / 2));
  return [a, b];
}

const keyCount = (work: NodeWork) => work.peers.length + work.dialogs.length;
const emptyWork = (): NodeWork => ({ peers: [], dialogs: [] });

/** The work in consecutive parts of at most `size` keys (peers first, then dialogs). */
function sliced(work: NodeWork, size: number): NodeWork[] {
  const items = [...work.peers.map((p) => ({ p })), ...work.dialogs.map((d) => ({ d }))];
  const out: NodeWork[] = [];
  for (let i = 0; i < items.length; i += Math.max(1, size)) {
    const list = items.slice(i, i + Math.max(1, size));
    out.push({
      peers: list.flatMap((x) => ("p" in x ? [x.p] : [])),
      dialogs: list.flatMap((x) => ("d" in x ? [x.d] : [])),
    });
  }
  return out;
}

function failWork(ctx: BatchContext, node: NodeConfig, sources: SourcedEvent[], fault: Fault): void {
  if (fault.kind !== "permanent") {
    ctx.ledger.retry(sources, fault, `cleanup on node ${node.id}`);
    return;
  }
  ctx.ledger.log.error("cleanup failed permanently", { node: node.id, detail: fault.detail });
  ctx.ledger.deadLetter(sources, `cleanup on node ${node.id} failed: ${fault.detail}`);
}

interface Candidate {
  row: WatcherRow;
  match: Match;
  reason: ChosenRow["reason"];
  source: SourcedEvent | undefined;
}

/** Which event each pre-selected row answers to (byte-exact dialog key, or the peer its contact names). */
function matchRows(rows: readonly WatcherRow[], work: NodeWork, node: NodeConfig): Candidate[] {
  const dialogs = new Map(work.dialogs.map((d) => [dialogKeyId(d.key), d]));
  const peers = new Map(work.peers.map((w, order) => [peerKey(w.peer), { work: w, order }]));
  const out: Candidate[] = [];
  for (const row of rows) {
    const d = dialogs.get(dialogKeyId(row));
    if (d) {
      const version = maxVersion(d);
      out.push({ row, match: { by: "dialog", version }, reason: "notify.failed", source: d.sources[0] });
      continue;
    }
    const p = firstPeerOf(row.contact, peers, node);
    if (p)
      out.push({
        row,
        match: { by: "peer", peer: p.peer },
        reason: "connection.closed",
        source: p.sources[0],
      });
  }
  return out;
}

/**
 * The batch's first peer (in event order) that the contact names: a map lookup per peer the contact
 * names, not a scan of every peer per row (a mass disconnect is 100 rows × hundreds of peers).
 */
function firstPeerOf(
  contact: string,
  peers: ReadonlyMap<string, { work: PeerWork; order: number }>,
  node: NodeConfig,
): PeerWork | undefined {
  let first: { work: PeerWork; order: number } | undefined;
  for (const named of peersOfContact(contact, node.contactStyle)) {
    const hit = peers.get(peerKey(named));
    if (hit && (first === undefined || hit.order < first.order)) first = hit;
  }
  return first?.work;
}

/** The newest failed NOTIFY of a dialog in this batch: the row must still be at its version. */
function maxVersion(d: DialogWork): number | undefined {
  const versions = d.sources.map((s) => s.event.version).filter((v) => v !== undefined);
  return versions.length > 0 ? Math.max(...versions) : undefined;
}

async function deleteStale(ctx: BatchContext, node: NodeConfig, work: NodeWork): Promise<void> {
  const scope = scopeOf(node);
  // Selected by key alone (no version), so that a row re-subscribed since is seen, judged and counted.
  const select: WatcherCriteria = {
    peers: work.peers.map((p) => p.peer),
    dialogs: work.dialogs.map((d) => d.key),
  };
  const candidates = matchRows(await ctx.store.selectCandidates(scope, select), work, node);
  if (candidates.length === 0) return;
  // Asked about these rows' peers only (kwc.cfg KWC_PEERS), a "not found" confirmed by the full list.
  const rowPeers = candidates.flatMap((c) => wsPeerKey(c.row.contact, node.contactStyle) ?? []);
  const { live } = await liveAmongKeys(ctx.kamailio, node, rowPeers, () => livePeers(ctx.kamailio, node));
  const chosen: (ChosenRow & Pick<Candidate, "row" | "match">)[] = [];
  for (const c of candidates) {
    const verdict = judgeRow(c.row, c.match, live, node.contactStyle);
    if (verdict.delete)
      chosen.push({ row: c.row, match: c.match, reason: c.reason, source: c.source, peer: verdict.peer });
    else {
      const peer = wsPeerKey(c.row.contact, node.contactStyle);
      ctx.ledger.kept(verdict.why, { node: node.id, rowId: c.row.id, contact: c.row.contact, peer });
    }
  }
  if (chosen.length === 0) return;
  const deleted = await deleteGuarded(ctx.ledger.log, node, "worker", chosen, async () => {
    const ids: number[] = [];
    for (const group of deleteGroups(chosen))
      ids.push(...(await ctx.store.deleteWatchers(scope, group.ids, group.criteria)));
    return ids.map((id) => ({ id }));
  });
  for (const d of deleted) {
    ctx.ledger.result.deleted++;
    const key = { presentityUri: d.row.presentityUri, event: d.row.event };
    ctx.refreshes.add(node, key, [], d.source?.messageId);
    ctx.gate.died(node.id, key, d.source?.event);
  }
}
