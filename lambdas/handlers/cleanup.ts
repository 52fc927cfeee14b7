/**
 * On-demand cleanup Lambda entry (direct invoke, e.g. `kwc --remote`): the environment is parsed
 * at load (env.ts CleanupEnvSchema: KWC_FLEET_CONFIG, KWC_FOLLOW_UP_QUEUE_URL), so a bad value fails
 * the cold start; the wiring is compose.ts, the handler and its answer (`CleanupResponse`)
 * functions.ts createCleanupHandler.
 */
import { cleanupHandlerFromEnv } from "./compose.ts";
import { CleanupEnvSchema, parseEnv } from "./env.ts";

export const handler = cleanupHandlerFromEnv(parseEnv("cleanup", CleanupEnvSchema, process.env));
