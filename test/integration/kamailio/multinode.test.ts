// Two nodes on one database with one watchers table per node (the supported fleet shape): each
// node's rows stay in its own table and name its own listener; a PUBLISH on A reaches B's watchers
// only after a refresh on B (the fan-out the service does on presence.changed).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../helpers/db.ts";
import { type KamailioNode, startKamailio } from "../../helpers/kamailio.ts";
import { type EventReceiver, startEventReceiver } from "../../helpers/receiver.ts";
import { pidfBody, SipWsClient } from "../../helpers/sip-ws-client.ts";

const PRESENTITY = "sip:hank@example.com";
let db: TestDb;
let rx: EventReceiver;
let nodeA: KamailioNode;
let nodeB: KamailioNode;
const clients: SipWsClient[] = [];

async function connect(node: KamailioNode, user: string, localAddress: string) {
  const c = await SipWsClient.connect(node.wsUrl, { user, localAddress });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  db = await createTestDb("postgres", "kammulti");
  await db.createNodeTable("aw_node_a");
  await db.createNodeTable("aw_node_b");
  rx = await startEventReceiver();
  const common = { db, ingestUrl: rx.url, ingestKey: rx.key, notifierProcesses: 0 as const };
  [nodeA, nodeB] = await Promise.all([
    startKamailio({ ...common, nodeId: "node-a", listenIp: "127.0.0.8", watchersTable: "aw_node_a" }),
    startKamailio({ ...common, nodeId: "node-b", listenIp: "127.0.0.9", watchersTable: "aw_node_b" }),
  ]);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all([nodeA?.stop(), nodeB?.stop()]);
  await rx?.close();
  await db?.drop();
});

describe("two nodes, one database, one watchers table per node", () => {
  it("keeps each node's rows apart and fans a PUBLISH out only through a refresh", async () => {
    const a1 = await connect(nodeA, "a1", "127.0.1.1");
    const b1 = await connect(nodeB, "b1", "127.0.2.1");
    const subA = await a1.subscribe(PRESENTITY);
    const subB = await b1.subscribe(PRESENTITY);
    expect([subA.status, subB.status]).toEqual([200, 200]);
    await a1.waitForNotify((n) => n.callId === subA.callId);
    await b1.waitForNotify((n) => n.callId === subB.callId);

    const rowsA = await db.query<{ callid: string; socket_info: string; contact: string }>(
      "SELECT callid, socket_info, contact FROM aw_node_a",
    );
    const rowsB = await db.query<{ callid: string; socket_info: string; contact: string }>(
      "SELECT callid, socket_info, contact FROM aw_node_b",
    );
    expect(rowsA).toEqual([
      { callid: subA.callId, socket_info: nodeA.socketInfo, contact: expect.any(String) },
    ]);
    expect(rowsB).toEqual([
      { callid: subB.callId, socket_info: nodeB.socketInfo, contact: expect.any(String) },
    ]);
    expect(rowsA[0]?.contact).toContain(`@${a1.peer};`);
    expect(rowsB[0]?.contact).toContain(`@${b1.peer};`);
    expect(await db.query("SELECT id FROM active_watchers")).toEqual([]);

    // PUBLISH on A: A's watcher is notified at once, B's is not (presentity table shared)
    const publisher = await connect(nodeA, "hank", "127.0.1.2");
    const markB = b1.notifies.length;
    expect(await publisher.publish(PRESENTITY, { body: pidfBody(PRESENTITY, "closed", "away") })).toBe(200);
    const changed = await rx.waitFor((e) => e.type === "presence.changed" && e.presentity === PRESENTITY);
    expect(changed).toMatchObject({ node: "node-a", boot: nodeA.bootId, event: "presence" });
    await a1.waitForNotify((n) => n.callId === subA.callId && n.body.includes("closed"));
    await b1.ping();
    expect(b1.notifies.length).toBe(markB);

    // the fan-out: refresh on B delivers A's new state to B's watcher
    const refresh = await nodeB.rpc("presence.refreshWatchers", [PRESENTITY, "presence", 1]);
    expect(refresh.status).toBe(200);
    await b1.ping();
    const fresh = b1.notifies.slice(markB);
    expect(fresh).toHaveLength(1);
    expect(fresh[0]?.body).toContain("closed");
  });
});
