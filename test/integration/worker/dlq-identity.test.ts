// DLQ items carry the node identity (issue 18, docs/security.md): the worker's handler sends what it
// dead-letters through the real SQS sink to the embedded SQS (fauxqs) with the source record's
// `kwc-node` attribute; a redrive (each DLQ message sent back to the events queue with its body and
// message attributes, as an SQS move task moves it) reaches the handler again as the poller hands
// it over (local/poller.ts toRecord), so the identity check applies to it as it did to the POST.
// The watchers table and Kamailio are the worker tests' in-memory fakes: what is under test is the
// attribute's way through SQS and back.
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqsDeadLetterSink } from "#adapters/sqs-dlq.ts";
import { INGEST_NODE_ATTRIBUTE } from "#core/ingest-identity.ts";
import { createWorkerHandler } from "#handlers/functions.ts";
import { toRecord } from "../../../local/poller.ts";
import { type LocalSqs, startLocalSqs } from "../../../local/sqs.ts";
import { closed, envelope, nodeConfig, watcherRow, workerBed } from "../../unit/worker/fakes.ts";

let sqs: LocalSqs;
let client: SQSClient;

beforeAll(async () => {
  sqs = await startLocalSqs({ visibilityTimeoutSeconds: 30, maxReceiveCount: 5 });
  client = sqs.createClient();
});
afterAll(async () => {
  client?.destroy();
  await sqs?.stop();
});

/** Sends to `queueUrl` and receives it back as Lambda's SQS record (attributes included). */
async function roundTrip(queueUrl: string, body: string, node?: string) {
  await client.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: body,
      ...(node && {
        MessageAttributes: { [INGEST_NODE_ATTRIBUTE]: { DataType: "String", StringValue: node } },
      }),
    }),
  );
  const [m] = await takeAll(queueUrl);
  if (!m) throw new Error("nothing received");
  return toRecord(m, sqs.queueArn, sqs.region);
}
async function takeAll(queueUrl: string): Promise<Message[]> {
  const got = await client.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 0,
      MessageAttributeNames: ["All"],
    }),
  );
  const out = got.Messages ?? [];
  if (out.length > 0)
    await client.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: out.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
      }),
    );
  return out;
}
/** A redrive: each DLQ message back to the events queue with its body and message attributes. */
async function redrive(messages: Message[]) {
  const records = [];
  for (const m of messages) {
    const node = m.MessageAttributes?.[INGEST_NODE_ATTRIBUTE]?.StringValue;
    records.push(await roundTrip(sqs.queueUrl, m.Body ?? "", node));
  }
  return records;
}

/** node-1 and node-2 in the fleet, one dead peer's row each; node-9 holds a key but is not in the fleet yet. */
function bed() {
  const t = workerBed();
  const [n1, n2] = t.fleet.nodes as [(typeof t.fleet.nodes)[0], (typeof t.fleet.nodes)[0]];
  const row = (node: typeof n1, port: number) =>
    watcherRow({ contact: `sip:u@10.0.0.9:${port};transport=ws`, socketInfo: node.socketInfo[0] as string });
  t.store.rows(n1.watchersTable).push(row(n1, 1111));
  t.store.rows(n2.watchersTable).push(row(n2, 2222));
  const n9 = nodeConfig("node-9");
  t.store.rows(n9.watchersTable).push(row(n9, 9999));
  const handler = createWorkerHandler({ ...t.deps, dlq: new SqsDeadLetterSink(client, sqs.dlqUrl) });
  return { t, n1, n2, n9, handler };
}

describe("DLQ items carry the node identity through a redrive", () => {
  it("each DLQ message carries its source's kwc-node; a redriven event naming another node is refused, the sender's own is processed", async () => {
    const { t, n1, n2, n9, handler } = bed();
    // node-1 sends an event naming node-2 that the contract rejects (a field too many): dead-lettered.
    const forged = { ...closed("node-2", "10.0.0.9", 2222), note: "x" };
    // node-9's key is known to the ingest, node-9 not yet to the fleet config: dead-lettered.
    const early = closed("node-9", "10.0.0.9", 9999);
    const records = [
      await roundTrip(sqs.queueUrl, envelope(forged), "node-1"),
      await roundTrip(sqs.queueUrl, envelope(early), "node-9"),
      await roundTrip(sqs.queueUrl, envelope({ ...closed("node-1", "10.0.0.9", 1), note: "y" })), // no attribute
    ];
    expect(await handler({ Records: records })).toEqual({ batchItemFailures: [] });
    const dead = await takeAll(sqs.dlqUrl);
    const seen = dead.map((m) => ({
      body: JSON.parse(m.Body ?? "") as unknown,
      node: m.MessageAttributes?.[INGEST_NODE_ATTRIBUTE]?.StringValue,
      source: m.MessageAttributes?.["kwc-source-message-id"]?.StringValue,
    }));
    expect(seen.sort((a, b) => String(a.source).localeCompare(String(b.source)))).toEqual(
      [
        { body: { v: 1, events: [forged] }, node: "node-1", source: records[0]?.messageId },
        { body: { v: 1, events: [early] }, node: "node-9", source: records[1]?.messageId },
        { body: expect.anything(), node: undefined, source: records[2]?.messageId }, // none to carry
      ].sort((a, b) => String(a.source).localeCompare(String(b.source))),
    );
    // Control: nothing was deleted yet.
    for (const n of [n1, n2, n9]) expect(t.store.rows(n.watchersTable)).toHaveLength(1);

    // The redrive after the fixes: node-9 added to the fleet, the rejected event's extra field removed.
    t.fleet.nodes.push(n9);
    const fixed = dead.map((m) => ({ ...m, Body: (m.Body ?? "").replace(/,"note":"[xy]"/, "") }));
    const mismatches = t.tel.counts.EventsNodeMismatch ?? 0;
    const redriven = await redrive(fixed);
    expect(await handler({ Records: redriven })).toEqual({ batchItemFailures: [] });
    expect(t.store.rows(n9.watchersTable)).toHaveLength(0); // node-9's own event: processed
    expect(t.store.rows(n2.watchersTable)).toHaveLength(1); // node-1's event naming node-2: refused
    expect((t.tel.counts.EventsNodeMismatch ?? 0) - mismatches).toBe(1);
    expect(await takeAll(sqs.dlqUrl)).toEqual([]); // refused, not dead-lettered again
  });

  it("control: the same fixed event redriven without the attribute (what every DLQ message looked like before) deletes node-2's row", async () => {
    const { t, n2, handler } = bed();
    const record = await roundTrip(sqs.queueUrl, envelope(closed("node-2", "10.0.0.9", 2222)));
    expect(await handler({ Records: [record] })).toEqual({ batchItemFailures: [] });
    expect(t.store.rows(n2.watchersTable)).toHaveLength(0);
    expect(t.tel.counts.EventsNodeMismatch ?? 0).toBe(0);
  });
});
