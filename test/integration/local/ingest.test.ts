// The local ingest: the deployed contract (POST /events, per-node x-kwc-key, 401/403/413, one SQS
// message per accepted POST carrying the sender's node as the kwc-node attribute), checked against
// the embedded SQS.
import { DeleteMessageCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type IngestServer, nodeAttributeBytes, startIngestServer } from "../../../local/ingest.ts";
import { type LocalSqs, startLocalSqs } from "../../../local/sqs.ts";

const KEY = "test-ingest-key-of-node-a-0123456789";
const KEY_B = "test-ingest-key-of-node-b-0123456789";
const NEXT_B = "next-ingest-key-of-node-b-0123456789";
const KEYS = { "node-a": [KEY], "node-b": [KEY_B, NEXT_B] };
let sqs: LocalSqs;
let client: SQSClient;
let ingest: IngestServer;

beforeAll(async () => {
  sqs = await startLocalSqs({ maximumMessageSizeBytes: 4096 });
  client = sqs.createClient();
  ingest = await startIngestServer({ client, queueUrl: sqs.queueUrl, keys: KEYS, maxBodyBytes: 4096 });
});

afterAll(async () => {
  await ingest.close();
  client.destroy();
  await sqs.stop();
});

async function post(body: string, headers: Record<string, string> = {}, path = "/events") {
  return fetch(`${ingest.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", connection: "close", ...headers },
    body,
  });
}

async function receive() {
  const out = await client.send(
    new ReceiveMessageCommand({
      QueueUrl: sqs.queueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 0,
      MessageAttributeNames: ["All"],
    }),
  );
  for (const m of out.Messages ?? [])
    await client.send(new DeleteMessageCommand({ QueueUrl: sqs.queueUrl, ReceiptHandle: m.ReceiptHandle }));
  return out.Messages ?? [];
}

async function drain(): Promise<string[]> {
  return (await receive()).map((m) => m.Body ?? "");
}

describe("local ingest", () => {
  it("queues the whole body of an authorised POST as one message, byte for byte", async () => {
    // Characters JSON and SQL treat specially, and an event the worker will reject: not our job here.
    const body = JSON.stringify({
      v: 1,
      events: [{ type: "connection.closed", callId: `a"b\\c%'(<` }, { x: 1 }],
    });
    const res = await post(body, { "x-kwc-key": KEY });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { MessageId?: string }).MessageId).toMatch(/./);
    expect(await drain()).toEqual([body]);
    expect((await sqs.depth("queue")).visible + (await sqs.depth("queue")).inFlight).toBe(0);
  });

  it("sets the sender's node as the kwc-node attribute: each node's own key, both keys of a rotating node", async () => {
    for (const [key, node] of [
      [KEY, "node-a"],
      [KEY_B, "node-b"],
      [NEXT_B, "node-b"],
    ] as const) {
      // The body may claim any node: the ingest does not read it; the worker compares.
      const body = JSON.stringify({ v: 1, events: [{ type: "connection.closed", node: "node-a" }] });
      expect((await post(body, { "x-kwc-key": key })).status).toBe(200);
      const [message, ...rest] = await receive();
      expect(rest).toEqual([]);
      expect(message?.Body).toBe(body);
      expect(message?.MessageAttributes?.["kwc-node"]).toEqual({ DataType: "String", StringValue: node });
    }
  });

  it("answers 401 without the key and 403 with a wrong one, and queues nothing", async () => {
    const missing = await post('{"v":1}');
    expect(missing.status).toBe(401);
    const wrong = await post('{"v":1}', { "x-kwc-key": `${KEY}x` });
    expect(wrong.status).toBe(403);
    const empty = await post('{"v":1}', { "x-kwc-key": "" });
    expect(empty.status).toBe(401);
    expect(await sqs.depth("queue")).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
    // Control: the same body with the right key is queued.
    expect((await post('{"v":1}', { "x-kwc-key": KEY })).status).toBe(200);
    expect(await drain()).toEqual(['{"v":1}']);
  });

  it("answers 413 for a body that does not fit the queue's maximum message size with its attribute, 200 at exactly the limit", async () => {
    // SQS counts the kwc-node attribute: "kwc-node" + "String" + "node-a" = 20 bytes.
    const fits = 4096 - nodeAttributeBytes("node-a");
    expect(fits).toBe(4076);
    const over = await post("x".repeat(fits + 1), { "x-kwc-key": KEY });
    expect(over.status).toBe(413);
    expect(await sqs.depth("queue")).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
    const atLimit = await post("y".repeat(fits), { "x-kwc-key": KEY });
    expect(atLimit.status).toBe(200);
    expect((await drain()).map((b) => b.length)).toEqual([fits]);
  });

  it("has no other route", async () => {
    expect((await post("{}", { "x-kwc-key": KEY }, "/other")).status).toBe(404);
    const get = await fetch(`${ingest.url}/events`, { headers: { "x-kwc-key": KEY } });
    expect(get.status).toBe(404);
    expect(await sqs.depth("queue")).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it("answers 5xx when SQS is unreachable, so the sender keeps its events", async () => {
    const down = await startLocalSqs();
    const downClient = down.createClient();
    const orphan = await startIngestServer({
      client: downClient,
      queueUrl: down.queueUrl,
      keys: KEYS,
      maxBodyBytes: 4096,
    });
    try {
      const ok = await fetch(orphan.eventsUrl, { method: "POST", headers: { "x-kwc-key": KEY }, body: "{}" });
      expect(ok.status).toBe(200); // control: the same ingest accepts while SQS is up
      await down.stop();
      const failed = await fetch(orphan.eventsUrl, {
        method: "POST",
        headers: { "x-kwc-key": KEY },
        body: "{}",
      });
      expect(failed.status).toBeGreaterThanOrEqual(500);
    } finally {
      await orphan.close();
      downClient.destroy();
    }
  });

  it("tells watchers of each accepted body, and the bench's divert takes bodies instead of the queue until cleared", async () => {
    const seen: string[] = [];
    const off = ingest.onAccepted((body) => seen.push(body));
    const diverted: string[] = [];
    ingest.divertTo(async (body) => {
      diverted.push(body);
    });
    try {
      expect((await post('{"v":1,"n":1}', { "x-kwc-key": KEY })).status).toBe(200);
      expect(diverted).toEqual(['{"v":1,"n":1}']);
      expect(await drain()).toEqual([]);
    } finally {
      ingest.divertTo(undefined);
    }
    // control: cleared, the body goes to the queue again
    expect((await post('{"v":1,"n":2}', { "x-kwc-key": KEY })).status).toBe(200);
    expect(await drain()).toEqual(['{"v":1,"n":2}']);
    off();
    expect((await post('{"v":1,"n":3}', { "x-kwc-key": KEY })).status).toBe(200);
    await drain();
    expect(seen).toEqual(['{"v":1,"n":1}', '{"v":1,"n":2}']);
  });
});
