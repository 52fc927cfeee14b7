// The local pipeline for fault tests (issue 18): the embedded SQS (fauxqs) with its redrive policy,
// the local poller (Lambda's SQS semantics), the worker's real handler, the local Data API server
// reaching the project's database through a TCP proxy that can cut the link, and a fake Kamailio
// reporting a seeded world's end-state connections. Used by the CI fault tests and the soak bench.
import {
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { Context, SQSEvent } from "aws-lambda";
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import type { DlqItem } from "#core/ports.ts";
import type { InputRecord } from "#core/worker/types.ts";
import { createWorkerHandler } from "#handlers/functions.ts";
import { localTarget } from "../../local/dataapi/config.ts";
import { type DataApiServer, startDataApiServer } from "../../local/dataapi/server.ts";
import { type Poller, startSqsPoller } from "../../local/poller.ts";
import { type LocalSqs, startLocalSqs } from "../../local/sqs.ts";
import { localDataApiClient, testDbConfig } from "./dataapi.ts";
import { DB_HOST, MY_PORT, PG_PORT, type TestDb } from "./db.ts";
import { RecordingSink } from "./fakes.ts";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.ts";
import { fleetFor, kamailioOf, type World } from "./watcher-world.ts";

export interface FaultPipelineOptions {
  db: TestDb;
  world: World;
  visibilityTimeoutSeconds: number;
  maxReceiveCount: number;
  /** Records per invocation (default 10, Lambda's default). */
  batchSize?: number;
  /** Runs before each invocation with the records' highest receive count (arm a fault here). */
  beforeInvoke?: (maxReceiveCount: number) => void;
  afterInvoke?: () => void;
}

export interface FaultPipeline {
  sqs: LocalSqs;
  client: SQSClient;
  proxy: TcpProxy;
  server: DataApiServer;
  tel: ReturnType<typeof memoryTelemetry>;
  /** Invalid events the worker itself dead-lettered (none expected here). */
  rejected: DlqItem[];
  /** Every record delivered to the handler, with its receive count. */
  deliveries: { messageId: string; receiveCount: number }[];
  poller: Poller;
  send(records: InputRecord[]): Promise<void>;
  /** Until the queue has nothing visible or in flight. */
  drained(timeoutMs: number): Promise<void>;
  /** Receives (and deletes) everything in the redrive DLQ. */
  takeDlq(): Promise<{ messageId: string; body: string; node: string | undefined }[]>;
  /** Sends DLQ messages back to the queue (a redrive after recovery). */
  redrive(messages: { body: string; node: string | undefined }[]): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultPipeline(o: FaultPipelineOptions): Promise<FaultPipeline> {
  const proxy = await startTcpProxy({ host: DB_HOST, port: o.db.engine === "postgres" ? PG_PORT : MY_PORT });
  const server = await startDataApiServer({
    targets: [{ ...localTarget(o.db.engine, { database: o.db.name }), port: proxy.port }],
    statementTimeoutMs: 5_000,
  });
  const dataApi = localDataApiClient(server.endpoint);
  const sqs = await startLocalSqs({
    visibilityTimeoutSeconds: o.visibilityTimeoutSeconds,
    maxReceiveCount: o.maxReceiveCount,
  });
  const client = sqs.createClient();
  const fleet = fleetFor(o.world, testDbConfig(o.db));
  const tel = memoryTelemetry();
  const dlq = new RecordingSink<DlqItem>();
  const handler = createWorkerHandler({
    fleet: async () => fleet,
    storeFor: () => new DataApiWatcherStore(dataApi, fleet.database),
    kamailio: kamailioOf(o.world),
    dlq,
    telemetry: tel.telemetry,
  });
  const deliveries: FaultPipeline["deliveries"] = [];
  const poller = startSqsPoller({
    client,
    queueUrl: sqs.queueUrl,
    queueArn: sqs.queueArn,
    waitTimeSeconds: 1,
    batchSize: o.batchSize ?? 10,
    concurrency: 1,
    functionTimeoutMs: 15_000,
    handler: async (event: SQSEvent, context: Context) => {
      const counts = event.Records.map((r) => Number(r.attributes.ApproximateReceiveCount));
      for (const r of event.Records)
        deliveries.push({
          messageId: r.messageId,
          receiveCount: Number(r.attributes.ApproximateReceiveCount),
        });
      o.beforeInvoke?.(Math.max(...counts));
      try {
        return await handler(event, context);
      } finally {
        o.afterInvoke?.();
      }
    },
  });
  const sendBatch = async (entries: { body: string; node: string | undefined }[]) => {
    for (let i = 0; i < entries.length; i += 10)
      await client.send(
        new SendMessageBatchCommand({
          QueueUrl: sqs.queueUrl,
          Entries: entries.slice(i, i + 10).map((e, j) => ({
            Id: String(j),
            MessageBody: e.body,
            ...(e.node
              ? { MessageAttributes: { "kwc-node": { DataType: "String", StringValue: e.node } } }
              : {}),
          })),
        }),
      );
  };
  return {
    sqs,
    client,
    proxy,
    server,
    tel,
    rejected: dlq.items,
    deliveries,
    poller,
    send: (records) => sendBatch(records.map((r) => ({ body: r.body, node: r.ingestNode }))),
    async drained(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const d = await sqs.depth("queue");
        if (d.visible + d.inFlight + d.delayed === 0 && poller.stats.inFlight === 0) return;
        if (Date.now() > deadline)
          throw new Error(`queue not drained after ${timeoutMs} ms: ${JSON.stringify(d)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async takeDlq() {
      const out: { messageId: string; body: string; node: string | undefined }[] = [];
      for (;;) {
        const got = await client.send(
          new ReceiveMessageCommand({
            QueueUrl: sqs.dlqUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 0,
            MessageAttributeNames: ["All"],
          }),
        );
        const batch = got.Messages ?? [];
        if (batch.length === 0) return out;
        for (const m of batch)
          out.push({
            messageId: m.MessageId ?? "",
            body: m.Body ?? "",
            node: m.MessageAttributes?.["kwc-node"]?.StringValue,
          });
        await client.send(
          new DeleteMessageBatchCommand({
            QueueUrl: sqs.dlqUrl,
            Entries: batch.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
          }),
        );
      }
    },
    redrive: sendBatch,
    async close() {
      await poller.stop();
      client.destroy();
      await sqs.stop();
      dataApi.destroy();
      await server.close();
      await proxy.close();
    },
  };
}
