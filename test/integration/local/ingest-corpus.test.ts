// The bad-input corpus through local mode's HTTP ingest, then through the worker: ~1,000 hostile
// bodies of every invalid class. The ingest mirrors the deployed one (it does not read bodies):
// 413 past the queue's size, 400 where SQS refuses the characters or an empty body, otherwise 200
// and the body queued byte for byte with the sender's kwc-node. The worker then rejects every
// invalid event with a reason, never fails a batch, never crashes, and still processes the valid
// neighbour of each bad event (0 batch-wide failures). Duplicate keys: the last one wins.
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWorkerHandler } from "#handlers/functions.ts";
import { type IngestServer, nodeAttributeBytes, startIngestServer } from "../../../local/ingest.ts";
import { type LocalSqs, startLocalSqs } from "../../../local/sqs.ts";
import {
  BAD_INPUT_CLASSES,
  type BadInput,
  type BadInputClass,
  badInputCorpus,
  envelopeReadable,
} from "../../helpers/bad-inputs.ts";
import { nodeConfig, watcherRow, workerBed } from "../../unit/worker/fakes.ts";

const NODE = "node-1";
const KEY = "corpus-ingest-key-of-node-1-0123456789";
let sqs: LocalSqs;
let client: SQSClient;
let ingest: IngestServer;

beforeAll(async () => {
  sqs = await startLocalSqs();
  client = sqs.createClient();
  ingest = await startIngestServer({
    client,
    queueUrl: sqs.queueUrl,
    keys: { [NODE]: [KEY] },
    maxBodyBytes: sqs.maximumMessageSizeBytes,
  });
});

afterAll(async () => {
  await ingest?.close();
  client?.destroy();
  await sqs?.stop();
});

/** What SQS accepts in a message body (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF). */
const SQS_REFUSED = /[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;

/** The deployed ingest's answer, from its documented rules alone (docs/security.md). */
function expectedStatus(input: BadInput): number {
  if (input.body.length > sqs.maximumMessageSizeBytes - nodeAttributeBytes(NODE)) return 413;
  const text = input.body.toString("utf8");
  if (text.length === 0 || SQS_REFUSED.test(text)) return 400;
  return 200;
}

async function postAll(inputs: BadInput[]): Promise<number[]> {
  const statuses: number[] = new Array(inputs.length);
  let next = 0;
  const worker = async () => {
    while (next < inputs.length) {
      const i = next++;
      const input = inputs[i] as BadInput;
      const res = await fetch(ingest.eventsUrl, {
        method: "POST",
        headers: { "x-kwc-key": KEY, "content-type": "application/json" },
        body: input.body,
      });
      await res.arrayBuffer();
      statuses[i] = res.status;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return statuses;
}

async function drainQueue() {
  const messages: { messageId: string; body: string; node: string | undefined }[] = [];
  for (;;) {
    const out = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: sqs.queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageAttributeNames: ["All"],
      }),
    );
    const batch = out.Messages ?? [];
    if (batch.length === 0) return messages;
    for (const m of batch)
      messages.push({
        messageId: m.MessageId ?? "",
        body: m.Body ?? "",
        node: m.MessageAttributes?.["kwc-node"]?.StringValue,
      });
    await client.send(
      new DeleteMessageBatchCommand({
        QueueUrl: sqs.queueUrl,
        Entries: batch.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
      }),
    );
  }
}

describe("bad-input corpus through the HTTP ingest, then the worker", () => {
  it("answers each input as deployed, queues exactly the accepted ones, and the worker rejects every bad event without failing a batch", async () => {
    const inputs = badInputCorpus({ node: NODE, maxBodyBytes: sqs.maximumMessageSizeBytes });
    expect(inputs.length).toBeGreaterThanOrEqual(1_000);

    // 1. The ingest: status per input as the deployed rules say, nothing else queued.
    const started = Date.now();
    const statuses = await postAll(inputs);
    const posted = Date.now();
    const mismatches = inputs
      .map((input, i) => ({ cls: input.cls, i, got: statuses[i], want: expectedStatus(input) }))
      .filter((m) => m.got !== m.want);
    expect(mismatches).toEqual([]);
    const queued = await drainQueue();
    const accepted = inputs.filter((_, i) => statuses[i] === 200);
    expect(queued.map((m) => m.body).sort()).toEqual(accepted.map((a) => a.body.toString("utf8")).sort());
    expect(new Set(queued.map((m) => m.node))).toEqual(new Set([NODE]));
    expect(ingest.stats.failed + ingest.stats.tooLarge).toBe(inputs.length - accepted.length);

    // 2. The worker, over in-memory ports: per batch, one row per neighbour, none of them connected
    //    (rows of one batch only, so the fake store's LIKE matching stays cheap).
    const t = workerBed({ nodes: [nodeConfig(NODE)] });
    const socketInfo = t.fleet.nodes[0]?.socketInfo[0] as string;
    const table = t.fleet.nodes[0]?.watchersTable as string;
    const inputOf = new Map(accepted.map((a) => [a.body.toString("utf8"), a]));
    const deletedNeighbour = new Map<string, boolean>();
    const handler = createWorkerHandler(t.deps);
    for (let i = 0; i < queued.length; i += 10) {
      const batch = queued.slice(i, i + 10);
      const rows = t.store.rows(table);
      rows.length = 0;
      const rowOf = new Map<string, number>();
      for (const m of batch) {
        const neighbour = inputOf.get(m.body)?.neighbour;
        if (!neighbour) continue;
        const row = watcherRow({
          contact: `sip:u@${neighbour.ip}:${neighbour.port};transport=ws`,
          socketInfo,
        });
        rows.push(row);
        rowOf.set(m.messageId, row.id);
      }
      const records = batch.map((m) => ({
        messageId: m.messageId,
        body: m.body,
        messageAttributes: { "kwc-node": { stringValue: m.node, dataType: "String" } },
      }));
      const response = await handler({ Records: records } as unknown as SQSEvent);
      expect(response.batchItemFailures).toEqual([]);
      const left = new Set(t.store.rows(table).map((r) => r.id));
      for (const [messageId, id] of rowOf) deletedNeighbour.set(messageId, !left.has(id));
    }
    const processed = Date.now();
    const rejectedMessages = new Set(t.dlq.items.map((d) => d.sourceMessageId));
    for (const item of t.dlq.items) expect(item.reason).toMatch(/: (expected|names)/);

    // 3. Per input: rejected with a reason (duplicate keys: as the last key says), neighbour processed.
    const report = new Map<BadInputClass, Record<string, number>>();
    const tally = (cls: BadInputClass, what: string) => {
      const entry = report.get(cls) ?? {};
      entry[what] = (entry[what] ?? 0) + 1;
      report.set(cls, entry);
    };
    inputs.forEach((input, i) => {
      tally(input.cls, `http ${statuses[i]}`);
    });
    for (const m of queued) {
      const input = inputOf.get(m.body) as BadInput;
      const rejected = rejectedMessages.has(m.messageId);
      tally(input.cls, rejected ? "rejected with a reason" : "processed (valid as parsed)");
      if (input.cls === "duplicate-keys") {
        const last = JSON.parse(m.body) as { v: unknown; events: { type: string; peer: { port: number } }[] };
        const validLastWins =
          last.v === 1 &&
          last.events.length === 1 &&
          last.events[0]?.type === "connection.closed" &&
          (last.events[0]?.peer.port ?? 0) >= 1;
        expect({ body: m.body, rejected }).toEqual({ body: m.body, rejected: !validLastWins });
      } else {
        expect({ cls: input.cls, body: m.body.slice(0, 200), rejected }).toMatchObject({ rejected: true });
      }
      if (input.neighbour) {
        const deleted = deletedNeighbour.get(m.messageId);
        expect({ body: m.body.slice(0, 200), deleted }).toEqual({
          body: m.body.slice(0, 200),
          deleted: envelopeReadable(m.body),
        });
        if (deleted) tally(input.cls, "valid neighbour processed");
      }
    }
    expect(t.tel.counts.EventsNodeMismatch ?? 0).toBe(0);
    expect([...report.keys()].sort()).toEqual([...BAD_INPUT_CLASSES].sort());
    console.log(
      `bad-input corpus: ${inputs.length} inputs (POSTs ${posted - started} ms, worker ${processed - posted} ms)\n${[...report].map(([cls, r]) => `  ${cls}: ${JSON.stringify(r)}`).join("\n")}`,
    );
  });
});
