// One fake per port, shared by the worker's and the sweep's tests, and the one node/fleet builder:
// - MemoryStore: WatcherStore (worker) AND SweepStore (sweep) over the same rows, evaluating the
//   LIKE shapes the SQL uses (sqlLike), so the SQL pre-selection and delete guards are exercised;
// - FakeKamailio: KamailioClient, scripted;
// - RecordingSink: DeadLetterSink and FollowUpSink (what was sent, and queued failures);
// - nodeConfig / fleetOf / watcherRow: the configs and rows tests start from;
// - actBeforeFirst: the seam for races, at a port (production code carries no test hook).
import type { FleetConfig, NodeConfig } from "#core/fleet.ts";
import { contactLikeShapes } from "#core/peer.ts";
import type {
  KamailioClient,
  NodeScope,
  NodeStatus,
  PeerStates,
  PresentityKey,
  RowFilter,
  SweepStore,
  TcpConnection,
  WatcherCriteria,
  WatcherRow,
  WatcherStore,
} from "#core/ports.ts";
import { LIKE_ESCAPE, likePattern } from "#core/sql.ts";

/** The boot id every fake node reports unless a test sets another. */
export const BOOT = "1795621085-9f3a61c2";

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

/** The node a test started (test/helpers/kamailio.ts): its URLs, socket and table; the rest as nodeConfig's. */
export function runningNodeConfig(
  node: { nodeId: string; rpcUrl: string; statusUrl: string; socketInfo: string; watchersTable: string },
  overrides: Partial<NodeConfig> = {},
): NodeConfig {
  return nodeConfig(node.nodeId, {
    rpcUrl: node.rpcUrl,
    statusUrl: node.statusUrl,
    socketInfo: [node.socketInfo],
    watchersTable: node.watchersTable,
    ...overrides,
  });
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

export class FakeKamailio implements KamailioClient {
  live = new Map<string, { ip: string; port: number }[]>();
  refreshCalls: { node: string; presentityUri: string; event: string }[] = [];
  tcpListCalls: string[] = [];
  /** Queued outcomes per method; an Error is thrown, undefined succeeds. */
  refreshFailures: unknown[] = [];
  tcpListFailures: unknown[] = [];
  statusOf = new Map<string, NodeStatus | Error>();
  /** Every call in order ("status", "tcp_list", "refresh <presentity> <event>"): the sweep's order tests. */
  journal: string[] = [];
  /** A fault for one presentity's refresh (thrown), besides the queued refreshFailures. */
  refreshFaultFor?: (presentityUri: string) => unknown;
  /** Set, the node answers the kwc.cfg peer lookup (KWC_PEERS); unset, only core.tcp_list (an older cfg). */
  peerStates?: (node: NodeConfig, peers: string[]) => Promise<PeerStates | undefined>;
  async tcpList(node: NodeConfig): Promise<TcpConnection[]> {
    this.tcpListCalls.push(node.id);
    this.journal.push("tcp_list");
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
    this.journal.push(`refresh ${presentityUri} ${event}`);
    const f = this.refreshFailures.shift() ?? this.refreshFaultFor?.(presentityUri);
    if (f) throw f;
  }
  /**
   * Scripts one node: its status answer (Kamailio 5.6.3, DB-only, sync mode and BOOT unless
   * `status` says otherwise) and the WS peers connected to it.
   */
  serve(
    nodeId: string,
    opts: { status?: Partial<NodeStatus>; live?: { ip: string; port: number }[] } = {},
  ): this {
    this.statusOf.set(nodeId, {
      boot: BOOT,
      version: "5.6.3",
      subsDbMode: 3,
      notifierProcesses: 0,
      ...opts.status,
    });
    if (opts.live) this.live.set(nodeId, opts.live);
    return this;
  }
  statusCalls = 0;
  async status(node: NodeConfig): Promise<NodeStatus> {
    this.statusCalls++;
    this.journal.push("status");
    const s = this.statusOf.get(node.id);
    if (s instanceof Error) throw s;
    return s ?? { boot: BOOT };
  }
}

/**
 * `port` with `action` run once, right before the first call of `method`: the seam for races
 * ("a client reconnects between the liveness check and the DELETE", "between the row read and
 * core.tcp_list") at the port the use case calls, so the production code carries no test hook.
 */
export function actBeforeFirst<P extends object>(
  port: P,
  method: keyof P & string,
  action: () => unknown,
): P {
  let pending: (() => unknown) | undefined = action;
  return new Proxy(port, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== "function") return value;
      if (key !== method) return value.bind(target);
      return async (...args: unknown[]) => {
        const run = pending;
        pending = undefined;
        await run?.();
        return value.apply(target, args);
      };
    },
  });
}

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

/** The worker's SQL predicate (watcher-sql.ts), in TS. */
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

/** The sweep's SQL filter (sql/sweep-sql.ts), in TS. */
export function matchesFilter(row: WatcherRow, f: RowFilter): boolean {
  return (
    f.socketInfo.includes(row.socketInfo) &&
    (f.presentity === undefined || row.presentityUri === f.presentity) &&
    (f.event === undefined || row.event === f.event) &&
    (f.watcher === undefined ||
      (row.watcherUsername === f.watcher.username && row.watcherDomain === f.watcher.domain)) &&
    (f.dialog === undefined ||
      (row.callId === f.dialog.callId && row.toTag === f.dialog.toTag && row.fromTag === f.dialog.fromTag)) &&
    (f.expiresBefore === undefined || row.expires < f.expiresBefore)
  );
}

let nextRowId = 1;
/** A watcher row with unique ids and dialog tags; `contact` and `socketInfo` say whose it is. */
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

/**
 * The watchers tables in memory, behind both store ports. `tables` is the caller's own object
 * (a test may replace a table between two calls); deletes remove rows in place. Every call is
 * recorded in `calls` (pass the FakeKamailio's journal to see both ports' order in one list), and
 * `failNext` queues a fault for the next call.
 */
export class MemoryStore implements WatcherStore, SweepStore {
  failNext: unknown[] = [];
  /** Rows per readPage. */
  pageSize: number;
  readonly calls: string[];
  constructor(
    readonly tables: Record<string, WatcherRow[]> = {},
    options: { calls?: string[]; pageSize?: number } = {},
  ) {
    this.calls = options.calls ?? [];
    this.pageSize = options.pageSize ?? 100;
  }
  rows(table: string): WatcherRow[] {
    this.tables[table] ??= [];
    return this.tables[table];
  }
  #maybeFail(call: string) {
    this.calls.push(call);
    const f = this.failNext.shift();
    if (f) throw f;
  }
  #remove(table: string, gone: (r: WatcherRow) => boolean): WatcherRow[] {
    const rows = this.rows(table);
    const removed = rows.filter(gone);
    for (let i = rows.length - 1; i >= 0; i--) if (gone(rows[i] as WatcherRow)) rows.splice(i, 1);
    return removed;
  }
  // WatcherStore (the worker)
  async selectCandidates(scope: NodeScope, criteria: WatcherCriteria): Promise<WatcherRow[]> {
    this.#maybeFail(`select:${scope.nodeId}`);
    return this.rows(scope.table)
      .filter((r) => matchesCriteria(r, scope, criteria))
      .map((r) => ({ ...r }));
  }
  async selectByPresentity(scope: NodeScope, key: PresentityKey): Promise<WatcherRow[]> {
    this.#maybeFail(`selectByPresentity:${scope.nodeId}`);
    return this.rows(scope.table)
      .filter((r) => scope.socketInfo.includes(r.socketInfo) && sameKey(r, key))
      .map((r) => ({ ...r }));
  }
  async deleteWatchers(scope: NodeScope, ids: number[], criteria: WatcherCriteria): Promise<number[]> {
    this.#maybeFail(`delete:${scope.nodeId}`);
    const gone = (r: WatcherRow) => ids.includes(r.id) && matchesCriteria(r, scope, criteria);
    return this.#remove(scope.table, gone).map((r) => r.id);
  }
  async findWatchingScopes(scopes: NodeScope[], keys: PresentityKey[]) {
    this.#maybeFail("findWatching");
    const out: { nodeId: string; presentityUri: string; event: string }[] = [];
    for (const s of scopes)
      for (const k of keys)
        if (this.rows(s.table).some((r) => s.socketInfo.includes(r.socketInfo) && sameKey(r, k)))
          out.push({ nodeId: s.nodeId, ...k });
    return out;
  }
  // SweepStore (reconciler, on-demand cleanup, kwc)
  async socketsInTable(table: string): Promise<string[]> {
    return [...new Set(this.rows(table).map((r) => r.socketInfo))];
  }
  async readPage(table: string, filter: RowFilter, afterId: number) {
    this.#maybeFail("rows");
    const next = this.rows(table)
      .filter((r) => r.id > afterId && matchesFilter(r, filter))
      .sort((a, b) => a.id - b.id);
    return { rows: next.slice(0, this.pageSize).map((r) => ({ ...r })), done: next.length <= this.pageSize };
  }
  async deleteRows(table: string, rows: readonly Pick<WatcherRow, "id" | "expires">[], filter: RowFilter) {
    this.#maybeFail("delete");
    const expiresRead = new Map(rows.map((r) => [r.id, r.expires]));
    const gone = (r: WatcherRow) => expiresRead.get(r.id) === r.expires && matchesFilter(r, filter);
    return this.#remove(table, gone).map((r) => ({
      id: r.id,
      watcherUsername: r.watcherUsername,
      watcherDomain: r.watcherDomain,
    }));
  }
}

const sameKey = (r: WatcherRow, k: PresentityKey) =>
  r.presentityUri === k.presentityUri && r.event === k.event;

/** A DeadLetterSink (T = DlqItem) or FollowUpSink (T = RefreshRequested) that records what it is sent. */
export class RecordingSink<T> {
  /** Every item sent, in order. */
  items: T[] = [];
  /** Each send's items. */
  sent: T[][] = [];
  /** Queued faults: the next send throws the first (undefined: that send succeeds). */
  failures: unknown[] = [];
  /** Set: every send throws it (the queue is down). */
  down: unknown;
  async send(items: T[]): Promise<void> {
    const f = this.failures.shift() ?? this.down;
    if (f) throw f;
    this.sent.push(items);
    this.items.push(...items);
  }
}
