/**
 * Which peers are connected to a node now: every entry of `core.tcp_list` (any transport; a
 * connected peer keeps its rows). Asked only after the rows it judges were read.
 */
import type { NodeConfig } from "../fleet.ts";
import { peerKey } from "../peer.ts";
import type { KamailioClient, TcpConnection } from "../ports.ts";

export function liveSetOf(connections: readonly TcpConnection[]): Set<string> {
  const set = new Set<string>();
  for (const c of connections) set.add(peerKey({ ip: c.srcIp, port: c.srcPort }));
  return set;
}

export async function livePeers(kamailio: KamailioClient, node: NodeConfig): Promise<Set<string>> {
  return liveSetOf(await kamailio.tcpList(node));
}
