/**
 * Pure reconcile domain: which peer a watcher row names, how a row is classified against the
 * node's live connections, and the set-ups where deleting rows cannot help or is unsafe.
 * No I/O here: the sweep (reconcile-sweep.ts) feeds it what the store and the node returned.
 * Contact parsing and SQL helpers are the worker's (peer.ts, sql.ts), reused as they are.
 */
import {
  type ContactStyle,
  type DatabaseEngine,
  type NodeConfig,
  type NodeFacts,
  versionAtLeast,
} from "./fleet.ts";
import { contactPeer, type Peer, peerKey } from "./peer.ts";
import type { WatcherRow } from "./ports.ts";

export type { ContactStyle, DatabaseEngine, Peer, WatcherRow };
export { contactPeer, peerKey };

export type Classification = "live" | "conn-closed" | "expired";

/** Kamailio purges expired active_watchers rows itself from 5.8.0 on (GH #3074); 5.6/5.7 never do. */
export function kamailioPurgesExpired(version: string): boolean {
  return versionAtLeast(version, [5, 8, 0]);
}

export interface ClassifyContext {
  livePeers: ReadonlySet<string>;
  /** Epoch seconds of the sweep. */
  now: number;
  /** Purge expired rows (only where Kamailio does not: 5.6/5.7 in DB-only mode). */
  purgeExpired: boolean;
  contactStyle: ContactStyle;
  /** Rows expired by less than this are left alone: a refresh may be on its way. */
  expiredGraceSeconds: number;
}

export interface ClassifiedRow {
  row: WatcherRow;
  classification: Classification;
  peer?: Peer;
}

export function classifyRow(row: WatcherRow, ctx: ClassifyContext): ClassifiedRow {
  const peer = contactPeer(row.contact, ctx.contactStyle);
  const base = peer ? { row, peer } : { row };
  // Expired (past the grace a refresh in flight needs): the subscription is over for its client,
  // whether or not it is still connected; 5.6/5.7 would keep NOTIFYing it forever (GH #3074).
  if (ctx.purgeExpired && row.expires + ctx.expiredGraceSeconds < ctx.now) {
    return { ...base, classification: "expired" };
  }
  // A connected peer keeps its rows: its next refresh renews them.
  if (peer && ctx.livePeers.has(peerKey(peer))) return { ...base, classification: "live" };
  if (peer) return { ...base, classification: "conn-closed" };
  return { ...base, classification: "live" };
}

/**
 * Set-ups where deleting rows cannot help or would harm; each message says why and what to do.
 * Empty when the node can be swept.
 */
/** The node's mode (its status wins over the config). */
export type NodeMode = Pick<NodeFacts, "kamailioVersion" | "subsDbMode" | "notifierProcesses">;

export function modeRefusals(nodeId: string, mode: NodeMode, engine: DatabaseEngine): string[] {
  const out: string[] = [];
  if (mode.subsDbMode !== 3) {
    out.push(
      `node ${nodeId}: subs_db_mode=${mode.subsDbMode}: Kamailio keeps subscriptions in shared memory in modes 0-2 ` +
        "and no RPC removes one, so deleting rows cannot help (mode 2 may even write them back). " +
        'Run presence with modparam("presence", "subs_db_mode", 3) to use this service.',
    );
  }
  if (
    engine === "postgres" &&
    mode.notifierProcesses > 0 &&
    versionAtLeast(mode.kamailioVersion, [5, 7, 0])
  ) {
    out.push(
      `node ${nodeId}: notifier_processes=${mode.notifierProcesses} on PostgreSQL with Kamailio ${mode.kamailioVersion}: ` +
        "from 5.7.0 on the notifier fails every query (`transaction not in progress`, GH #2739), so no NOTIFY " +
        "is sent and a refresh cannot succeed. Set notifier_processes=0 (the service then removes stale rows).",
    );
  }
  return out;
}

/** Nodes of the fleet config that point at the same watchers table. */
export function sharedTableRefusals(
  nodes: readonly Pick<NodeConfig, "id" | "watchersTable">[],
): Map<string, string> {
  const byTable = new Map<string, string[]>();
  for (const n of nodes) {
    const key = n.watchersTable.toLowerCase();
    byTable.set(key, [...(byTable.get(key) ?? []), n.id]);
  }
  const out = new Map<string, string>();
  for (const [table, ids] of byTable) {
    if (ids.length < 2) continue;
    for (const id of ids) out.set(id, sharedTableMessage(id, table, ids));
  }
  return out;
}

export function sharedTableMessage(nodeId: string, table: string, nodeIds: readonly string[]): string {
  return (
    `node ${nodeId}: watchers table ${table} holds rows of several WebSocket nodes (${nodeIds.join(", ")}). ` +
    "Kamailio itself loses live subscriptions there (in notifier mode a node deletes the other nodes' live rows; " +
    "in sync mode every refresh aborts at the first watcher of another node), so no cleanup can make it work. " +
    "Move to one table per node: `kwc db create-node-table <node>`, then set " +
    'modparam("presence", "active_watchers_table", "<that table>") on each node and watchersTable in the fleet config ' +
    "(clients re-subscribe on their next refresh or reconnect); keep the presentity table shared."
  );
}

/**
 * Rows of other nodes in this node's table (found by socket_info): refused when they belong to a
 * configured node; an unknown socket only warns (it may be a non-WS listener missing from the config).
 */
export function foreignSocketCheck(
  node: Pick<NodeConfig, "id" | "socketInfo" | "watchersTable">,
  fleet: readonly Pick<NodeConfig, "id" | "socketInfo">[],
  socketsInTable: readonly string[],
): { refusal?: string; warnings: string[] } {
  const mine = new Set(node.socketInfo.map((s) => s.toLowerCase()));
  const owners = new Map<string, string>();
  for (const other of fleet) {
    if (other.id === node.id) continue;
    for (const s of other.socketInfo) owners.set(s.toLowerCase(), other.id);
  }
  const foreignNodes = new Set<string>();
  const warnings: string[] = [];
  for (const socket of socketsInTable) {
    const key = socket.toLowerCase();
    if (mine.has(key)) continue;
    const owner = owners.get(key);
    if (owner) foreignNodes.add(owner);
    else
      warnings.push(
        `node ${node.id}: table ${node.watchersTable} has rows on socket ${socket}, which no node lists in socketInfo; they are left alone`,
      );
  }
  if (foreignNodes.size === 0) return { warnings };
  return {
    refusal: sharedTableMessage(node.id, node.watchersTable, [node.id, ...[...foreignNodes].sort()]),
    warnings,
  };
}
