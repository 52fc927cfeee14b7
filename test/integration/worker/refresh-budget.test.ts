// The node's refresh budget (kwc.cfg route KWC_REFRESH_BUDGET, pipelimit) on real Kamailio 5.6.3,
// sync mode, PostgreSQL, with a budget of 3 refreshes a second:
// - a burst of refreshes over the budget gets 503s, whoever sends it; other methods pass
//   (control: the same burst with a budget above it is answered 200 throughout);
// - the worker backs off: a dead tab with 8 subscriptions (each of its rows first in Kamailio's
//   scan order, each presentity's state changed in the table without a NOTIFY) is deleted,
//   the refreshes over the budget become delayed refresh.requested follow-ups (counted, none
//   dropped), and processing them later puts every survivor on the current state.
//   CONTROL: before the follow-ups run, the survivors of the refused refreshes still hold the old
//   state.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { DeleteMessageCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqsFollowUpSink } from "#adapters/sqs-follow-up.ts";
import type { ConnectionClosed } from "#core/contract.ts";
import type { FleetConfig } from "#core/fleet.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { type LocalSqs, startLocalSqs } from "../../../local/sqs.ts";
import { makeNotifiedFirst } from "../../helpers/db.ts";
import { type KamailioNode, startKamailio } from "../../helpers/kamailio.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { pidfBody, type SipWsClient, type Subscription } from "../../helpers/sip-ws-client.ts";
import { envelopeOf, oneNodeFleet, startDataApi, workerFor } from "./harness.ts";

const LISTEN_IP = "127.0.0.53";
const BUDGET = 3;
let bed: NodeBed;
let wide: KamailioNode;
let api: { server: DataApiServer; client: RDSDataClient };
let sqs: LocalSqs;
let sqsClient: SQSClient;
let fleet: FleetConfig;
let tokens: Map<string, string>;

beforeAll(async () => {
  bed = await startNodeBed("postgres", "wbudget", {
    nodeId: "budget-a",
    listenIp: LISTEN_IP,
    contactStyle: "nated",
    notifierProcesses: 0,
    defines: { KWC_REFRESH_RATE: BUDGET },
  });
  // The control node: same cfg, a budget far above the burst.
  wide = await startKamailio({
    nodeId: "budget-wide",
    db: bed.db,
    listenIp: LISTEN_IP,
    notifierProcesses: 0,
    defines: { KWC_REFRESH_RATE: 1000 },
  });
  api = await startDataApi();
  sqs = await startLocalSqs({ visibilityTimeoutSeconds: 5 });
  sqsClient = sqs.createClient();
  ({ fleet, tokens } = oneNodeFleet(bed));
});

afterAll(async () => {
  sqsClient?.destroy();
  await sqs?.stop();
  await api?.server.close();
  await wide?.stop();
  await bed?.close();
});

const burst = (node: KamailioNode, n: number) =>
  Promise.all(
    Array.from({ length: n }, (_, i) =>
      node.rpc("presence.refreshWatchers", [`sip:burst${i}@example.com`, "presence", 1]),
    ),
  );

describe("the node's refresh budget (pipelimit in kwc.cfg)", () => {
  it("answers 503 over the budget, counts it, and lets other methods through", async () => {
    const before = (await bed.node.status()).counters.refreshRefused;
    const [replies, tcpList] = await Promise.all([burst(bed.node, 12), bed.node.rpc("core.tcp_list")]);
    const refused = replies.filter((r) => r.status === 503).length;
    // Two 1 s windows at most are touched by the burst: at least 12 - 2 × 3 are refused.
    expect(refused).toBeGreaterThanOrEqual(12 - 2 * BUDGET);
    expect(replies.every((r) => r.status === 503 || r.status === 200 || r.status === 500)).toBe(true);
    expect(tcpList.status).toBe(200);
    expect((await bed.node.status()).counters.refreshRefused - before).toBe(refused);
    expect((await bed.node.status()).refreshRate).toBe(BUDGET);
    // CONTROL: the same burst under a wider budget is never refused.
    const control = await burst(wide, 12);
    expect(control.filter((r) => r.status === 503)).toHaveLength(0);
  });

  it("the worker defers what the node refused, and the follow-ups put every survivor on the current state", async () => {
    const presentities = Array.from({ length: 8 }, (_, i) => `sip:budget${i}@example.com`);
    const publisher = await bed.connect("budget-pub");
    for (const p of presentities)
      expect(await publisher.publish(p, { body: pidfBody(p, "open", "state-one") })).toBe(200);
    const survivors: { c: SipWsClient; sub: Subscription }[] = [];
    for (const [i, p] of presentities.entries()) survivors.push(await bed.watch(`budget-s${i}`, p));
    const dead = await bed.connect("budget-dead");
    for (const p of presentities) {
      const sub = await dead.subscribe(p);
      expect(sub.status).toBe(200);
      await dead.waitForNotify((n) => n.callId === sub.callId);
      await makeNotifiedFirst(bed.db, sub.callId);
    }
    await dead.die("terminate");
    const closed = (await bed.rx.waitFor(
      (e) => e.type === "connection.closed" && e.peer.port === dead.localPort && e.cause === "tcp:closed",
    )) as ConnectionClosed;
    // A new state for every presentity that no NOTIFY carried yet (written where Kamailio reads
    // it, publ_cache=0): only a refresh brings it to the survivors.
    await bed.db.query(
      "UPDATE presentity SET body = convert_to(replace(convert_from(body, 'UTF8'), 'state-one', 'state-two'), 'UTF8') WHERE username LIKE 'budget%'",
    );
    const onV2 = async () => {
      for (const s of survivors) await s.c.ping();
      return survivors.map((s) =>
        s.c.notifiesFor(s.sub).some((n) => n.body.includes("<note>state-two</note>")),
      );
    };
    expect(await onV2()).toEqual(presentities.map(() => false));

    const worker = workerFor(fleet, api.client, tokens, {
      followUps: new SqsFollowUpSink(sqsClient, sqs.queueUrl, 1),
      concurrency: 4,
    });
    const first = await worker.run([{ messageId: "closed-1", body: envelopeOf(closed) }]);
    expect(first.failedMessageIds).toEqual([]);
    expect(first.deleted).toBe(8);
    const ok = first.refreshes.filter((r) => r.outcome === "ok").length;
    const deferred = first.refreshes.filter((r) => r.outcome === "deferred").length;
    expect(ok + deferred).toBe(8);
    expect(ok).toBeLessThanOrEqual(2 * BUDGET);
    expect(deferred).toBeGreaterThan(0);
    expect(worker.tel.counts.RefreshDeferred).toBe(deferred);
    expect(worker.tel.counts.RefreshRefusedByNode).toBeGreaterThan(0);
    expect((worker.tel.counts.RefreshRefusedByNode ?? 0) + (worker.tel.counts.RefreshBackedOff ?? 0)).toBe(
      deferred,
    );
    // CONTROL: the survivors of the refused refreshes are still on the old state.
    expect((await onV2()).filter((v) => !v)).toHaveLength(deferred);

    // Later, the follow-ups (each run may itself be refused in part and deferred again).
    for (let round = 0; round < 10 && (await onV2()).includes(false); round++) {
      const received = await sqsClient.send(
        new ReceiveMessageCommand({ QueueUrl: sqs.queueUrl, WaitTimeSeconds: 5, MaxNumberOfMessages: 10 }),
      );
      // From the follow-up queue (the service's own messages are accepted only from there).
      const records = (received.Messages ?? []).map((m) => ({
        messageId: m.MessageId ?? "",
        body: m.Body ?? "",
        origin: "follow-ups" as const,
      }));
      const result = await worker.run(records);
      expect(result.failedMessageIds).toEqual([]);
      expect(worker.dlq.items).toEqual([]);
      for (const m of received.Messages ?? [])
        await sqsClient.send(
          new DeleteMessageCommand({ QueueUrl: sqs.queueUrl, ReceiptHandle: m.ReceiptHandle }),
        );
    }
    expect(await onV2()).toEqual(presentities.map(() => true));
  });
});
