// A local RDS Data API (restJson1, as @aws-sdk/client-rds-data speaks it) over local PostgreSQL
// (aurora-postgresql) and MariaDB (aurora-mysql). The real RDSDataClient works against it unchanged:
//   new RDSDataClient({ endpoint: server.endpoint, region: "us-east-1", credentials: { accessKeyId: "x", secretAccessKey: "x" } })
import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { z } from "zod";
import { mark } from "../trace.ts";
import type { DbTls, Engine, Session } from "./engines/engine.ts";
import { MysqlEngine } from "./engines/mysql.ts";
import { PostgresEngine } from "./engines/postgres.ts";
import { badRequest, DataApiError } from "./errors.ts";
import { FaultInjector } from "./faults.ts";
import {
  batchExecuteStatementRequestSchema,
  beginTransactionRequestSchema,
  endTransactionRequestSchema,
  executeStatementRequestSchema,
  type OutField,
  type StatementResult,
  stringifyExact,
} from "./protocol.ts";

export type { FaultKind, FaultOptions } from "./faults.ts";
export { FaultInjector } from "./faults.ts";

export interface DataApiTarget {
  resourceArn: string;
  engine: "aurora-postgresql" | "aurora-mysql";
  host: string;
  port: number;
  user: string;
  password: string;
  /** the database when a request names none (default `kamailio`) */
  database?: string;
  /** connections per database (default 10) */
  poolSize?: number;
  /** TLS to the database server (default: none) */
  ssl?: DbTls;
}

export interface DataApiServerOptions {
  /** 0 or absent = a free port */
  port?: number;
  host?: string;
  targets: DataApiTarget[];
  /** default 45 000 (AWS) */
  statementTimeoutMs?: number;
  /** rollback after this long without a call using the transaction; default 180 000 (AWS) */
  idleTransactionMs?: number;
  /** default 24 h (AWS) */
  maxTransactionMs?: number;
  /** default 4 MiB (AWS), headers included */
  maxRequestBytes?: number;
  /** default 1 MiB (AWS) */
  maxResponseBytes?: number;
  /** one line per call, for a CLI; silent by default */
  log?: (line: string) => void;
}

export interface DataApiStats {
  calls: number;
  byOperation: Record<string, number>;
}

export interface DataApiServer {
  /** http://HOST:PORT, for `new RDSDataClient({ endpoint })` or AWS_ENDPOINT_URL_RDS_DATA */
  endpoint: string;
  port: number;
  faults: FaultInjector;
  stats: DataApiStats;
  /** open transactions (for tests of the idle rollback) */
  openTransactions(): number;
  close(): Promise<void>;
}

const MiB = 1024 * 1024;

const operationsByPath: Record<string, string> = {
  "/Execute": "ExecuteStatement",
  "/BatchExecute": "BatchExecuteStatement",
  "/BeginTransaction": "BeginTransaction",
  "/CommitTransaction": "CommitTransaction",
  "/RollbackTransaction": "RollbackTransaction",
};

interface Transaction {
  id: string;
  resourceArn: string;
  session: Session;
  /** calls on one transaction run one after another on its connection */
  queue: Promise<unknown>;
  idleTimer: NodeJS.Timeout;
  maxTimer: NodeJS.Timeout;
}

class TimedOut {
  constructor(readonly connectionId: number) {}
}

function parse<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const result = schema.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw badRequest(`Invalid request: ${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`);
  }
  return result.data;
}

export async function startDataApiServer(options: DataApiServerOptions): Promise<DataApiServer> {
  const statementTimeoutMs = options.statementTimeoutMs ?? 45_000;
  const idleTransactionMs = options.idleTransactionMs ?? 180_000;
  const maxTransactionMs = options.maxTransactionMs ?? 24 * 3600_000;
  const maxRequestBytes = options.maxRequestBytes ?? 4 * MiB;
  const maxResponseBytes = options.maxResponseBytes ?? MiB;
  const faults = new FaultInjector();
  const stats: DataApiStats = { calls: 0, byOperation: {} };
  const transactions = new Map<string, Transaction>();
  const targets = new Map<string, { target: DataApiTarget; engine: Engine }>();
  for (const target of options.targets) {
    const config = {
      host: target.host,
      port: target.port,
      user: target.user,
      password: target.password,
      ...(target.ssl ? { ssl: target.ssl } : {}),
    };
    const poolSize = target.poolSize ?? 10;
    const engine =
      target.engine === "aurora-postgresql"
        ? new PostgresEngine({ ...config, poolSize })
        : new MysqlEngine({ ...config, poolSize });
    targets.set(target.resourceArn, { target, engine });
  }

  function resolve(resourceArn: string) {
    const found = targets.get(resourceArn);
    if (!found)
      throw new DataApiError("NotFoundException", `Cluster not found for resource ARN ${resourceArn}`);
    return found;
  }

  /** Runs `work` under the statement timeout; on timeout cancels it unless `continueAfterTimeout`. */
  async function withTimeout<T>(
    session: Session,
    work: Promise<T>,
    continueAfterTimeout: boolean,
  ): Promise<{ value: T } | { timedOut: TimedOut; settled: Promise<unknown> }> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<"timeout">((resolveTimeout) => {
      timer = setTimeout(() => resolveTimeout("timeout"), statementTimeoutMs);
    });
    const outcome = await Promise.race([
      work.then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
      deadline,
    ]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      const settled = work.catch(() => undefined);
      if (!continueAfterTimeout) {
        await session.cancel().catch(() => undefined);
        await settled;
      }
      return { timedOut: new TimedOut(session.connectionId), settled };
    }
    if ("error" in outcome) throw outcome.error;
    return outcome;
  }

  const timeoutError = (t: TimedOut) =>
    new DataApiError("StatementTimeoutException", "The statement has timed out", {
      dbConnectionId: t.connectionId,
    });

  function transaction(id: string, resourceArn: string): Transaction {
    const tx = transactions.get(id);
    if (!tx || tx.resourceArn !== resourceArn) {
      throw new DataApiError("TransactionNotFoundException", `Transaction ${id} is not found`);
    }
    tx.idleTimer.refresh();
    return tx;
  }

  function endTransaction(tx: Transaction, sql: "COMMIT" | "ROLLBACK"): Promise<void> {
    transactions.delete(tx.id);
    clearTimeout(tx.idleTimer);
    clearTimeout(tx.maxTimer);
    const done = tx.queue.catch(() => undefined).then(() => tx.session.exec(sql));
    return done.then(
      () => tx.session.release(),
      (error: unknown) => {
        tx.session.release(true);
        throw error;
      },
    );
  }

  /** Runs `fn` in the transaction (serialised) or on a pooled session of its own. */
  async function onSession<T>(
    engine: Engine,
    database: string,
    resourceArn: string,
    transactionId: string | undefined,
    continueAfterTimeout: boolean,
    fn: (session: Session) => Promise<T>,
  ): Promise<T> {
    if (transactionId !== undefined) {
      const tx = transaction(transactionId, resourceArn);
      const run = tx.queue
        .catch(() => undefined)
        .then(() => withTimeout(tx.session, fn(tx.session), continueAfterTimeout));
      tx.queue = run.then(
        (r) => ("settled" in r ? r.settled : undefined),
        () => undefined,
      );
      const result = await run;
      tx.idleTimer.refresh();
      if ("timedOut" in result) throw timeoutError(result.timedOut);
      return result.value;
    }
    const session = await engine.acquire(database);
    let released = false;
    try {
      const result = await withTimeout(session, fn(session), continueAfterTimeout);
      if ("timedOut" in result) {
        released = true;
        void result.settled.then(() => session.release());
        throw timeoutError(result.timedOut);
      }
      return result.value;
    } catch (error) {
      if (!released) {
        released = true;
        session.release();
      }
      throw error;
    } finally {
      if (!released) session.release();
    }
  }

  const databaseOf = (target: DataApiTarget, requested: string | undefined) =>
    requested || target.database || "kamailio";

  async function executeStatement(body: unknown) {
    const req = parse(executeStatementRequestSchema, body);
    const { target, engine } = resolve(req.resourceArn);
    const compiled = engine.compile(req.sql, req.parameters ?? []);
    const resultOptions = {
      longAsString: req.resultSetOptions?.longReturnType === "STRING",
      decimalAsNumber: req.resultSetOptions?.decimalReturnType === "DOUBLE_OR_LONG",
      withMetadata: req.includeResultMetadata === true,
    };
    const result = await onSession(
      engine,
      databaseOf(target, req.database),
      req.resourceArn,
      req.transactionId,
      req.continueAfterTimeout === true,
      (session) => session.run(compiled, resultOptions),
    );
    const response: Record<string, unknown> = {
      numberOfRecordsUpdated: result.numberOfRecordsUpdated,
      generatedFields: result.generatedFields,
    };
    if (result.records) {
      if (req.formatRecordsAs === "JSON") response.formattedRecords = formatRecords(result);
      else response.records = result.records;
      if (result.columns) response.columnMetadata = result.columns;
    }
    return response;
  }

  async function batchExecuteStatement(body: unknown) {
    const req = parse(batchExecuteStatementRequestSchema, body);
    const { target, engine } = resolve(req.resourceArn);
    const sql = req.sql.replace(/;\s*$/, "");
    const sets = req.parameterSets?.length ? req.parameterSets : [[]];
    const compiled = sets.map((set) => engine.compile(sql, set));
    const resultOptions = { longAsString: false, decimalAsNumber: false, withMetadata: false };
    const inTransaction = req.transactionId !== undefined;
    const results = await onSession(
      engine,
      databaseOf(target, req.database),
      req.resourceArn,
      req.transactionId,
      false,
      async (session) => {
        // all-or-nothing: outside a transaction the whole batch runs in one of its own
        if (!inTransaction) await session.exec("BEGIN");
        const out: StatementResult[] = [];
        try {
          for (const statement of compiled) out.push(await session.run(statement, resultOptions));
          if (!inTransaction) await session.exec("COMMIT");
        } catch (error) {
          if (!inTransaction) await session.exec("ROLLBACK").catch(() => undefined);
          throw error;
        }
        return out;
      },
    );
    return {
      updateResults: results.map((r) => ({
        // MySQL: the auto-increment value; PostgreSQL: the RETURNING row, if any
        generatedFields: engine.kind === "aurora-postgresql" ? (r.records?.[0] ?? []) : r.generatedFields,
      })),
    };
  }

  async function beginTransaction(body: unknown) {
    const req = parse(beginTransactionRequestSchema, body);
    const { target, engine } = resolve(req.resourceArn);
    const session = await engine.acquire(databaseOf(target, req.database));
    try {
      await session.exec("BEGIN");
    } catch (error) {
      session.release(true);
      throw error;
    }
    const id = randomBytes(96).toString("base64");
    const tx: Transaction = {
      id,
      resourceArn: req.resourceArn,
      session,
      queue: Promise.resolve(),
      idleTimer: setTimeout(
        () => void endTransaction(tx, "ROLLBACK").catch(() => undefined),
        idleTransactionMs,
      ),
      maxTimer: setTimeout(
        () => void endTransaction(tx, "ROLLBACK").catch(() => undefined),
        maxTransactionMs,
      ),
    };
    tx.idleTimer.unref();
    tx.maxTimer.unref();
    transactions.set(id, tx);
    return { transactionId: id };
  }

  async function commitOrRollback(body: unknown, commit: boolean) {
    const req = parse(endTransactionRequestSchema, body);
    resolve(req.resourceArn);
    const tx = transaction(req.transactionId, req.resourceArn);
    await endTransaction(tx, commit ? "COMMIT" : "ROLLBACK");
    return { transactionStatus: commit ? "Transaction Committed" : "Rollback Complete" };
  }

  const handlers: Record<string, (body: unknown) => Promise<unknown>> = {
    ExecuteStatement: executeStatement,
    BatchExecuteStatement: batchExecuteStatement,
    BeginTransaction: beginTransaction,
    CommitTransaction: (body) => commitOrRollback(body, true),
    RollbackTransaction: (body) => commitOrRollback(body, false),
  };

  function send(res: ServerResponse, status: number, payload: string, errorName?: string): void {
    const headers: Record<string, string | number> = {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(payload),
      "x-amzn-RequestId": randomUUID(),
    };
    if (errorName) headers["x-amzn-ErrorType"] = errorName;
    res.writeHead(status, headers).end(payload);
  }

  function sendError(res: ServerResponse, error: DataApiError): void {
    send(res, error.status, JSON.stringify({ message: error.message, ...error.members }), error.errorName);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const operation = operationsByPath[(req.url ?? "").split("?")[0] ?? ""];
    const headerBytes = req.rawHeaders.reduce((n, h) => n + Buffer.byteLength(h) + 2, 0);
    const chunks: Buffer[] = [];
    let size = headerBytes;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size <= maxRequestBytes) chunks.push(chunk as Buffer);
    }
    if (!operation || req.method !== "POST") {
      return sendError(
        res,
        new DataApiError("NotFoundException", `Unknown operation ${req.method} ${req.url}`),
      );
    }
    stats.calls++;
    stats.byOperation[operation] = (stats.byOperation[operation] ?? 0) + 1;
    if (size > maxRequestBytes) {
      return sendError(res, badRequest(`Request size ${size} exceeds the limit of ${maxRequestBytes} bytes`));
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return sendError(res, badRequest("Malformed JSON in the request body"));
    }
    const sql =
      typeof (body as { sql?: unknown })?.sql === "string" ? (body as { sql: string }).sql : undefined;
    const fault = faults.take(operation, sql);
    if (fault === "connection-drop") {
      req.socket.destroy();
      return;
    }
    if (fault) return sendError(res, injected(fault));
    const started = Date.now();
    const statement = sql?.trim().split(/\s+/, 1)[0]?.toUpperCase() ?? operation;
    mark("data api call", statement);
    try {
      const payload = stringifyExact(await (handlers[operation] as (b: unknown) => Promise<unknown>)(body));
      mark("data api answered", statement);
      if (Buffer.byteLength(payload) > maxResponseBytes) {
        throw new DataApiError(
          "UnsupportedResultException",
          "Database returned more than the allowed response size limit",
        );
      }
      send(res, 200, payload);
      options.log?.(`${operation} 200 ${Date.now() - started}ms`);
    } catch (error) {
      const mapped = toDataApiError(error, body);
      options.log?.(`${operation} ${mapped.status} ${mapped.errorName}: ${mapped.message}`);
      sendError(res, mapped);
    }
  }

  function toDataApiError(error: unknown, body: unknown): DataApiError {
    if (error instanceof DataApiError) return error;
    const arn = (body as { resourceArn?: unknown })?.resourceArn;
    const engine = typeof arn === "string" ? targets.get(arn)?.engine : undefined;
    if (engine) return engine.mapError(error);
    return new DataApiError(
      "InternalServerErrorException",
      error instanceof Error ? error.message : String(error),
    );
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, toDataApiError(error, undefined));
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolveListen());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  return {
    endpoint: `http://${host}:${address.port}`,
    port: address.port,
    faults,
    stats,
    openTransactions: () => transactions.size,
    async close() {
      await new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      });
      await Promise.all(
        [...transactions.values()].map((tx) => endTransaction(tx, "ROLLBACK").catch(() => undefined)),
      );
      await Promise.all([...targets.values()].map(({ engine }) => engine.close()));
    },
  };
}

function injected(kind: Exclude<import("./faults.ts").FaultKind, "connection-drop">): DataApiError {
  switch (kind) {
    case "DatabaseResumingException":
      return new DataApiError(
        "DatabaseResumingException",
        "The Aurora DB instance is resuming after being auto-paused. Please wait a few seconds and try again.",
      );
    case "StatementTimeoutException":
      return new DataApiError("StatementTimeoutException", "The statement has timed out (injected)", {
        dbConnectionId: 0,
      });
    case "ServiceUnavailableError":
      return new DataApiError("ServiceUnavailableError", "Service unavailable (injected)");
  }
}

/** formatRecordsAs JSON: one object per row, column name → value (JSON columns embedded as JSON). */
function formatRecords(result: StatementResult): string {
  const names = result.columnNames ?? [];
  const rows = (result.records ?? []).map((row) => {
    const object: Record<string, unknown> = {};
    row.forEach((field, i) => {
      object[names[i] ?? `col${i}`] = plainValue(field, result.jsonColumns?.[i] === true);
    });
    return object;
  });
  return stringifyExact(rows);
}

function plainValue(field: OutField, json: boolean): unknown {
  if ("isNull" in field) return null;
  if ("stringValue" in field) {
    if (!json) return field.stringValue;
    try {
      return JSON.parse(field.stringValue);
    } catch {
      return field.stringValue;
    }
  }
  if ("arrayValue" in field) return Object.values(field.arrayValue)[0];
  return Object.values(field)[0];
}
