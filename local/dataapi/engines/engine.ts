// What the server needs from a database engine. The server owns the Data API semantics
// (timeouts, transactions, limits); an engine owns its dialect: binding, result encoding,
// error mapping and how to cancel a running statement.
import type { DataApiError } from "../errors.ts";
import type { ResultOptions, SqlParameter, StatementResult } from "../protocol.ts";

export interface CompiledStatement {
  sql: string;
  values: unknown[];
}

export interface Session {
  /** the database connection id (PostgreSQL backend pid, MySQL thread id): `dbConnectionId` */
  readonly connectionId: number;
  run(
    statement: CompiledStatement,
    options: ResultOptions & { withMetadata: boolean },
  ): Promise<StatementResult>;
  /** plain SQL without results, e.g. BEGIN / COMMIT */
  exec(sql: string): Promise<void>;
  /** cancels the statement running on this session, from another connection */
  cancel(): Promise<void>;
  release(destroy?: boolean): void;
}

export interface Engine {
  readonly kind: "aurora-postgresql" | "aurora-mysql";
  /** `:name` → placeholders, typed binding; throws DataApiError for a bad call or refused syntax */
  compile(sql: string, parameters: readonly SqlParameter[]): CompiledStatement;
  acquire(database: string): Promise<Session>;
  /** maps a driver error to the Data API error the real service returns */
  mapError(error: unknown): DataApiError;
  close(): Promise<void>;
}

/** TLS settings for a target's database connections (node-postgres and mysql2 take this shape). */
export interface DbTls {
  /** false only when the operator asked for encryption without verification (sslmode=require). */
  rejectUnauthorized: boolean;
  /** PEM of the CA that signed the server certificate (PGSSLROOTCERT, sslrootcert=, ssl-ca=). */
  ca?: string;
}
