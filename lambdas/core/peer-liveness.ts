/**
 * Which of these peers are connected to the node now, asking Kamailio about them only (kwc.cfg
 * route KWC_PEERS, at most PEERS_PER_REQUEST per request) instead of listing every connection
 * (`core.tcp_list`, whose cost grows with the node and is built under its TCP lock).
 *
 * The narrow answer is trusted only in the safe direction. "live" keeps rows. "notFound" does not
 * prove a peer dead: tcpops looks connections up by an alias that a second connection from the
 * same ip:port (to another local port) takes over, and when that one closes the first, still
 * live, is no longer found. So every peer not found is confirmed with the full list before its
 * rows may go. Nodes whose cfg lacks the route (404) get the full list, as before.
 */
import type { NodeConfig } from "./fleet.ts";
import { type Peer, peerKey } from "./peer.ts";
import type { KamailioClient } from "./ports.ts";

export const PEERS_PER_REQUEST = 200;

export interface PeerLiveness {
  /** peerKey()s of the peers asked that are connected. */
  live: Set<string>;
  /** How it was decided: the route alone, the route then the full list, or the full list. */
  via: "route" | "route+tcp_list" | "tcp_list";
}

/**
 * `peers`: peers, or rows carrying one (`{ peer }`). `fullList`: the node's live peers from
 * `core.tcp_list` (the caller caches it per batch).
 * Returns a set holding the live peers among `peers` (and possibly more).
 */
export async function livePeersAmong(
  kamailio: KamailioClient,
  node: NodeConfig,
  peers: readonly (Peer | { peer: Peer })[],
  fullList: () => Promise<Set<string>>,
): Promise<PeerLiveness> {
  return liveAmongKeys(
    kamailio,
    node,
    peers.map((p) => peerKey("peer" in p ? p.peer : p)),
    fullList,
  );
}

/** livePeersAmong for peers already given as peerKey()s (the kernel judges rows by their key). */
export async function liveAmongKeys(
  kamailio: KamailioClient,
  node: NodeConfig,
  peerKeys: readonly string[],
  fullList: () => Promise<Set<string>>,
): Promise<PeerLiveness> {
  const keys = [...new Set(peerKeys)];
  if (!kamailio.peerStates || keys.length === 0) return { live: await fullList(), via: "tcp_list" };
  const live = new Set<string>();
  const doubtful: string[] = [];
  for (let i = 0; i < keys.length; i += PEERS_PER_REQUEST) {
    const answer = await kamailio.peerStates(node, keys.slice(i, i + PEERS_PER_REQUEST));
    if (!answer) return { live: await fullList(), via: "tcp_list" };
    for (const k of answer.live) live.add(k);
    doubtful.push(...answer.notFound, ...answer.refused);
  }
  // Whatever the route did not call live (or did not answer about) is confirmed by the full list.
  const unanswered = keys.filter((k) => !live.has(k) && !doubtful.includes(k));
  if (doubtful.length === 0 && unanswered.length === 0) return { live, via: "route" };
  const all = await fullList();
  for (const k of [...doubtful, ...unanswered]) if (all.has(k)) live.add(k);
  return { live, via: "route+tcp_list" };
}
