/**
 * Worker Lambda: SQS batch of ingest messages → cleanup → SQSBatchResponse (reportBatchItemFailures).
 * Thin: clients are built once at module load; createWorkerHandler(deps) is what tests call.
 * Environment: KWC_FLEET_CONFIG, KWC_DLQ_URL, KWC_EVENTS_QUEUE_URL (refresh.requested follow-ups),
 * KWC_FOLLOW_UP_DELAY_SECONDS (default 30), POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE,
 * LOG_LEVEL; endpoints from AWS_ENDPOINT_URL_{SQS,RDS_DATA} when set (local mode).
 */
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { RDSDataClient } from "@aws-sdk/client-rds-data";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { fleetSourceFromEnv } from "../adapters/config-source.ts";
import { DataApiWatcherStore } from "../adapters/data-api-store.ts";
import { KamailioRpcClient } from "../adapters/kamailio-rpc.ts";
import { SqsDeadLetterSink } from "../adapters/sqs-dlq.ts";
import { followUpsFromEnv } from "../adapters/sqs-follow-up.ts";
import { powertoolsTelemetry } from "../adapters/telemetry.ts";
import type { FleetConfig } from "../core/fleet.ts";
import type { WatcherStore } from "../core/ports.ts";
import { type BatchResult, createWorker, type WorkerDeps } from "../core/worker.ts";

/** Maps a batch result to Lambda's partial-batch answer: exactly the records to retry. */
export function toBatchResponse(result: Pick<BatchResult, "failedMessageIds">): SQSBatchResponse {
  return { batchItemFailures: result.failedMessageIds.map((itemIdentifier) => ({ itemIdentifier })) };
}

export function createWorkerHandler(deps: WorkerDeps & { flush?: () => void }) {
  const processBatch = createWorker(deps);
  return async (event: SQSEvent): Promise<SQSBatchResponse> => {
    try {
      const result = await processBatch(event.Records.map((r) => ({ messageId: r.messageId, body: r.body })));
      return toBatchResponse(result);
    } finally {
      deps.flush?.();
    }
  };
}

/** Store per database (the config may be re-read; the Data API client stays the same). */
export function storeCache(client: RDSDataClient): (fleet: FleetConfig) => WatcherStore {
  const stores = new Map<string, WatcherStore>();
  return (fleet) => {
    const key = JSON.stringify(fleet.database);
    let store = stores.get(key);
    if (!store) {
      store = new DataApiWatcherStore(client, fleet.database);
      stores.set(key, store);
    }
    return store;
  };
}

function buildDefaultHandler() {
  const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "kwc-worker" });
  const metrics = new Metrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? "KamailioWatcherCleanup",
    serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "kwc-worker",
  });
  const dlqUrl = process.env.KWC_DLQ_URL ?? "";
  const followUps = followUpsFromEnv();
  const { loadFleet, secret } = fleetSourceFromEnv();
  const sqs = new SQSClient({ useQueueUrlAsEndpoint: !process.env.AWS_ENDPOINT_URL_SQS });
  return createWorkerHandler({
    fleet: loadFleet,
    storeFor: storeCache(new RDSDataClient({})),
    kamailio: new KamailioRpcClient({ token: (node) => secret(node.tokenSecret) }),
    // With AWS_ENDPOINT_URL_SQS (local mode) every call goes there, not to the QueueUrl's host.
    dlq: new SqsDeadLetterSink(sqs, dlqUrl),
    ...(followUps ? { followUps } : {}),
    telemetry: powertoolsTelemetry(logger, metrics),
    flush: () => metrics.publishStoredMetrics(),
  });
}

/** The Lambda entry point; clients are created once per execution environment, at module load. */
export const handler: (event: SQSEvent) => Promise<SQSBatchResponse> = buildDefaultHandler();
