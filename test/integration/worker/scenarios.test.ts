// The rest of the worker's behaviour on one combination (PostgreSQL, fix_nated_contact(),
// notifier_processes=0) with real Kamailio 5.6.3, the local Data API server and a local SQS DLQ:
// duplicates/reordering, the liveness guard on a reused peer, a re-SUBSCRIBE between read and
// delete (test seam), Kamailio down, Data API faults, invalid events, and two nodes with per-node
// tables (isolation and presence fan-out past a dead watcher in sync mode).
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import type { SQSEvent } from "aws-lambda";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SqsDeadLetterSink } from "#adapters/sqs-dlq.ts";
import type { ConnectionClosed, KamailioEvent, PresenceChanged } from "#core/contract.ts";
import type { FleetConfig } from "#core/fleet.ts";
import { createWorkerHandler } from "#handlers/functions.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { type LocalSqs, startLocalSqs } from "../../../local/sqs.ts";
import { createTestDb, makeNotifiedFirst, type TestDb } from "../../helpers/db.ts";
import { type KamailioNode, startKamailio } from "../../helpers/kamailio.ts";
import { freePort } from "../../helpers/ports.ts";
import { type EventReceiver, startEventReceiver } from "../../helpers/receiver.ts";
import { SipWsClient, type Subscription } from "../../helpers/sip-ws-client.ts";
import { envelopeOf, nodeConfigOf, startDataApi, testFleet, workerFor } from "./harness.ts";

let db: TestDb;
let rx: EventReceiver;
let nodeA: KamailioNode;
let nodeB: KamailioNode;
let api: { server: DataApiServer; client: RDSDataClient };
let fleet: FleetConfig;
let tokens: Map<string, string>;
const clients: SipWsClient[] = [];

beforeAll(async () => {
  db = await createTestDb("postgres", "wscen");
  await db.createNodeTable("aw_a");
  await db.createNodeTable("aw_b");
  rx = await startEventReceiver();
  const common = { db, notifierProcesses: 0 as const, ingestUrl: rx.url, ingestKey: rx.key };
  [nodeA, nodeB] = await Promise.all([
    startKamailio({ ...common, nodeId: "scen-a", watchersTable: "aw_a", listenIp: "127.0.0.44" }),
    startKamailio({ ...common, nodeId: "scen-b", watchersTable: "aw_b", listenIp: "127.0.0.45" }),
  ]);
  api = await startDataApi();
  tokens = new Map([
    [nodeA.nodeId, nodeA.rpcToken],
    [nodeB.nodeId, nodeB.rpcToken],
  ]);
  fleet = testFleet(db, [nodeConfigOf(nodeA, "nated"), nodeConfigOf(nodeB, "nated")]);
});

afterEach(() => api?.server.faults.clear());

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all([nodeA?.stop(), nodeB?.stop()]);
  await rx?.close();
  await api?.server.close();
  await db?.drop();
});

async function watch(
  node: KamailioNode,
  user: string,
  presentity: string,
  opts: { localPort?: number } = {},
) {
  const c = await SipWsClient.connect(node.wsUrl, { user, ...opts });
  clients.push(c);
  const sub = await c.subscribe(presentity);
  expect(sub.status).toBe(200);
  await c.waitForNotify((n) => n.callId === sub.callId);
  return { c, sub };
}

async function rowsOf(sub: Subscription, table = "aw_a") {
  return db.query<{ id: number; contact: string }>(`SELECT id, contact FROM ${table} WHERE callid = $1`, [
    sub.callId,
  ]);
}

async function killAndAwait(c: SipWsClient, how: "rst" | "terminate" = "rst"): Promise<ConnectionClosed> {
  await c.die(how);
  return (await rx.waitFor(
    (e: KamailioEvent) =>
      e.type === "connection.closed" &&
      e.peer.port === c.localPort &&
      e.peer.ip === c.localAddress &&
      e.cause !== "websocket:closed",
  )) as ConnectionClosed;
}

describe("worker scenarios (PostgreSQL, nated, notifier_processes=0)", () => {
  it("duplicate and reordered events give the same end state", async () => {
    const p = "sip:dup@example.com";
    const d1 = await watch(nodeA, "d1", p);
    const d2 = await watch(nodeA, "d2", p);
    const live = await watch(nodeA, "live", p);
    const [e1, e2] = [await killAndAwait(d1.c), await killAndAwait(d2.c)];
    const w = workerFor(fleet, api.client, tokens);
    const first = await w.run([
      { messageId: "m1", body: envelopeOf(e2, e1) },
      { messageId: "m2", body: envelopeOf(e1) },
    ]);
    expect(first.failedMessageIds).toEqual([]);
    expect(first.deleted).toBe(2);
    const again = await w.run([
      { messageId: "m3", body: envelopeOf(e1) },
      { messageId: "m4", body: envelopeOf(e2, e2) },
    ]);
    expect(again.failedMessageIds).toEqual([]);
    expect(again.deleted).toBe(0);
    expect([...(await rowsOf(d1.sub)), ...(await rowsOf(d2.sub))]).toEqual([]);
    expect(await rowsOf(live.sub)).toHaveLength(1);
    expect(w.tel.audits).toHaveLength(2); // one audit record per deleted row, none for the replays
  });

  it("a watcher that reconnected on the same peer keeps its row; a dead control row in the batch is deleted", async () => {
    const p = "sip:reuse@example.com";
    const reuse = await watch(nodeA, "reuse", p);
    const control = await watch(nodeA, "control", p);
    const eReuse = await killAndAwait(reuse.c, "rst"); // RST: no TIME_WAIT, the 4-tuple can be reused
    const eControl = await killAndAwait(control.c, "rst");
    const back = await SipWsClient.connect(nodeA.wsUrl, { user: "reuse", localPort: reuse.c.localPort });
    clients.push(back);
    expect(back.localPort).toBe(reuse.c.localPort);
    await back.ping();
    const w = workerFor(fleet, api.client, tokens);
    const r = await w.run([{ messageId: "m1", body: envelopeOf(eReuse, eControl) }]);
    expect(r.failedMessageIds).toEqual([]);
    expect(r.guardKeeps).toBe(1);
    expect(await rowsOf(reuse.sub)).toHaveLength(1);
    expect(await rowsOf(control.sub)).toHaveLength(0);
  });

  it("a client that re-SUBSCRIBEs between the row read and the delete keeps its row (test seam)", async () => {
    const p = "sip:seam@example.com";
    const mover = await watch(nodeA, "mover", p);
    const control = await watch(nodeA, "seamctl", p);
    const eMover = await killAndAwait(mover.c);
    const eControl = await killAndAwait(control.c);
    let moved: SipWsClient | undefined;
    const w = workerFor(fleet, api.client, tokens, {
      actBeforeDelete: async () => {
        // The same dialog refreshed over a new connection: Kamailio rewrites the row's contact.
        moved = await SipWsClient.connect(nodeA.wsUrl, { user: "mover" });
        clients.push(moved);
        await moved.resubscribe(mover.sub);
        expect(mover.sub.status).toBe(200);
      },
    });
    const r = await w.run([{ messageId: "m1", body: envelopeOf(eMover, eControl) }]);
    expect(r.failedMessageIds).toEqual([]);
    const rows = await rowsOf(mover.sub);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.contact).toContain(`@${moved?.peer};`);
    expect(await rowsOf(control.sub)).toHaveLength(0);
  });

  it("Kamailio's RPC down: the records are reported as failures and succeed on retry", async () => {
    const dead = await watch(nodeA, "rpcdown", "sip:rpcdown@example.com");
    const e = await killAndAwait(dead.c);
    const closedPort = await freePort("127.0.0.44");
    const downFleet: FleetConfig = {
      ...fleet,
      nodes: fleet.nodes.map((n) =>
        n.id === nodeA.nodeId
          ? {
              ...n,
              rpcUrl: `http://127.0.0.44:${closedPort}/RPC`,
              statusUrl: `http://127.0.0.44:${closedPort}/kwc/status`,
            }
          : n,
      ),
    };
    const down = await workerFor(downFleet, api.client, tokens).run([
      { messageId: "m1", body: envelopeOf(e) },
      { messageId: "m2", body: envelopeOf({ ...e, node: nodeB.nodeId, peer: { ip: "127.0.0.1", port: 9 } }) },
    ]);
    expect(down.failedMessageIds).toEqual(["m1"]);
    expect(await rowsOf(dead.sub)).toHaveLength(1);
    const up = await workerFor(fleet, api.client, tokens).run([{ messageId: "m1", body: envelopeOf(e) }]);
    expect(up.failedMessageIds).toEqual([]);
    expect(await rowsOf(dead.sub)).toHaveLength(0);
  });

  it("Data API faults (injected, seeded) are retried and nothing is lost", async () => {
    const p = "sip:faults@example.com";
    const dead = [];
    for (let i = 0; i < 3; i++) dead.push(await watch(nodeA, `fault${i}`, p));
    const events = [];
    for (const d of dead) events.push(await killAndAwait(d.c));
    let pending = events.map((e, i) => ({ messageId: `f${i}`, body: envelopeOf(e) }));
    api.server.faults.failNext(1, "DatabaseResumingException", { match: /^DELETE/i });
    api.server.faults.failNext(2, "StatementTimeoutException", {
      match: /^SELECT/i,
      probability: 0.5,
      seed: 42,
    });
    const w = workerFor(fleet, api.client, tokens);
    const attempts: string[][] = [];
    const injectedBefore = api.server.faults.injected.length;
    // SQS would redeliver the failed records; fewer consecutive failures than maxReceiveCount (5).
    for (let attempt = 0; attempt < 4 && pending.length > 0; attempt++) {
      const r = await w.run(pending);
      attempts.push(r.failedMessageIds);
      pending = pending.filter((m) => r.failedMessageIds.includes(m.messageId));
    }
    expect(attempts[0]?.length).toBeGreaterThan(0); // the faults really hit
    expect(pending).toEqual([]);
    for (const d of dead) expect(await rowsOf(d.sub)).toHaveLength(0);
    expect(w.tel.audits.filter((a) => a.presentity === p)).toHaveLength(3);
    expect(api.server.faults.injected.length - injectedBefore).toBeGreaterThanOrEqual(2);
    api.server.faults.clear(); // a probabilistic fault left armed must not leak into the next test
  });

  it("a batch mixing invalid and valid events processes the valid ones; each invalid one reaches the DLQ once", async () => {
    const sqs: LocalSqs = await startLocalSqs();
    const sqsClient = sqs.createClient();
    try {
      const dead = await watch(nodeA, "mixed", "sip:mixed@example.com");
      const e = await killAndAwait(dead.c);
      const w = workerFor(fleet, api.client, tokens);
      const handler = createWorkerHandler({ ...w.deps, dlq: new SqsDeadLetterSink(sqsClient, sqs.dlqUrl) });
      const invalid = { ...e, peer: { ip: "not-an-ip", port: 5060 } };
      const event = {
        Records: [
          { messageId: "mixed-1", body: envelopeOf(invalid, e) },
          { messageId: "mixed-2", body: "{not json" },
        ],
      } as unknown as SQSEvent;
      expect(await handler(event)).toEqual({ batchItemFailures: [] });
      expect(await rowsOf(dead.sub)).toHaveLength(0);
      const got = await sqsClient.send(
        new ReceiveMessageCommand({
          QueueUrl: sqs.dlqUrl,
          MaxNumberOfMessages: 10,
          MessageAttributeNames: ["All"],
        }),
      );
      const messages = (got.Messages ?? []).map((m) => ({
        body: m.Body,
        reason: m.MessageAttributes?.["kwc-reason"]?.StringValue,
        source: m.MessageAttributes?.["kwc-source-message-id"]?.StringValue,
      }));
      expect(messages.sort((a, b) => String(a.source).localeCompare(String(b.source)))).toEqual([
        {
          body: JSON.stringify({ v: 1, events: [invalid] }), // alone, as an envelope a redrive reads
          reason: expect.stringMatching(/^events\[0\]\.peer\.ip: /),
          source: "mixed-1",
        },
        { body: "{not json", reason: expect.stringMatching(/^\(root\): expected JSON/), source: "mixed-2" },
      ]);
    } finally {
      sqsClient.destroy();
      await sqs.stop();
    }
  });

  it("two nodes with per-node tables: an event from A never touches B's rows", async () => {
    const p = "sip:iso@example.com";
    const onB = await watch(nodeB, "onb", p);
    const deadA = await watch(nodeA, "deada", p);
    const eA = await killAndAwait(deadA.c);
    // A forged event from A naming B's watcher's peer: scoped to A's table and socket_info, it cannot match.
    const forged = { ...eA, peer: { ip: onB.c.localAddress, port: onB.c.localPort } };
    const r = await workerFor(fleet, api.client, tokens).run([
      { messageId: "m1", body: envelopeOf(forged, eA) },
    ]);
    expect(r.failedMessageIds).toEqual([]);
    expect(await rowsOf(onB.sub, "aw_b")).toHaveLength(1);
    expect(await rowsOf(deadA.sub)).toHaveLength(0); // control: the same batch did delete A's dead row
  });

  it("a PUBLISH on A reaches B's watchers through the fan-out, even with a dead watcher first on B", async () => {
    const p = "sip:fan@example.com";
    const publisher = await SipWsClient.connect(nodeA.wsUrl, { user: "fan" });
    clients.push(publisher);
    expect(await publisher.publish(p)).toBe(200);
    const b1 = await watch(nodeB, "b1", p);
    const b2 = await watch(nodeB, "b2", p);
    const bDead = await watch(nodeB, "bdead", p);
    await makeNotifiedFirst(db, bDead.sub.callId, "aw_b");
    await killAndAwait(bDead.c, "terminate");
    const mark = [b1.c.notifies.length, b2.c.notifies.length];
    expect(await publisher.publish(p, { body: undefined })).toBe(200);
    const changed = (await rx.waitFor(
      (e: KamailioEvent) =>
        e.type === "presence.changed" &&
        e.presentity === p &&
        e.node === nodeA.nodeId &&
        rx.events.filter((x) => x.type === "presence.changed" && x.presentity === p).length >= 2,
    )) as PresenceChanged;
    // Control: without the service the PUBLISH on A reaches no watcher on B.
    await b1.c.ping();
    await b2.c.ping();
    expect([b1.c.notifies.length, b2.c.notifies.length]).toEqual(mark);

    const w = workerFor(fleet, api.client, tokens);
    const r = await w.run([{ messageId: "fan-1", body: envelopeOf(changed, changed) }]);
    expect(r.failedMessageIds).toEqual([]);
    expect(r.refreshes).toEqual([{ node: nodeB.nodeId, presentityUri: p, event: "presence", outcome: "ok" }]);
    await b1.c.ping();
    await b2.c.ping();
    expect(b1.c.notifiesFor(b1.sub).slice(mark[0])).toHaveLength(1);
    expect(b2.c.notifiesFor(b2.sub).slice(mark[1])).toHaveLength(1);
    expect(await rowsOf(bDead.sub, "aw_b")).toHaveLength(0);
    expect(w.tel.audits.map((a) => [a.node, a.reason, a.dialog.callId])).toEqual([
      [nodeB.nodeId, "reconcile.refresh-failed", bDead.sub.callId],
    ]);
  });
});
