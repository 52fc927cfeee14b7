// The project's own databases behind the local Data API server, as tests and benchmarks reach
// them: the real RDSDataClient pointed at the server, a server target for a test database, and the
// fleet config's `database` block for it.
import { RDSDataClient } from "@aws-sdk/client-rds-data";
import type { DatabaseConfig } from "#core/fleet.ts";
import { LOCAL_SECRET_ARN, localResourceArn, localTarget } from "../../local/dataapi/config.ts";
import type { DataApiTarget } from "../../local/dataapi/server.ts";
import type { TestDb } from "./db.ts";

/** The real SDK client against a local server (dummy credentials; no SDK retries unless asked). */
export function localDataApiClient(endpoint: string, maxAttempts = 1): RDSDataClient {
  return new RDSDataClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts,
  });
}

/** A server target whose default database is the test database. */
export function testDbTarget(
  db: Pick<TestDb, "engine" | "name">,
  overrides: Partial<Pick<DataApiTarget, "resourceArn" | "poolSize">> = {},
): DataApiTarget {
  return localTarget(db.engine, { database: db.name, ...overrides });
}

/** The fleet config's `database` for a test database behind a server with the local targets. */
export function testDbConfig(db: Pick<TestDb, "engine" | "name">): DatabaseConfig {
  return {
    engine: db.engine,
    resourceArn: localResourceArn(db.engine),
    secretArn: LOCAL_SECRET_ARN,
    name: db.name,
  };
}
