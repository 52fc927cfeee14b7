/**
 * Lambda request authorizer entry of the ingest: maps `x-kwc-key` to the node it belongs to, using
 * the per-node keys secret named by KWC_INGEST_KEYS_SECRET_ARN (`{"<node id>": ["<key>", ...]}`,
 * parsed at load, env.ts), compared in constant time, cached between invocations; the node id goes
 * back in the authorizer context and becomes the `kwc-node` message attribute (docs/security.md).
 * API Gateway itself answers 401 when the header is missing; a deny here becomes a 403. The wiring
 * is compose.ts ingestAuthorizerFromEnv.
 */
import { ingestAuthorizerFromEnv } from "./compose.ts";
import { IngestAuthorizerEnvSchema, parseEnv } from "./env.ts";

export const handler = ingestAuthorizerFromEnv(
  parseEnv("ingest-authorizer", IngestAuthorizerEnvSchema, process.env),
);
