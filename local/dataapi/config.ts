// Configuration of the local Data API server: defaults that match the project's own databases
// (scripts/env.sh), overridable by a JSON file (KWC_DATAAPI_CONFIG) and the same env vars.
import { readFileSync } from "node:fs";
import { z } from "zod";
import type { DataApiServerOptions } from "./server.ts";

export const LOCAL_POSTGRES_ARN = "arn:aws:rds:us-east-1:000000000000:cluster:kwc-local-postgres";
export const LOCAL_MYSQL_ARN = "arn:aws:rds:us-east-1:000000000000:cluster:kwc-local-mysql";
export const LOCAL_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:kwc-local-db";

const targetSchema = z.object({
  resourceArn: z.string().min(1),
  engine: z.enum(["aurora-postgresql", "aurora-mysql"]),
  host: z.string().default("127.0.0.1"),
  port: z.number().int().positive(),
  user: z.string(),
  password: z.string(),
  database: z.string().optional(),
  poolSize: z.number().int().positive().optional(),
});

export const dataApiConfigSchema = z.object({
  port: z.number().int().min(0).max(65535).optional(),
  host: z.string().optional(),
  targets: z.array(targetSchema).min(1),
  statementTimeoutMs: z.number().int().positive().optional(),
  idleTransactionMs: z.number().int().positive().optional(),
  maxTransactionMs: z.number().int().positive().optional(),
});
export type DataApiConfig = z.infer<typeof dataApiConfigSchema>;

/** The two local "clusters": PostgreSQL on KWC_PG_PORT (55432), MariaDB on KWC_MY_PORT (53306). */
export function defaultTargets(env: NodeJS.ProcessEnv = process.env): DataApiServerOptions["targets"] {
  const user = env.KWC_DB_USER ?? "kamailio";
  const password = env.KWC_DB_PASSWORD ?? "kamailiorw";
  const database = env.KWC_DB_NAME ?? "kamailio";
  return [
    {
      resourceArn: LOCAL_POSTGRES_ARN,
      engine: "aurora-postgresql",
      host: "127.0.0.1",
      port: Number(env.KWC_PG_PORT ?? 55432),
      user,
      password,
      database,
    },
    {
      resourceArn: LOCAL_MYSQL_ARN,
      engine: "aurora-mysql",
      host: "127.0.0.1",
      port: Number(env.KWC_MY_PORT ?? 53306),
      user,
      password,
      database,
    },
  ];
}

/** Options from KWC_DATAAPI_CONFIG (a JSON file) if set, else the defaults; KWC_DATAAPI_PORT overrides the port. */
export function loadDataApiConfig(env: NodeJS.ProcessEnv = process.env): DataApiServerOptions {
  const file = env.KWC_DATAAPI_CONFIG;
  const base: DataApiConfig = file
    ? dataApiConfigSchema.parse(JSON.parse(readFileSync(file, "utf8")))
    : { targets: defaultTargets(env) };
  const port = env.KWC_DATAAPI_PORT !== undefined ? Number(env.KWC_DATAAPI_PORT) : base.port;
  const timeout = env.KWC_DATAAPI_STATEMENT_TIMEOUT_MS;
  return {
    ...base,
    ...(port !== undefined ? { port } : {}),
    ...(timeout !== undefined ? { statementTimeoutMs: Number(timeout) } : {}),
  };
}
