// Configuration of the local Data API server: defaults that match the project's own databases
// (scripts/env.sh), overridable by a JSON file (KWC_DATAAPI_CONFIG) and the same env vars.
import { readFileSync } from "node:fs";
import { z } from "zod";
import type { DataApiServerOptions, DataApiTarget } from "./server.ts";

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

export type LocalEngine = "postgres" | "mysql";

/** The ARN the local server maps to the project's own PostgreSQL or MariaDB. */
export function localResourceArn(engine: LocalEngine): string {
  return engine === "postgres" ? LOCAL_POSTGRES_ARN : LOCAL_MYSQL_ARN;
}

/**
 * A target on the project's own PostgreSQL (KWC_PG_PORT, 55432) or MariaDB (KWC_MY_PORT, 53306) as
 * the `kamailio` user; `overrides` name another database (a test's), ARN or pool size.
 */
export function localTarget(
  engine: LocalEngine,
  overrides: Partial<Pick<DataApiTarget, "resourceArn" | "database" | "poolSize">> = {},
  env: NodeJS.ProcessEnv = process.env,
): DataApiTarget {
  return {
    resourceArn: localResourceArn(engine),
    engine: engine === "postgres" ? "aurora-postgresql" : "aurora-mysql",
    host: "127.0.0.1",
    port: Number(engine === "postgres" ? (env.KWC_PG_PORT ?? 55432) : (env.KWC_MY_PORT ?? 53306)),
    user: env.KWC_DB_USER ?? "kamailio",
    password: env.KWC_DB_PASSWORD ?? "kamailiorw",
    database: env.KWC_DB_NAME ?? "kamailio",
    ...overrides,
  };
}

/** The two local "clusters": PostgreSQL and MariaDB, database `kamailio` (or KWC_DB_NAME). */
export function defaultTargets(env: NodeJS.ProcessEnv = process.env): DataApiTarget[] {
  return [localTarget("postgres", {}, env), localTarget("mysql", {}, env)];
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
