/**
 * Ports of the cleanup core: what it needs from the database, from Kamailio, from the DLQ and for
 * telemetry. Adapters (lambdas/adapters/*) implement them; tests pass fakes.
 */
import type { DialogKey, RefreshRequested } from "./contract.ts";
import type { ContactStyle, NodeConfig, NodeFacts } from "./fleet.ts";
import type { Peer } from "./peer.ts";

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

/** What selects rows: contacts naming these peers, or these exact dialog keys, or one presentity. */
export interface WatcherCriteria {
  peers: Peer[];
  dialogs: DialogKey[];
  /** Optional: restrict to rows of these (presentity, event) pairs with these exact contacts (reconcile-once). */
  contacts?: { presentityUri: string; event: string; contacts: string[] };
}

export interface PresentityKey {
  presentityUri: string;
  event: string;
}

export interface WatcherStore {
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
  return facts;
}

export interface KamailioClient {
  tcpList(node: NodeConfig): Promise<TcpConnection[]>;
  /** `presence.refreshWatchers [uri, event, 1]`; resolves on `result`, throws a classified error otherwise. */
  refreshWatchers(node: NodeConfig, presentityUri: string, event: string): Promise<void>;
  status(node: NodeConfig): Promise<NodeStatus>;
}

export interface DlqItem {
  body: string;
  reason: string;
  /** SQS message id of the source record and the event's index in its envelope (if any). */
  sourceMessageId: string;
  eventIndex?: number;
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

/** One structured record per deleted row: answers "why did this user's BLF stop?". */
export interface AuditRecord {
  action: "watcher.deleted";
  node: string;
  table: string;
  rowId: number;
  dialog: DialogKey;
  watcher: string;
  presentity: string;
  event: string;
  contact: string;
  reason: "connection.closed" | "notify.failed" | "reconcile.refresh-failed";
  cause?: string;
  peer?: string;
  notifyCode?: number;
  sourceMessageId?: string;
  sourceEvent?: unknown;
}

export type MetricName =
  | "EventsReceived"
  | "EventsRejected"
  | "EventsUnknownNode"
  | "EventsRefused"
  | "EventsIgnored"
  | "EventsNodeMismatch"
  | "RowsDeleted"
  | "GuardKeeps"
  | "RefreshOk"
  | "RefreshFailed"
  | "RefreshDegraded"
  | "RefreshDeferred"
  /** presence.refreshWatchers answered 503 by the node's refresh budget (kwc.cfg). */
  | "RefreshRefusedByNode"
  /** not sent: the node refused one earlier in the batch; owed as a follow-up. */
  | "RefreshBackedOff"
  /** not sent: no survivor can have starved (lambdas/core/refresh-policy.ts). */
  | "RefreshSkipped"
  | "TransientFailures"
  | "DlqSent";

export interface Telemetry {
  count(metric: MetricName, value?: number): void;
  audit(record: AuditRecord): void;
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}
