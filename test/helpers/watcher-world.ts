// A seeded world of watcher rows and connection histories for the reliability tests (issue 18):
// rows of both contact styles, WS and non-WS, rows naming no peer, rows of another socket, IPv4
// and IPv6 peers; peers that stay, die, reconnect on the same ip:port, or flap. It writes the rows
// straight into a test database (one multi-row INSERT per chunk) and says, from its own rules
// (independent of the service's code), which rows must be gone and which must stay.
import type { KamailioEvent } from "#core/contract.ts";
import type { ContactStyle, FleetConfig, NodeConfig } from "#core/fleet.ts";
import type { InputRecord } from "#core/worker/types.ts";
import type { TestDb } from "./db.ts";
import { BOOT, FakeKamailio, fleetOf, nodeConfig } from "./fakes.ts";

/** mulberry32: small, seeded, good enough to pick cases. */
export function seededRandom(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)] as T,
    shuffle<T>(list: T[]): T[] {
      for (let i = list.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [list[i], list[j]] = [list[j] as T, list[i] as T];
      }
      return list;
    },
  };
}
export type Random = ReturnType<typeof seededRandom>;

export interface Peer {
  ip: string;
  port: number;
}
export const keyOf = (p: Peer) => (p.ip.includes(":") ? `[${p.ip}]:${p.port}` : `${p.ip}:${p.port}`);

/** What a row is, by the world's own rules (never by the service's parser). */
export type RowKind = "ws" | "non-ws" | "no-peer" | "foreign-socket";

export interface WorldRow {
  id: number;
  node: string;
  table: string;
  kind: RowKind;
  /** The peer the contact names (any kind but no-peer). */
  peer?: Peer;
  presentity: string;
  event: string;
  callId: string;
  toTag: string;
  fromTag: string;
  contact: string;
  socketInfo: string;
  version: number;
}

export type Fate = "stays" | "dies" | "reconnects" | "flaps";

export interface WorldPeer extends Peer {
  node: string;
  fate: Fate;
}

/** Live at the end: never closed, or reconnected on the same ip:port after its close. */
export const liveAtEnd = (f: Fate) => f === "stays" || f === "reconnects";

export const FOREIGN_SOCKET = "tcp:127.0.0.99:5080";
const PRESENTITIES = Array.from({ length: 40 }, (_, i) => `sip:p${i}@example.com`);

export function hostOf(p: Peer): string {
  return p.ip.includes(":") ? `[${p.ip}]` : p.ip;
}

/** The contact a row of this kind has on a node of this style (as Kamailio writes it). */
export function contactFor(kind: RowKind, style: ContactStyle, user: string, p: Peer | undefined, r: Random) {
  if (kind === "no-peer" || !p) return `sip:${user}@client-${r.int(1000)}.invalid;transport=ws`;
  if (style === "alias") {
    const proto = kind === "non-ws" ? r.pick(["1", "2", "3"]) : r.pick(["5", "6"]);
    return `sip:${user}@client.invalid;transport=${proto === "1" ? "udp" : "ws"};alias=${p.ip}~${p.port}~${proto}`;
  }
  const transport =
    kind === "non-ws"
      ? r.pick(["", ";transport=tcp", ";transport=udp", ";transport=tls"])
      : r.pick([";transport=ws", ";transport=wss"]);
  return `${r.int(4) === 0 ? "<" : ""}sip:${user}@${hostOf(p)}:${p.port}${transport}`;
}

export function randomPeer(r: Random, n: number): Peer {
  return r.int(3) === 0
    ? {
        ip: `2001:db8:${((n >> 8) + 1).toString(16)}::${((n & 0xff) + 1).toString(16)}`,
        port: 20_000 + r.int(40_000),
      }
    : { ip: `198.18.${(n >> 8) & 0xff}.${n & 0xff}`, port: 20_000 + r.int(40_000) };
}

export interface WorldNode {
  config: NodeConfig;
  peers: WorldPeer[];
}

export interface World {
  nodes: WorldNode[];
  rows: WorldRow[];
  /** Every event, in the order the node produced them. */
  events: KamailioEvent[];
  /** Peers connected at the end, per node (what the fake Kamailio reports). */
  live: Map<string, Peer[]>;
}

/**
 * A world of `peersPerNode` peers on each of a nated and an alias node (tables aw_rn, aw_ra),
 * with rows and the events their histories produce. Deterministic for a seed.
 */
export function buildWorld(seed: number, peersPerNode: number, atSeconds: number): World {
  const r = seededRandom(seed);
  const nodes: WorldNode[] = [
    { config: nodeConfig("rn", { watchersTable: "aw_rn", contactStyle: "nated" }), peers: [] },
    {
      config: nodeConfig("ra", {
        watchersTable: "aw_ra",
        contactStyle: "alias",
        socketInfo: ["tcp:127.0.0.3:5080"],
      }),
      peers: [],
    },
  ];
  const rows: WorldRow[] = [];
  const events: KamailioEvent[] = [];
  let id = 1;
  let n = 0;
  const row = (node: WorldNode, kind: RowKind, peer: Peer | undefined): WorldRow => {
    const i = id++;
    const w: WorldRow = {
      id: i,
      node: node.config.id,
      table: node.config.watchersTable,
      kind,
      ...(peer ? { peer } : {}),
      presentity: r.pick(PRESENTITIES),
      event: r.pick(["presence", "presence", "dialog"]),
      callId: `c${i}-${r.int(1e9)}@client.invalid`,
      toTag: `tt${i}`,
      fromTag: `ft${i}`,
      contact: contactFor(kind, node.config.contactStyle, `u${i}`, peer, r),
      socketInfo: kind === "foreign-socket" ? FOREIGN_SOCKET : (node.config.socketInfo[0] as string),
      version: 1 + r.int(5),
    };
    rows.push(w);
    return w;
  };
  for (const node of nodes) {
    for (let i = 0; i < peersPerNode; i++) {
      const p = randomPeer(r, n++);
      const fate = r.pick<Fate>(["stays", "dies", "dies", "reconnects", "flaps"]);
      const peer: WorldPeer = { ...p, node: node.config.id, fate };
      node.peers.push(peer);
      const wsRows = Array.from({ length: 1 + r.int(3) }, () => row(node, "ws", p));
      // Rows the peer match must never take: the same address over UDP/TCP, and another socket's row.
      if (r.int(4) === 0) row(node, "non-ws", p);
      if (r.int(8) === 0) row(node, r.int(2) === 0 ? "foreign-socket" : "no-peer", p);
      if (fate === "stays") {
        // A NOTIFY that failed while the peer was busy: the liveness guard keeps its row.
        if (r.int(3) === 0) events.push(notifyFailed(node, r.pick(wsRows), atSeconds));
        continue;
      }
      const closes = fate === "flaps" ? 2 : 1;
      for (let c = 0; c < closes; c++) events.push(...closeEvents(node, p, r, atSeconds));
      // A close event of the boot before a restart: deletes nothing by itself.
      if (r.int(10) === 0)
        events.push({
          ...closeEvents(node, p, r, atSeconds)[0],
          boot: "1700000000-0ldb00t",
        } as KamailioEvent);
      for (const w of wsRows) if (r.int(2) === 0) events.push(notifyFailed(node, w, atSeconds));
    }
  }
  const live = new Map(
    nodes.map((n) => [
      n.config.id,
      n.peers.filter((p) => liveAtEnd(p.fate)).map(({ ip, port }) => ({ ip, port })),
    ]),
  );
  return { nodes, rows, events, live };
}

function closeEvents(node: WorldNode, p: Peer, r: Random, at: number): KamailioEvent[] {
  const base = { type: "connection.closed" as const, node: node.config.id, boot: BOOT, peer: { ...p }, at };
  const tcp = {
    ...base,
    transport: r.pick(["ws", "wss"] as const),
    cause: r.pick(["tcp:closed", "tcp:reset", "tcp:timeout"] as const),
  };
  // A close frame or a silent peer also gives websocket:closed, later (no transport on 5.6).
  return r.int(2) === 0 ? [tcp, { ...base, cause: "websocket:closed" }] : [tcp];
}

function notifyFailed(node: WorldNode, w: WorldRow, at: number): KamailioEvent {
  return {
    type: "notify.failed",
    node: node.config.id,
    boot: BOOT,
    dialog: { callId: w.callId, toTag: w.toTag, fromTag: w.fromTag },
    presentity: w.presentity,
    event: w.event,
    code: 408,
    contact: w.contact,
    version: w.version,
    at,
  };
}

/** The ids that must remain: everything but the WS rows of the node's dead peers. */
export function expectedSurvivors(world: World): Map<string, number[]> {
  const deadPeers = new Set(
    world.nodes.flatMap((n) =>
      n.peers.filter((p) => !liveAtEnd(p.fate)).map((p) => `${n.config.id} ${keyOf(p)}`),
    ),
  );
  const out = new Map<string, number[]>(world.nodes.map((n) => [n.config.watchersTable, []]));
  for (const w of world.rows)
    if (!(w.kind === "ws" && w.peer && deadPeers.has(`${w.node} ${keyOf(w.peer)}`)))
      out.get(w.table)?.push(w.id);
  return out;
}

/** Envelopes of up to `perMessage` events, in order, per node: what the cfg would post. */
export function messagesOf(events: KamailioEvent[], perMessage: number, prefix: string): InputRecord[] {
  const out: InputRecord[] = [];
  const byNode = new Map<string, KamailioEvent[]>();
  for (const e of events) {
    const list = byNode.get(e.node) ?? [];
    list.push(e);
    byNode.set(e.node, list);
    if (list.length === perMessage) {
      out.push({
        messageId: `${prefix}-${out.length}`,
        body: JSON.stringify({ v: 1, events: list }),
        ingestNode: e.node,
      });
      byNode.set(e.node, []);
    }
  }
  for (const [node, list] of byNode)
    if (list.length > 0)
      out.push({
        messageId: `${prefix}-${out.length}`,
        body: JSON.stringify({ v: 1, events: list }),
        ingestNode: node,
      });
  return out;
}

const COLUMNS =
  "id, presentity_uri, watcher_username, watcher_domain, to_user, to_domain, event, to_tag, from_tag, callid, local_cseq, remote_cseq, contact, expires, socket_info, local_contact, from_user, from_domain, updated, updated_winfo, version";

/** Replaces every row of the world's tables with the given rows (ids kept). */
export async function loadRows(db: TestDb, tables: string[], rows: WorldRow[]): Promise<void> {
  for (const t of tables) await db.query(`DELETE FROM ${t}`);
  for (const t of tables) {
    const mine = rows.filter((w) => w.table === t);
    for (let i = 0; i < mine.length; i += 500) {
      const chunk = mine.slice(i, i + 500);
      const params: unknown[] = [];
      const ph = (v: unknown) => {
        params.push(v);
        return db.engine === "postgres" ? `$${params.length}` : "?";
      };
      const values = chunk.map(
        (w) =>
          `(${ph(w.id)}, ${ph(w.presentity)}, ${ph(`u${w.id}`)}, 'example.com', 'p', 'example.com', ${ph(w.event)}, ${ph(w.toTag)}, ${ph(w.fromTag)}, ${ph(w.callId)}, 0, 1, ${ph(w.contact)}, 2000000000, ${ph(w.socketInfo)}, 'sip:kamailio', ${ph(`u${w.id}`)}, 'example.com', -1, -1, ${ph(w.version)})`,
      );
      await db.query(`INSERT INTO ${t} (${COLUMNS}) VALUES ${values.join(", ")}`, params);
    }
  }
}

export async function rowIds(db: TestDb, table: string): Promise<number[]> {
  const rows = await db.query<{ id: number | string }>(`SELECT id FROM ${table} ORDER BY id`);
  return rows.map((x) => Number(x.id));
}

/** A fake Kamailio whose nodes report the world's end-state connections. */
export function kamailioOf(world: World): FakeKamailio {
  const k = new FakeKamailio();
  for (const [node, peers] of world.live) k.live.set(node, peers);
  return k;
}

export function fleetFor(world: World, database: FleetConfig["database"]): FleetConfig {
  return fleetOf(
    world.nodes.map((n) => n.config),
    { database },
  );
}

/** Runs records through a worker in batches of `size` (Lambda's batch), collecting the results. */
export async function runInBatches(
  run: (records: InputRecord[]) => Promise<{ failedMessageIds: string[]; deleted: number }>,
  records: InputRecord[],
  size = 10,
) {
  let deleted = 0;
  const failed: string[] = [];
  for (let i = 0; i < records.length; i += size) {
    const out = await run(records.slice(i, i + size));
    deleted += out.deleted;
    failed.push(...out.failedMessageIds);
  }
  return { deleted, failed, batches: Math.ceil(records.length / size) };
}
