/**
 * Scheduled reconciler Lambda entry (EventBridge): the environment is parsed at load (env.ts
 * ReconcilerEnvSchema: KWC_FLEET_CONFIG, KWC_RECONCILE_CONCURRENCY default 4,
 * KWC_RECONCILE_DRY_RUN=0|1, KWC_FOLLOW_UP_QUEUE_URL, POWERTOOLS_*, LOG_LEVEL), so a bad value fails
 * the cold start; the wiring is compose.ts, the handler functions.ts createReconcilerHandler.
 */
import { reconcilerHandlerFromEnv } from "./compose.ts";
import { parseEnv, ReconcilerEnvSchema } from "./env.ts";

export const handler = reconcilerHandlerFromEnv(parseEnv("reconciler", ReconcilerEnvSchema, process.env));
