// The worker's core scenario (as in test/integration/worker/matrix.test.ts) over a chosen
// listener of a node: a dead watcher notified first makes Kamailio's refresh abort (control), then
// the worker handles the connection.closed event: exactly the dead row goes, every live row stays,
// and every survivor gets its NOTIFY.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { expect } from "vitest";
import type { ConnectionClosed } from "#core/contract.ts";
import type { FleetConfig } from "#core/fleet.ts";
import { parseMessage } from "#core/parse.ts";
import { testDbConfig } from "../../helpers/dataapi.ts";
import { makeNotifiedFirst } from "../../helpers/db.ts";
import type { NodeBed } from "../../helpers/node-bed.ts";
import { type DieMode, SipWsClient, type Subscription } from "../../helpers/sip-ws-client.ts";
import { envelopeOf, nodeConfigOf, workerFor } from "../worker/harness.ts";

export interface Watcher {
  c: SipWsClient;
  sub: Subscription;
}

/** A client on `url` (opened through the bed, so bed.close() releases it) subscribed to `presentity`. */
export async function watchOn(
  bed: NodeBed,
  url: string,
  user: string,
  presentity: string,
  opts: { localAddress?: string; localPort?: number } = {},
): Promise<Watcher> {
  const c = await SipWsClient.connect(url, { user, ca: bed.node.tlsCa, ...opts });
  bed.clients.push(c);
  const sub = await c.subscribe(presentity);
  if (sub.status !== 200) throw new Error(`SUBSCRIBE of ${user} answered ${sub.status}`);
  await c.waitForNotify((n) => n.callId === sub.callId);
  return { c, sub };
}

/** The node's fleet entry with every listener's socket_info (IPv4, IPv6, WS, WSS). */
export function fleetOf(bed: NodeBed, style: "nated" | "alias"): FleetConfig {
  return {
    version: 1,
    database: testDbConfig(bed.db),
    notifyFailureCodes: [404, 408, 410, 481],
    nodes: [{ ...nodeConfigOf(bed.node, style), socketInfo: bed.node.listeners.map((l) => l.socketInfo) }],
  };
}

export async function rowsOf(
  bed: NodeBed,
  sub: Subscription,
): Promise<{ contact: string; socket_info: string }[]> {
  return bed.db.query(`SELECT contact, socket_info FROM active_watchers WHERE callid = ${bed.ph(1)}`, [
    sub.callId,
  ]);
}

/**
 * `dead` dies (`how`), its connection.closed event arrives and parses; Kamailio alone keeps the
 * row and starves the survivors (control); the worker deletes exactly the dead row and the
 * survivors are notified. Returns the event for transport-specific assertions.
 */
export async function deadWatcherScenario(opts: {
  bed: NodeBed;
  api: { client: RDSDataClient };
  style: "nated" | "alias";
  presentity: string;
  dead: Watcher;
  survivors: Watcher[];
  how: DieMode;
  messageId: string;
}): Promise<ConnectionClosed> {
  const { bed, api, style, presentity, dead, survivors, how, messageId } = opts;
  const { db, node, rx } = bed;
  await makeNotifiedFirst(db, dead.sub.callId);

  await dead.c.die(how);
  const closed = (await rx.waitFor(
    (e) => e.type === "connection.closed" && e.peer.port === dead.c.localPort,
  )) as ConnectionClosed;
  // The event as posted parses with the contract on its own, too.
  const reparsed = parseMessage(envelopeOf(closed));
  expect(reparsed.rejections).toEqual([]);
  expect(reparsed.events.map((e) => e.event)).toEqual([closed]);
  expect(rx.rejections).toEqual([]);

  // Control: without the worker Kamailio keeps the stale row and the refresh starves the survivors.
  const mark = survivors.map((s) => s.c.notifiesFor(s.sub).length);
  const refresh = await node.rpc("presence.refreshWatchers", [presentity, "presence", 1]);
  expect(refresh.status).toBe(500);
  for (const s of survivors) await s.c.ping();
  expect(survivors.map((s) => s.c.notifiesFor(s.sub).length)).toEqual(mark);
  expect(await rowsOf(bed, dead.sub)).toHaveLength(1);

  const w = workerFor(fleetOf(bed, style), api.client, new Map([[node.nodeId, node.rpcToken]]));
  const result = await w.run([{ messageId, body: envelopeOf(closed) }]);
  expect(result.failedMessageIds).toEqual([]);
  expect(await rowsOf(bed, dead.sub)).toHaveLength(0);
  for (const s of survivors) expect(await rowsOf(bed, s.sub)).toHaveLength(1);
  expect(result.refreshes).toEqual([
    { node: node.nodeId, presentityUri: presentity, event: "presence", outcome: "ok" },
  ]);
  for (const s of survivors) await s.c.ping();
  expect(survivors.map((s, i) => s.c.notifiesFor(s.sub).length - (mark[i] ?? 0))).toEqual(
    survivors.map(() => 1),
  );
  expect(w.tel.audits).toEqual([
    expect.objectContaining({
      action: "watcher.deleted",
      node: node.nodeId,
      reason: "connection.closed",
      cause: closed.cause,
      presentity,
      dialog: { callId: dead.sub.callId, toTag: dead.sub.toTag, fromTag: dead.sub.fromTag },
      sourceMessageId: messageId,
    }),
  ]);
  return closed;
}
