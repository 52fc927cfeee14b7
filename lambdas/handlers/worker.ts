/**
 * Worker Lambda entry (SQS event source, reportBatchItemFailures): the environment is parsed at
 * load (env.ts WorkerEnvSchema: KWC_FLEET_CONFIG, KWC_DLQ_URL, KWC_FOLLOW_UP_QUEUE_URL/_ARN,
 * KWC_FOLLOW_UP_DELAY_SECONDS, POWERTOOLS_*, LOG_LEVEL), so a bad value fails the cold start;
 * the wiring is compose.ts, the handler functions.ts createWorkerHandler.
 */
import { workerHandlerFromEnv } from "./compose.ts";
import { parseEnv, WorkerEnvSchema } from "./env.ts";

export const handler = workerHandlerFromEnv(parseEnv("worker", WorkerEnvSchema, process.env));
