// Test doubles for the worker core: an in-memory watchers store that evaluates the same LIKE
// shapes the SQL uses (so the SQL pre-selection semantics are exercised), a scripted Kamailio and
// a recording DLQ.
import { memoryTelemetry } from "../../../lambdas/adapters/telemetry.ts";
import type { DialogKey } from "../../../lambdas/core/contract.ts";
import type { FleetConfig, NodeConfig } from "../../../lambdas/core/fleet.ts";
import { contactLikeShapes } from "../../../lambdas/core/peer.ts";
import type {
  DeadLetterSink,
  DlqItem,
  FollowUpSink,
  KamailioClient,
  NodeScope,
  NodeStatus,
  PresentityKey,
  TcpConnection,
  WatcherCriteria,
  WatcherRow,
  WatcherStore,
} from "../../../lambdas/core/ports.ts";
import { LIKE_ESCAPE, likePattern } from "../../../lambdas/core/sql.ts";
import { createWorker, type WorkerDeps } from "../../../lambdas/core/worker.ts";

/** SQL LIKE with `ESCAPE '!'`, case-sensitive (the store compares LOWER(contact)). */
export function sqlLike(value: string, pattern: string): boolean {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === LIKE_ESCAPE) {
      i++;
      re += (pattern[i] ?? "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    } else if (c === "%") re += "[\\s\\S]*";
    else if (c === "_") re += "[\\s\\S]";
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`${re}$`).test(value);
}

export function matchesCriteria(row: WatcherRow, scope: NodeScope, criteria: WatcherCriteria): boolean {
  if (!scope.socketInfo.includes(row.socketInfo)) return false;
  const contact = row.contact.toLowerCase();
  for (const peer of criteria.peers) {
    for (const shape of contactLikeShapes(peer, scope.contactStyle))
      if (sqlLike(contact, likePattern(shape.parts))) return true;
  }
  for (const d of criteria.dialogs)
    if (
      row.callId === d.callId &&
      row.toTag === d.toTag &&
      row.fromTag === d.fromTag &&
      (d.version === undefined || row.version === d.version)
    )
      return true;
  const c = criteria.contacts;
  if (c && row.presentityUri === c.presentityUri && row.event === c.event && c.contacts.includes(row.contact))
    return true;
  return false;
}

let nextRowId = 1;
export function watcherRow(
  partial: Partial<WatcherRow> & { contact: string; socketInfo: string },
): WatcherRow {
  const id = partial.id ?? nextRowId++;
  return {
    id,
    presentityUri: "sip:alice@example.com",
    event: "presence",
    callId: `call-${id}`,
    toTag: `tt-${id}`,
    fromTag: `ft-${id}`,
    watcherUsername: `user${id}`,
    watcherDomain: "example.com",
    expires: 2_000_000_000,
    version: 1,
    ...partial,
  };
}

export class MemoryStore implements WatcherStore {
  calls: string[] = [];
  failNext: unknown[] = [];
  constructor(readonly tables: Map<string, WatcherRow[]> = new Map()) {}
  rows(table: string): WatcherRow[] {
    let t = this.tables.get(table);
    if (!t) {
      t = [];
      this.tables.set(table, t);
    }
    return t;
  }
  #maybeFail(call: string) {
    this.calls.push(call);
    const f = this.failNext.shift();
    if (f) throw f;
  }
  async selectCandidates(scope: NodeScope, criteria: WatcherCriteria): Promise<WatcherRow[]> {
    this.#maybeFail(`select:${scope.nodeId}`);
    return this.rows(scope.table)
      .filter((r) => matchesCriteria(r, scope, criteria))
      .map((r) => ({ ...r }));
  }
  async selectByPresentity(scope: NodeScope, key: PresentityKey): Promise<WatcherRow[]> {
    this.#maybeFail(`selectByPresentity:${scope.nodeId}`);
    return this.rows(scope.table)
      .filter(
        (r) =>
          scope.socketInfo.includes(r.socketInfo) &&
          r.presentityUri === key.presentityUri &&
          r.event === key.event,
      )
      .map((r) => ({ ...r }));
  }
  async deleteWatchers(scope: NodeScope, ids: number[], criteria: WatcherCriteria): Promise<number[]> {
    this.#maybeFail(`delete:${scope.nodeId}`);
    const rows = this.rows(scope.table);
    const gone = rows.filter((r) => ids.includes(r.id) && matchesCriteria(r, scope, criteria));
    this.tables.set(
      scope.table,
      rows.filter((r) => !gone.includes(r)),
    );
    return gone.map((r) => r.id);
  }
  async findWatchingScopes(scopes: NodeScope[], keys: PresentityKey[]) {
    this.#maybeFail("findWatching");
    const out: { nodeId: string; presentityUri: string; event: string }[] = [];
    for (const s of scopes)
      for (const k of keys)
        if (
          this.rows(s.table).some(
            (r) =>
              s.socketInfo.includes(r.socketInfo) &&
              r.presentityUri === k.presentityUri &&
              r.event === k.event,
          )
        )
          out.push({ nodeId: s.nodeId, ...k });
    return out;
  }
}

export class FakeKamailio implements KamailioClient {
  live = new Map<string, { ip: string; port: number }[]>();
  refreshCalls: { node: string; presentityUri: string; event: string }[] = [];
  tcpListCalls: string[] = [];
  /** Queued outcomes per method; an Error is thrown, undefined succeeds. */
  refreshFailures: unknown[] = [];
  tcpListFailures: unknown[] = [];
  statusOf = new Map<string, NodeStatus | Error>();
  async tcpList(node: NodeConfig): Promise<TcpConnection[]> {
    this.tcpListCalls.push(node.id);
    const f = this.tcpListFailures.shift();
    if (f) throw f;
    return (this.live.get(node.id) ?? []).map((p, i) => ({
      id: i + 1,
      type: "WS",
      state: "CONN_OK",
      srcIp: p.ip,
      srcPort: p.port,
      dstIp: "127.0.0.1",
      dstPort: 5080,
    }));
  }
  async refreshWatchers(node: NodeConfig, presentityUri: string, event: string): Promise<void> {
    this.refreshCalls.push({ node: node.id, presentityUri, event });
    const f = this.refreshFailures.shift();
    if (f) throw f;
  }
  statusCalls = 0;
  async status(node: NodeConfig): Promise<NodeStatus> {
    this.statusCalls++;
    const s = this.statusOf.get(node.id);
    if (s instanceof Error) throw s;
    return s ?? { boot: BOOT };
  }
}

export class RecordingDlq implements DeadLetterSink {
  items: DlqItem[] = [];
  failures: unknown[] = [];
  async send(items: DlqItem[]): Promise<void> {
    const f = this.failures.shift();
    if (f) throw f;
    this.items.push(...items);
  }
}

export function nodeConfig(id: string, overrides: Partial<NodeConfig> = {}): NodeConfig {
  const n = Number(id.replace(/\D/g, "") || 1);
  return {
    id,
    rpcUrl: `http://127.0.0.${n + 1}:5081/RPC`,
    statusUrl: `http://127.0.0.${n + 1}:5081/kwc/status`,
    tokenSecret: "env:KWC_TOKEN",
    socketInfo: [`tcp:127.0.0.${n + 1}:5080`],
    watchersTable: `aw_${id.replace(/[^A-Za-z0-9]/g, "_")}`,
    contactStyle: "nated",
    kamailioVersion: "5.6.3",
    subsDbMode: 3,
    notifierProcesses: 0,
    ...overrides,
  };
}

export function fleetOf(nodes: NodeConfig[], overrides: Partial<FleetConfig> = {}): FleetConfig {
  return {
    version: 1,
    database: {
      engine: "postgres",
      resourceArn: "arn:aws:rds:eu-west-1:1:cluster:c",
      secretArn: "arn:s",
      name: "kamailio",
    },
    notifyFailureCodes: [404, 405, 408, 410, 416, 481, 482, 483, 484, 485, 489, 501, 502, 604],
    nodes,
    ...overrides,
  };
}

export const AT = 1_795_621_085;
export const BOOT = "1795621085-9f3a61c2";

export function closed(node: string, ip: string, port: number) {
  return {
    type: "connection.closed",
    node,
    boot: BOOT,
    peer: { ip, port },
    transport: "ws",
    cause: "tcp:reset",
    at: AT,
  };
}
export function notifyFailed(node: string, dialog: DialogKey, code = 404) {
  return {
    type: "notify.failed",
    node,
    boot: BOOT,
    dialog,
    presentity: "sip:alice@example.com",
    event: "presence",
    code,
    contact: "sip:x@1.2.3.4:5;transport=ws",
    version: 1,
    at: AT,
  };
}
export function changed(node: string, presentity = "sip:alice@example.com", event = "presence") {
  return { type: "presence.changed", node, boot: BOOT, presentity, event, at: AT };
}
export function envelope(...events: unknown[]): string {
  return JSON.stringify({ v: 1, events });
}

/** A worker over in-memory fakes, as every worker unit test builds it. */
export function workerBed(opts: { nodes?: NodeConfig[]; followUps?: FollowUpSink; now?: () => number } = {}) {
  // The events' `at` (AT) is fresh at this clock unless a test moves it.
  const fleet = fleetOf(opts.nodes ?? [nodeConfig("node-1"), nodeConfig("node-2")]);
  const store = new MemoryStore();
  const kamailio = new FakeKamailio();
  const dlq = new RecordingDlq();
  const tel = memoryTelemetry();
  const deps: WorkerDeps = {
    fleet: async () => fleet,
    storeFor: () => store,
    kamailio,
    dlq,
    telemetry: tel.telemetry,
    now: opts.now ?? (() => AT * 1000 + 5_000),
    ...(opts.followUps ? { followUps: opts.followUps } : {}),
  };
  return { fleet, store, kamailio, dlq, tel, deps, run: createWorker(deps) };
}
