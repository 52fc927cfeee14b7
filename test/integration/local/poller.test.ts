// The local poller against the embedded SQS (fauxqs): Lambda's SQS event-source semantics with
// timeouts cut to 1 s. Test handlers stand in for the worker.
import { ReceiveMessageCommand, SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Poller, type PollerOptions, type SqsHandler, startSqsPoller } from "../../../local/poller.ts";
import { type LocalSqs, startLocalSqs } from "../../../local/sqs.ts";
import { until } from "./until.ts";

let sqs: LocalSqs;
let client: SQSClient;
let poller: Poller | undefined;

beforeEach(async () => {
  sqs = await startLocalSqs({ visibilityTimeoutSeconds: 1, maxReceiveCount: 2 });
  client = sqs.createClient();
});

afterEach(async () => {
  await poller?.stop();
  poller = undefined;
  client.destroy();
  await sqs.stop();
});

async function send(...bodies: string[]): Promise<void> {
  await client.send(
    new SendMessageBatchCommand({
      QueueUrl: sqs.queueUrl,
      Entries: bodies.map((body, i) => ({ Id: String(i), MessageBody: body })),
    }),
  );
}

function start(handler: SqsHandler, extra: Partial<PollerOptions> = {}): Poller {
  poller = startSqsPoller({
    client,
    queueUrl: sqs.queueUrl,
    queueArn: sqs.queueArn,
    handler,
    waitTimeSeconds: 1,
    ...extra,
  });
  return poller;
}

async function dlqBodies(): Promise<string[]> {
  const out = await client.send(
    new ReceiveMessageCommand({ QueueUrl: sqs.dlqUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
  );
  return (out.Messages ?? []).map((m) => m.Body ?? "").sort();
}

describe("local SQS poller", () => {
  it("deletes all but the reported failures; a failure returns after the visibility timeout and reaches the DLQ after maxReceiveCount", async () => {
    const deliveries: { body: string; receiveCount: number }[] = [];
    const handler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
      for (const r of event.Records)
        deliveries.push({ body: r.body, receiveCount: Number(r.attributes.ApproximateReceiveCount) });
      expect(
        event.Records.every((r) => r.eventSource === "aws:sqs" && r.eventSourceARN === sqs.queueArn),
      ).toBe(true);
      return {
        batchItemFailures: event.Records.filter((r) => r.body === "poison").map((r) => ({
          itemIdentifier: r.messageId,
        })),
      };
    };
    await send("ok-1", "poison", "ok-2");
    const running = start(handler);
    await until("the poison message in the DLQ", async () => (await sqs.depth("dlq")).visible === 1);
    await until("the queue to drain", async () => {
      const d = await sqs.depth("queue");
      return d.visible + d.inFlight === 0;
    });
    expect(await dlqBodies()).toEqual(["poison"]);
    // Each good message once; the poison one exactly maxReceiveCount (2) times, with growing counts.
    expect(deliveries.filter((d) => d.body.startsWith("ok")).map((d) => d.receiveCount)).toEqual([1, 1]);
    expect(deliveries.filter((d) => d.body === "poison").map((d) => d.receiveCount)).toEqual([1, 2]);
    expect(running.stats.deleted).toBe(2);
    expect(running.stats.failedRecords).toBe(2);
  });

  it("returns the whole batch when the handler throws, times out or names an unknown record", async () => {
    const attempts = new Map<string, number>();
    const handler: SqsHandler = async (event) => {
      const body = event.Records[0]?.body ?? "";
      const n = (attempts.get(body) ?? 0) + 1;
      attempts.set(body, n);
      if (n > 1) return { batchItemFailures: [] }; // succeeds on the redelivery
      if (body === "throws") throw new Error("boom");
      if (body === "slow") await new Promise((resolve) => setTimeout(resolve, 1500));
      return { batchItemFailures: [{ itemIdentifier: "not-a-message-id" }] };
    };
    await send("throws", "slow", "unknown-id");
    const running = start(handler, { batchSize: 1, functionTimeoutMs: 500, concurrency: 3 });
    await until(
      "every message handled twice",
      () => [...attempts.values()].every((n) => n === 2) && attempts.size === 3,
    );
    await until("the queue to drain", async () => {
      const d = await sqs.depth("queue");
      return d.visible + d.inFlight === 0;
    });
    expect(running.stats.failedInvocations).toBe(3);
    expect(running.stats.deleted).toBe(3);
    expect(await dlqBodies()).toEqual([]);
  });

  it("gathers records for the batching window and invokes as soon as the batch is full", async () => {
    const batches: string[][] = [];
    const running = start(
      async (event) => {
        batches.push(event.Records.map((r) => r.body));
      },
      { batchSize: 3, batchingWindowMs: 3000, concurrency: 1 },
    );
    await send("a");
    await until("the poller to receive the first record", () => running.stats.received >= 1);
    await send("b", "c");
    await until("one invocation", () => batches.length >= 1);
    expect(batches).toEqual([["a", "b", "c"]]);
  });

  it("never runs more than `concurrency` invocations at once", async () => {
    let running = 0;
    let peak = 0;
    let handled = 0;
    start(
      async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setTimeout(resolve, 200));
        running--;
        handled++;
      },
      { batchSize: 1, concurrency: 2 },
    );
    await send("1", "2", "3", "4", "5", "6");
    await until("six invocations", () => handled === 6);
    expect(peak).toBe(2);
  });

  it("stop() finishes the batch in flight and deletes it before resolving", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let finished = false;
    const running = start(
      async () => {
        await gate;
        finished = true;
      },
      { concurrency: 1 },
    );
    await send("in-flight");
    await until("the handler to be running", () => running.stats.inFlight === 1);
    let stopped = false;
    const stopping = running.stop().then(() => {
      stopped = true;
    });
    // While the handler is blocked, stop() cannot have resolved.
    await until("a receive loop turn", async () => (await sqs.depth("queue")).inFlight === 1);
    expect(stopped).toBe(false);
    release();
    await stopping;
    poller = undefined;
    expect(finished).toBe(true);
    expect(running.stats.deleted).toBe(1);
    const depth = await sqs.depth("queue");
    expect(depth.visible + depth.inFlight).toBe(0);
  });

  it("stop({ finishReceive }) hands a message SQS gave the poll under way to the handler; an aborted poll strands it (the control)", async () => {
    // A queue whose visibility (30 s) outlasts the test: a stranded message stays in flight.
    const long = await startLocalSqs({
      visibilityTimeoutSeconds: 30,
      queueName: "strand",
      dlqName: "strand-dlq",
    });
    const c = long.createClient();
    try {
      const run = async (finishReceive: boolean) => {
        const bodies: string[] = [];
        const p = startSqsPoller({
          client: c,
          queueUrl: long.queueUrl,
          queueArn: long.queueArn,
          waitTimeSeconds: 2,
          handler: async (event: SQSEvent) => {
            bodies.push(...event.Records.map((r) => r.body));
          },
        });
        // The first long poll is under way at once; stop, then the message arrives during it.
        await new Promise((r) => setImmediate(r));
        const stopping = p.stop({ finishReceive });
        await c.send(
          new SendMessageBatchCommand({
            QueueUrl: long.queueUrl,
            Entries: [{ Id: "0", MessageBody: `m-${finishReceive}` }],
          }),
        );
        await stopping;
        return { bodies, depth: await long.depth("queue") };
      };
      const graceful = await run(true);
      expect(graceful.bodies).toEqual(["m-true"]);
      expect(graceful.depth).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
      const aborted = await run(false);
      expect(aborted.bodies).toEqual([]);
      // Not handled, and still in the queue: fauxqs 2.4.1 handed it to the aborted poll, so it sits
      // in flight for the whole visibility timeout (seen here: inFlight 1).
      expect(aborted.depth.visible + aborted.depth.inFlight).toBe(1);
    } finally {
      c.destroy();
      await long.stop();
    }
  });
});
