/**
 * Which peers are connected to a node now: every entry of `core.tcp_list` that Kamailio can still
 * send on (any transport; a connected peer keeps its rows). Asked only after the rows it judges
 * were read.
 *
 * A connection Kamailio has given up on stays listed: when the WebSocket keepalive gets no answer
 * from a silent peer (a sleeping laptop), 5.6.3 fires `websocket:closed` and marks it `CONN_BAD`,
 * but keeps it in `core.tcp_list` until `tcp_connection_lifetime` (an hour), with no `tcp:*`
 * event. Every NOTIFY to it fails like to a vanished one (docs/browsers.md, "silent browser").
 * So `CONN_BAD` and `CONN_ERROR` (the states core/tcp_main marks a connection it will no longer
 * use) are not live; every other state, including ones this code does not know, is.
 */
import type { NodeConfig } from "../fleet.ts";
import { peerKey } from "../peer.ts";
import type { KamailioClient, TcpConnection } from "../ports.ts";

/** `core.tcp_list` states of a connection Kamailio will not send on again. */
export const DEAD_CONNECTION_STATES: ReadonlySet<string> = new Set(["CONN_BAD", "CONN_ERROR"]);

export function liveSetOf(connections: readonly TcpConnection[]): Set<string> {
  const set = new Set<string>();
  for (const c of connections) {
    if (!DEAD_CONNECTION_STATES.has(c.state)) set.add(peerKey({ ip: c.srcIp, port: c.srcPort }));
  }
  return set;
}

export async function livePeers(kamailio: KamailioClient, node: NodeConfig): Promise<Set<string>> {
  return liveSetOf(await kamailio.tcpList(node));
}
