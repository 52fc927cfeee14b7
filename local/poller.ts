/**
 * A poller with the semantics of Lambda's SQS event source mapping, for local mode:
 * - long poll, then gather up to `batchSize` records for at most `batchingWindowMs`;
 * - invoke the handler (the same module the Lambda uses) with an `SQSEvent`;
 * - delete every record except those reported in `batchItemFailures`; if the handler throws,
 *   times out or answers with an unknown item identifier, delete nothing (the whole batch returns);
 * - failed records reappear after the queue's visibility timeout, and SQS itself moves them to the
 *   DLQ after `maxReceiveCount` receives (the redrive policy of the queue, see local/sqs.ts);
 * - at most `concurrency` invocations at a time;
 * - `stop()` stops polling and waits for the batches in flight to finish and be settled; with
 *   `finishReceive` it also lets a long poll under way end by itself (at most `waitTimeSeconds`)
 *   and handles what it got, instead of aborting it: SQS may already have handed messages to an
 *   aborted poll, and those would stay invisible for a whole visibility timeout.
 */
import { randomUUID } from "node:crypto";
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { WORKER_EVENT_SOURCE } from "../infra/event-source-settings.ts";
import { mark } from "./trace.ts";

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<unknown>;

export interface PollerOptions {
  client: SQSClient;
  queueUrl: string;
  queueArn: string;
  region?: string;
  handler: SqsHandler;
  /** Records per invocation (Lambda: 1-10, or up to 10,000 with a batching window). */
  batchSize?: number;
  /** How long to keep gathering records once the first one arrived (Lambda's MaximumBatchingWindowInSeconds). */
  batchingWindowMs?: number;
  /** Long-poll wait of each ReceiveMessage, 1-20 s. */
  waitTimeSeconds?: number;
  /** Concurrent invocations (Lambda's MaximumConcurrency). */
  concurrency?: number;
  /** The function timeout: an invocation running longer counts as failed (its records return). */
  functionTimeoutMs?: number;
  functionName?: string;
  /** Called after each invocation, for status lines and tests. */
  onInvocation?: (result: InvocationResult) => void;
  log?: (line: string) => void;
}

export interface InvocationResult {
  records: number;
  deleted: number;
  failed: number;
  /** Set when the whole batch failed (thrown error, timeout, invalid response). */
  error?: string;
  durationMs: number;
}

export interface PollerStats {
  received: number;
  invocations: number;
  deleted: number;
  failedRecords: number;
  failedInvocations: number;
  inFlight: number;
}

export interface Poller {
  readonly stats: Readonly<PollerStats>;
  /** Stops receiving; resolves once every batch in flight has been handled and settled. */
  stop(options?: { finishReceive?: boolean }): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function startSqsPoller(options: PollerOptions): Poller {
  const batchSize = options.batchSize ?? WORKER_EVENT_SOURCE.batchSize;
  const batchingWindowMs = options.batchingWindowMs ?? WORKER_EVENT_SOURCE.maxBatchingWindowSeconds * 1000;
  const waitTimeSeconds = Math.min(20, Math.max(1, options.waitTimeSeconds ?? 20));
  const concurrency = Math.max(1, options.concurrency ?? WORKER_EVENT_SOURCE.maxConcurrency);
  const functionTimeoutMs = options.functionTimeoutMs ?? WORKER_EVENT_SOURCE.functionTimeoutSeconds * 1000;
  const functionName = options.functionName ?? "kwc-worker";
  const region = options.region ?? "us-east-1";
  const log = options.log ?? (() => {});
  const stats: PollerStats = {
    received: 0,
    invocations: 0,
    deleted: 0,
    failedRecords: 0,
    failedInvocations: 0,
    inFlight: 0,
  };
  /** Aborts a receive under way (stop() without finishReceive). */
  const stopping = new AbortController();
  let halted = false;

  async function receive(max: number, waitSeconds: number): Promise<Message[]> {
    try {
      const out = await options.client.send(
        new ReceiveMessageCommand({
          QueueUrl: options.queueUrl,
          MaxNumberOfMessages: Math.min(10, max),
          WaitTimeSeconds: waitSeconds,
          MessageSystemAttributeNames: ["All"],
          MessageAttributeNames: ["All"],
        }),
        { abortSignal: stopping.signal },
      );
      const messages = out.Messages ?? [];
      stats.received += messages.length;
      if (messages.length > 0) mark("poll received", String(messages.length));
      return messages;
    } catch (error) {
      if (stopping.signal.aborted) return [];
      log(`poller: receive failed: ${(error as Error).message}`);
      await sleep(1000);
      return [];
    }
  }

  /** One batch: a long poll for the first records, then short polls until full or the window closes. */
  async function gatherBatch(): Promise<Message[]> {
    const batch = await receive(batchSize, waitTimeSeconds);
    if (batch.length === 0 || batchingWindowMs <= 0) return batch;
    // A window longer than the visibility timeout can see a record twice: keep its newest receipt.
    const byId = new Map(batch.map((m) => [m.MessageId, m]));
    const windowEnds = Date.now() + batchingWindowMs;
    while (byId.size < batchSize && Date.now() < windowEnds && !halted) {
      const more = await receive(batchSize - byId.size, 0);
      for (const m of more) byId.set(m.MessageId, m);
      if (more.length === 0) await sleep(Math.min(50, Math.max(0, windowEnds - Date.now())));
    }
    return [...byId.values()];
  }

  async function invoke(event: SQSEvent): Promise<unknown> {
    const requestId = randomUUID();
    const deadline = Date.now() + functionTimeoutMs;
    const context: Context = {
      callbackWaitsForEmptyEventLoop: false,
      functionName,
      functionVersion: "$LATEST",
      invokedFunctionArn: `arn:aws:lambda:${region}:000000000000:function:${functionName}`,
      memoryLimitInMB: "256",
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${functionName}`,
      logStreamName: "local",
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: () => {},
      fail: () => {},
      succeed: () => {},
    };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Task timed out after ${functionTimeoutMs / 1000} seconds`)),
        functionTimeoutMs,
      );
    });
    try {
      return await Promise.race([options.handler(event, context), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Which records to keep in the queue; `undefined` means the whole batch failed. */
  function failedIds(records: SQSRecord[], response: unknown): Set<string> | string {
    if (response === undefined || response === null) return new Set();
    const failures = (response as Partial<SQSBatchResponse>).batchItemFailures;
    if (failures === undefined || failures === null) return new Set();
    if (!Array.isArray(failures)) return "invalid response: batchItemFailures is not a list";
    const known = new Set(records.map((r) => r.messageId));
    const ids = new Set<string>();
    for (const failure of failures) {
      const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
      // Lambda fails the whole batch on an empty, missing or unknown identifier.
      if (typeof id !== "string" || !known.has(id))
        return `invalid response: unknown itemIdentifier ${JSON.stringify(id)}`;
      ids.add(id);
    }
    return ids;
  }

  async function deleteRecords(messages: Message[]): Promise<number> {
    let deleted = 0;
    for (let i = 0; i < messages.length; i += 10) {
      const chunk = messages.slice(i, i + 10);
      try {
        const out = await options.client.send(
          new DeleteMessageBatchCommand({
            QueueUrl: options.queueUrl,
            Entries: chunk.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle ?? "" })),
          }),
        );
        deleted += out.Successful?.length ?? 0;
        for (const failure of out.Failed ?? [])
          log(`poller: delete failed: ${failure.Message ?? failure.Code}`);
      } catch (error) {
        // Not deleted means delivered again after the visibility timeout: at-least-once, like Lambda.
        log(`poller: delete failed: ${(error as Error).message}`);
      }
    }
    return deleted;
  }

  async function handleBatch(messages: Message[]): Promise<void> {
    const started = Date.now();
    const records = messages.map((m) => toRecord(m, options.queueArn, region));
    stats.invocations++;
    let outcome: Set<string> | string;
    mark("worker invoked", String(records.length));
    try {
      outcome = failedIds(records, await invoke({ Records: records }));
    } catch (error) {
      outcome = (error as Error).message || String(error);
    }
    mark("worker returned");
    let result: InvocationResult;
    if (typeof outcome === "string") {
      stats.failedInvocations++;
      stats.failedRecords += messages.length;
      log(`poller: batch of ${messages.length} failed, every record returns to the queue: ${outcome}`);
      result = {
        records: messages.length,
        deleted: 0,
        failed: messages.length,
        error: outcome,
        durationMs: Date.now() - started,
      };
    } else {
      const toDelete = messages.filter((m) => !outcome.has(m.MessageId ?? ""));
      const deleted = await deleteRecords(toDelete);
      stats.deleted += deleted;
      stats.failedRecords += outcome.size;
      result = {
        records: messages.length,
        deleted,
        failed: outcome.size,
        durationMs: Date.now() - started,
      };
    }
    options.onInvocation?.(result);
  }

  async function loop(): Promise<void> {
    while (!halted) {
      const messages = await gatherBatch();
      if (messages.length === 0) continue;
      stats.inFlight++;
      try {
        // A batch already received is always handled, even when stop() was called meanwhile.
        await handleBatch(messages);
      } finally {
        stats.inFlight--;
      }
    }
  }

  const loops = Array.from({ length: concurrency }, () => loop());
  return {
    stats,
    async stop(stopOptions) {
      halted = true;
      if (!stopOptions?.finishReceive) stopping.abort();
      await Promise.all(loops);
    },
  };
}

/** An SQS message as Lambda hands it to the function. */
export function toRecord(message: Message, queueArn: string, region: string): SQSRecord {
  const attributes = message.Attributes ?? {};
  const messageAttributes: SQSRecord["messageAttributes"] = {};
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    messageAttributes[name] = {
      dataType: value.DataType ?? "String",
      ...(value.StringValue !== undefined && { stringValue: value.StringValue }),
      ...(value.BinaryValue !== undefined && {
        binaryValue: Buffer.from(value.BinaryValue).toString("base64"),
      }),
      stringListValues: [],
      binaryListValues: [],
    };
  }
  return {
    messageId: message.MessageId ?? "",
    receiptHandle: message.ReceiptHandle ?? "",
    body: message.Body ?? "",
    attributes: {
      ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? "1",
      SentTimestamp: attributes.SentTimestamp ?? String(Date.now()),
      SenderId: attributes.SenderId ?? "000000000000",
      ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    },
    messageAttributes,
    md5OfBody: message.MD5OfBody ?? "",
    ...(message.MD5OfMessageAttributes !== undefined && {
      md5OfMessageAttributes: message.MD5OfMessageAttributes,
    }),
    eventSource: "aws:sqs",
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}
