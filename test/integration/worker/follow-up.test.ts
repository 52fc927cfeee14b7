// The follow-up path on real Kamailio 5.6.3 (PostgreSQL, fix_nated_contact(), notifier_processes=0)
// with a real local SQS (fauxqs): a dead watcher first and two survivors; the worker deletes the
// dead row, then Kamailio's JSON-RPC is unreachable for the refresh (a test seam in the Kamailio
// port sends it to a closed port, for real: ECONNREFUSED). The record is acknowledged, and exactly
// one refresh.requested is on the events queue (delayed). CONTROL: until that message is
// processed the survivors got nothing. Processing it with the RPC back notifies every survivor.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KamailioRpcClient } from "#adapters/kamailio-rpc.ts";
import { SqsFollowUpSink } from "#adapters/sqs-follow-up.ts";
import type { ConnectionClosed } from "#core/contract.ts";
import type { FleetConfig, NodeConfig } from "#core/fleet.ts";
import { parseMessage } from "#core/parse.ts";
import type { KamailioClient } from "#core/ports.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { type LocalSqs, startLocalSqs } from "../../../local/sqs.ts";
import { makeNotifiedFirst, type TestDb } from "../../helpers/db.ts";
import type { KamailioNode } from "../../helpers/kamailio.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { freePort } from "../../helpers/ports.ts";
import type { Subscription } from "../../helpers/sip-ws-client.ts";
import { envelopeOf, oneNodeFleet, startDataApi, workerFor } from "./harness.ts";

const LISTEN_IP = "127.0.0.47";
let bed: NodeBed;
let db: TestDb;
let node: KamailioNode;
let api: { server: DataApiServer; client: RDSDataClient };
let sqs: LocalSqs;
let sqsClient: SQSClient;
let fleet: FleetConfig;
let tokens: Map<string, string>;

beforeAll(async () => {
  bed = await startNodeBed("postgres", "wfollow", {
    nodeId: "follow-a",
    listenIp: LISTEN_IP,
    contactStyle: "nated",
    notifierProcesses: 0,
  });
  ({ db, node } = bed);
  api = await startDataApi();
  sqs = await startLocalSqs({ visibilityTimeoutSeconds: 5 });
  sqsClient = sqs.createClient();
  ({ fleet, tokens } = oneNodeFleet(bed));
});

afterAll(async () => {
  sqsClient?.destroy();
  await sqs?.stop();
  await api?.server.close();
  await bed?.close();
});

const rowsOf = (sub: Subscription) =>
  db.query("SELECT id FROM active_watchers WHERE callid = $1", [sub.callId]);

describe("refresh after deletions with Kamailio's RPC unreachable (real Kamailio, real SQS)", () => {
  it("sends one refresh.requested; processing it notifies every survivor (control: nothing before)", async () => {
    const presentity = "sip:follow@example.com";
    const publisher = await bed.connect("follow");
    expect(await publisher.publish(presentity)).toBe(200);
    const s1 = await bed.watch("fs1", presentity);
    const s2 = await bed.watch("fs2", presentity);
    const dead = await bed.watch("fdead", presentity);
    await makeNotifiedFirst(db, dead.sub.callId);
    await dead.c.die("terminate");
    const closedEvent = (await bed.rx.waitFor(
      (e) => e.type === "connection.closed" && e.peer.port === dead.c.localPort && e.cause === "tcp:closed",
    )) as ConnectionClosed;
    const mark = [s1.c.notifiesFor(s1.sub).length, s2.c.notifiesFor(s2.sub).length];

    // The RPC goes down right before the DELETE: status and core.tcp_list were answered, the
    // refresh after the delete meets a closed port.
    const closedPort = await freePort(LISTEN_IP);
    const real = new KamailioRpcClient({ token: async (n) => tokens.get(n.id) ?? "", timeoutMs: 3000 });
    let rpcDown = false;
    const cut: KamailioClient = {
      tcpList: (n) => real.tcpList(n),
      status: (n) => real.status(n),
      refreshWatchers: (n: NodeConfig, uri, event) =>
        real.refreshWatchers(
          rpcDown ? { ...n, rpcUrl: `http://${LISTEN_IP}:${closedPort}/RPC` } : n,
          uri,
          event,
        ),
    };
    const down = workerFor(fleet, api.client, tokens, {
      kamailio: cut,
      followUps: new SqsFollowUpSink(sqsClient, sqs.followUpQueueUrl, 1),
      actBeforeDelete: async () => {
        rpcDown = true;
      },
    });
    const first = await down.run([{ messageId: "closed-1", body: envelopeOf(closedEvent) }]);
    expect(first.failedMessageIds).toEqual([]);
    expect(first.deleted).toBe(1);
    expect(await rowsOf(dead.sub)).toHaveLength(0);
    expect(first.refreshes).toEqual([
      { node: node.nodeId, presentityUri: presentity, event: "presence", outcome: "deferred" },
    ]);
    expect(down.tel.counts.RefreshDeferred).toBe(1);

    // CONTROL: the row is gone, but without the follow-up the survivors got nothing.
    await s1.c.ping();
    await s2.c.ping();
    expect([s1.c.notifiesFor(s1.sub).length, s2.c.notifiesFor(s2.sub).length]).toEqual(mark);

    // Exactly one follow-up is on the follow-up queue (after its delay).
    const received = await sqsClient.send(
      new ReceiveMessageCommand({
        QueueUrl: sqs.followUpQueueUrl,
        WaitTimeSeconds: 10,
        MaxNumberOfMessages: 10,
      }),
    );
    expect(received.Messages).toHaveLength(1);
    const message = received.Messages?.[0];
    const parsed = parseMessage(message?.Body ?? "");
    expect(parsed.rejections).toEqual([]);
    expect(parsed.events.map((e) => e.event)).toEqual([
      expect.objectContaining({
        type: "refresh.requested",
        node: node.nodeId,
        presentity,
        event: "presence",
        reason: "refresh-failed",
      }),
    ]);

    // The same body from the events queue (an ingest POST, a DLQ redrive) is refused.
    const laundered = workerFor(fleet, api.client, tokens);
    const refused = await laundered.run([{ messageId: "from-events", body: message?.Body ?? "" }]);
    expect(refused.refreshes).toEqual([]);
    expect(refused.dlq.map((d) => d.reason)).toEqual([
      expect.stringMatching(/only from its follow-up queue/),
    ]);

    // The worker processes it from the follow-up queue with the RPC back: every survivor gets its NOTIFY.
    const up = workerFor(fleet, api.client, tokens);
    const second = await up.run([
      { messageId: message?.MessageId ?? "follow-up", body: message?.Body ?? "", origin: "follow-ups" },
    ]);
    expect(second.failedMessageIds).toEqual([]);
    expect(second.refreshes).toEqual([
      { node: node.nodeId, presentityUri: presentity, event: "presence", outcome: "ok" },
    ]);
    await s1.c.ping();
    await s2.c.ping();
    for (const [i, s] of [s1, s2].entries()) {
      const fresh = s.c.notifiesFor(s.sub).slice(mark[i]);
      expect(fresh).toHaveLength(1);
      expect(fresh[0]?.event).toBe("presence");
    }
    expect(await rowsOf(s1.sub)).toHaveLength(1);
    expect(await rowsOf(s2.sub)).toHaveLength(1);
  });
});
