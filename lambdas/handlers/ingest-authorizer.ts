/**
 * Lambda request authorizer entry of the ingest: compares `x-kwc-key` with the Secrets Manager
 * value named by KWC_INGEST_SECRET_ARN (parsed at load, env.ts), in constant time, with the value
 * cached between invocations. API Gateway itself answers 401 when the header is missing; a deny
 * here becomes a 403. The wiring is compose.ts ingestAuthorizerFromEnv.
 */
import { ingestAuthorizerFromEnv } from "./compose.ts";
import { IngestAuthorizerEnvSchema, parseEnv } from "./env.ts";

export const handler = ingestAuthorizerFromEnv(
  parseEnv("ingest-authorizer", IngestAuthorizerEnvSchema, process.env),
);
