/**
 * Ports of the cleanup core: what it needs from the database, from Kamailio, from the DLQ and for
 * telemetry. Adapters (lambdas/adapters/*) implement them; tests pass fakes.
 */
import type { DialogKey, RefreshRequested } from "./contract.ts";
import type { ContactStyle, NodeConfig, NodeFacts } from "./fleet.ts";
import type { Peer } from "./peer.ts";
import type { DeletionTrace, PresentityRowTrace } from "./refresh-policy.ts";

/** The part of `active_watchers` the service reads. */
export interface WatcherRow {
  id: number;
  presentityUri: string;
  event: string;
  contact: string;
  callId: string;
  toTag: string;
  fromTag: string;
  watcherUsername: string;
  watcherDomain: string;
  socketInfo: string;
  expires: number;
  /** Bumped by presence with every NOTIFY it sends (the compare guard of notify.failed). */
  version: number;
}

/** Where a node's rows live: its own table, restricted to its listeners' socket_info values. */
export interface NodeScope {
  nodeId: string;
  table: string;
  socketInfo: string[];
  contactStyle: ContactStyle;
}

export function scopeOf(node: NodeConfig): NodeScope {
  return {
    nodeId: node.id,
    table: node.watchersTable,
    socketInfo: node.socketInfo,
    contactStyle: node.contactStyle,
  };
}

/**
 * A dialog to delete by key: with `version`, only while the row still has it (a re-SUBSCRIBE
 * bumps it). Selecting by key ignores the version; the guard and the DELETE check it.
 */
export interface DialogMatch extends DialogKey {
  version?: number;
}

/** What selects rows: contacts naming these peers, or these exact dialog keys, or one presentity. */
export interface WatcherCriteria {
  peers: Peer[];
  dialogs: DialogMatch[];
  /** Optional: restrict to rows of these (presentity, event) pairs with these exact contacts (reconcile-once). */
  contacts?: { presentityUri: string; event: string; contacts: string[] };
}

export interface PresentityKey {
  presentityUri: string;
  event: string;
}

/** What the refresh policy reads of one (presentity, event) after the deletes. */
export interface PresentityTrace {
  /** Its rows now, as the policy reads them (newest received_time, earliest expires). */
  rows: PresentityRowTrace[];
  deletions: DeletionTrace;
}

export interface PresentityTraces {
  /** The deletion trace is installed and its trigger exists (`kwc db trace`). */
  installed: boolean;
  /** By presentityKeyId; a key missing here was not read. */
  byKey: Map<string, PresentityTrace>;
}

/** The presentity deletion trace (lambdas/core/sql/presentity-trace.ts): read and prune. */
export interface PresentityTraceSource {
  read(keys: readonly PresentityKey[]): Promise<PresentityTraces>;
  /** Deletes rows past the retention (rate-limited by the source); never throws. */
  prune(): Promise<number>;
}

export interface WatcherStore {
  /** The deletion trace, where the store can read it (absent = never installed: always refresh). */
  readonly presentityTrace?: PresentityTraceSource;
  /** Rows of the scope matching any criterion (SQL pre-selection; the caller re-checks in TS). */
  selectCandidates(scope: NodeScope, criteria: WatcherCriteria): Promise<WatcherRow[]>;
  /** Rows of one (presentity, event) in the scope. */
  selectByPresentity(scope: NodeScope, key: PresentityKey): Promise<WatcherRow[]>;
  /**
   * Deletes rows by id AND the same criteria (a row rewritten in between no longer matches and stays).
   * Returns the ids actually deleted.
   */
  deleteWatchers(scope: NodeScope, ids: number[], criteria: WatcherCriteria): Promise<number[]>;
  /** One query over several node scopes: which of them hold watchers of which of the keys. */
  findWatchingScopes(
    scopes: NodeScope[],
    keys: PresentityKey[],
  ): Promise<{ nodeId: string; presentityUri: string; event: string }[]>;
}

/** SQL-side narrowing of the rows a sweep request is about (always within the node's sockets). */
export interface RowFilter {
  socketInfo: string[];
  presentity?: string;
  event?: string;
  watcher?: { username: string; domain: string };
  dialog?: { callId: string; toTag: string; fromTag: string };
  /** Only rows with `expires` below this (epoch seconds). */
  expiresBefore?: number;
}

/** The sweep's store (reconciler, on-demand cleanup, kwc): paged reads over a whole node table. */
export interface SweepStore {
  /** Distinct socket_info values of a table (finds other nodes' rows in it). */
  socketsInTable(table: string): Promise<string[]>;
  /**
   * The next page of rows matching the filter with id > afterId, ascending by id. The store sizes
   * its pages (each Data API response under 1 MiB); `done` when no row follows.
   */
  readPage(table: string, filter: RowFilter, afterId: number): Promise<{ rows: WatcherRow[]; done: boolean }>;
  /**
   * Deletes rows by id, only if each still has the `expires` that was read (a re-SUBSCRIBE in
   * between rewrites it) and still matches the filter. Returns the rows deleted, with their watcher.
   */
  deleteRows(
    table: string,
    rows: readonly Pick<WatcherRow, "id" | "expires">[],
    filter: RowFilter,
  ): Promise<readonly { id: number; watcherUsername?: string; watcherDomain?: string }[]>;
}

/** One entry of `core.tcp_list`: src = the peer, dst = the listener. */
export interface TcpConnection {
  id: number;
  type: string;
  state: string;
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
}

/** What the node's authenticated status endpoint reports. */
export interface NodeStatus {
  node?: string;
  boot?: string;
  version?: string;
  subsDbMode?: number;
  notifierProcesses?: number;
  watchersTable?: string;
}

/** What the node's status says wins over its config; the config fills what the status leaves out. */
export function factsFromStatus(node: NodeConfig, status: NodeStatus): NodeFacts {
  const facts: NodeFacts = {
    kamailioVersion: status.version ?? node.kamailioVersion,
    subsDbMode: status.subsDbMode ?? node.subsDbMode,
    notifierProcesses: status.notifierProcesses ?? node.notifierProcesses,
    source: "status",
  };
  if (status.boot) facts.bootId = status.boot;
  if (status.watchersTable) facts.watchersTable = status.watchersTable;
  return facts;
}

/** What the cfg's `/kwc/peers` route says of the peers asked (`ip:port` / `[ipv6]:port`). */
export interface PeerStates {
  live: string[];
  /** Not proof of death: tcpops' lookup can miss a live connection (see core/peer-liveness.ts). */
  notFound: string[];
  /** Not an IP literal: never looked up. */
  refused: string[];
}

export interface KamailioClient {
  tcpList(node: NodeConfig): Promise<TcpConnection[]>;
  /** The narrow check (kwc.cfg route KWC_PEERS); undefined when the node's cfg lacks the route. */
  peerStates?(node: NodeConfig, peers: string[]): Promise<PeerStates | undefined>;
  /** `presence.refreshWatchers [uri, event, 1]`; resolves on `result`, throws a classified error otherwise. */
  refreshWatchers(node: NodeConfig, presentityUri: string, event: string): Promise<void>;
  status(node: NodeConfig): Promise<NodeStatus>;
}

export interface DlqItem {
  /** One-event envelope (a redrive reprocesses it), or the source body when no event could be read. */
  body: string;
  reason: string;
  /** SQS message id of the source record and the event's index in its envelope (if any). */
  sourceMessageId: string;
  eventIndex?: number;
  /**
   * The source record's `kwc-node` attribute (the node the ingest authenticated), carried onto the
   * DLQ message so that a redrive is checked against the node that sent it (core/ingest-identity.ts).
   */
  ingestNode?: string;
}

export interface DeadLetterSink {
  send(items: DlqItem[]): Promise<void>;
}

/**
 * Where the service posts its own follow-ups (refresh.requested) for refreshes it owes after
 * deleting rows: the events queue, delayed so that a blip can pass. Throws if any was not sent.
 */
export interface FollowUpSink {
  send(events: RefreshRequested[]): Promise<void>;
}

/** Which path deleted a row. */
export type DeletedBy = "worker" | "reconciler" | "cleanup" | "kwc";

/** One structured record per deleted row: answers "why did this user's BLF stop?". */
export interface AuditRecord {
  action: "watcher.deleted";
  node: string;
  table: string;
  rowId: number;
  dialog: DialogKey;
  /** `sip:<watcher_username>@<watcher_domain>` (absent only if the row vanished before it was read). */
  watcher?: string;
  presentity: string;
  event: string;
  contact: string;
  /**
   * connection.closed / notify.failed: the worker, for that event; reconcile.refresh-failed: the
   * worker's bounded reconcile after a refresh 500; conn-closed / expired / requested: a sweep
   * (reconciler, on-demand cleanup, kwc), by the report's row reason.
   */
  reason:
    | "connection.closed"
    | "notify.failed"
    | "reconcile.refresh-failed"
    | "conn-closed"
    | "expired"
    | "requested";
  deletedBy: DeletedBy;
  cause?: string;
  peer?: string;
  notifyCode?: number;
  sourceMessageId?: string;
  sourceEvent?: unknown;
}

/** One structured record per event that was valid but not acted on (boot, freshness, older cfg). */
export interface IgnoredEventRecord {
  action: "event.ignored";
  node: string;
  kind: "boot" | "freshness" | "no-version";
  detail: string;
  sourceMessageId: string;
  eventIndex: number;
  sourceEvent: unknown;
}

export type MetricName =
  | "EventsReceived"
  | "EventsRejected"
  | "EventsUnknownNode"
  | "EventsRefused"
  | "EventsIgnored"
  | "EventsNodeMismatch"
  | "EventsIgnoredBoot"
  | "EventsIgnoredStale"
  | "RowsDeleted"
  | "GuardKeeps"
  | "GuardKeepsNoPeer"
  | "GuardKeepsChanged"
  | "StatementsBisected"
  | "RefreshOk"
  | "RefreshFailed"
  | "RefreshDegraded"
  | "RefreshDeferred"
  /** presence.refreshWatchers answered 503 by the node's refresh budget (kwc.cfg). */
  | "RefreshRefusedByNode"
  /** not sent: the node refused one earlier in the batch; owed as a follow-up. */
  | "RefreshBackedOff"
  /** owed after deletions and sent by the refresh policy (dimension `reason`, lambdas/core/refresh-policy.ts). */
  | "RefreshSent"
  /** not sent: no survivor can have starved (dimension `reason`, lambdas/core/refresh-policy.ts). */
  | "RefreshSkipped"
  | "TransientFailures"
  | "DlqSent";

export interface Telemetry {
  /** `dimensions` (e.g. the refresh policy's `reason`) split the metric; without them it is one series. */
  count(metric: MetricName, value?: number, dimensions?: Record<string, string>): void;
  audit(record: AuditRecord): void;
  /** An event that was valid but not acted on: counted by the caller, recorded here. */
  ignored(record: IgnoredEventRecord): void;
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}
