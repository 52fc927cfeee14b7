// The local Data API server driven by the real RDSDataClient, against real PostgreSQL and MariaDB.
// Every case runs on both engines where it applies; each engine gets its own fresh database.
import {
  BatchExecuteStatementCommand,
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  type ExecuteStatementCommandInput,
  RDSDataClient,
  RollbackTransactionCommand,
} from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DataApiServer, startDataApiServer } from "../../../local/dataapi/server.ts";
import { localDataApiClient, testDbTarget } from "../../helpers/dataapi.ts";
import { createTestDb, type TestDb } from "../../helpers/db.ts";
import { waitUntil } from "../../helpers/wait.ts";

const PG_ARN = "arn:aws:rds:us-east-1:000000000000:cluster:dataapi-test-pg";
const MY_ARN = "arn:aws:rds:us-east-1:000000000000:cluster:dataapi-test-my";
const SECRET = "arn:aws:secretsmanager:us-east-1:000000000000:secret:test";

interface EngineCase {
  engine: "postgres" | "mysql";
  arn: string;
  sleep: (seconds: number) => string;
}
const engines: EngineCase[] = [
  { engine: "postgres", arn: PG_ARN, sleep: (s) => `SELECT pg_sleep(${s})` },
  { engine: "mysql", arn: MY_ARN, sleep: (s) => `SELECT SLEEP(${s})` },
];

const dbs: Partial<Record<EngineCase["engine"], TestDb>> = {};
let server: DataApiServer; // generous timeouts: the machine is shared
let short: DataApiServer; // 1 s statement timeout and idle-transaction rollback
let client: RDSDataClient;
let shortClient: RDSDataClient;

const clientFor = (s: DataApiServer, maxAttempts = 3) => localDataApiClient(s.endpoint, maxAttempts);

/** The rejection of a call, or a failure when it succeeds. */
async function failure(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e as Error & Record<string, unknown>,
  );
  if (!outcome) throw new Error("expected the call to fail, it succeeded");
  return outcome;
}
const status = (e: Record<string, unknown>) => (e.$metadata as { httpStatusCode?: number }).httpStatusCode;

beforeAll(async () => {
  const [pgDb, myDb] = await Promise.all([
    createTestDb("postgres", "dataapi"),
    createTestDb("mysql", "dataapi"),
  ]);
  dbs.postgres = pgDb;
  dbs.mysql = myDb;
  const targets = [
    testDbTarget(pgDb, { resourceArn: PG_ARN, poolSize: 4 }),
    testDbTarget(myDb, { resourceArn: MY_ARN, poolSize: 4 }),
  ];
  server = await startDataApiServer({ targets, statementTimeoutMs: 20_000 });
  short = await startDataApiServer({ targets, statementTimeoutMs: 1_000, idleTransactionMs: 1_000 });
  client = clientFor(server);
  shortClient = clientFor(short);
});

afterAll(async () => {
  client?.destroy();
  shortClient?.destroy();
  await Promise.all([server?.close(), short?.close()]);
  await Promise.all([dbs.postgres?.drop(), dbs.mysql?.drop()]);
});

describe.each(engines)("Data API on $engine", ({ engine, arn, sleep }) => {
  const base = { resourceArn: arn, secretArn: SECRET };
  const exec = (input: Omit<ExecuteStatementCommandInput, "resourceArn" | "secretArn">, c = client) =>
    c.send(new ExecuteStatementCommand({ ...base, ...input }));
  const table = (name: string) => `t_${name}`;
  const count = async (name: string) => {
    const r = await exec({ sql: `SELECT COUNT(*) AS n FROM ${table(name)}` });
    return Number(r.records?.[0]?.[0]?.longValue);
  };
  const typesDdl =
    engine === "postgres"
      ? `CREATE TABLE t_types (id bigserial PRIMARY KEY, b boolean, i int4, l int8, d float8, n numeric(10,2),
           s varchar(50), t text, bl bytea, dt date, tm time, ts timestamp, j jsonb, u uuid, arr text[])`
      : `CREATE TABLE t_types (id bigint AUTO_INCREMENT PRIMARY KEY, b tinyint(1), i int, l bigint, d double,
           n decimal(10,2), s varchar(50), t text, bl varbinary(16), dt date, tm time, ts datetime, j json)`;

  it("runs DDL and reports 0 records updated", async () => {
    const r = await exec({ sql: typesDdl });
    expect(r.numberOfRecordsUpdated).toBe(0);
    const r2 = await exec({ sql: "CREATE TABLE t_items (id int PRIMARY KEY, name varchar(20) NOT NULL)" });
    expect(r2.numberOfRecordsUpdated).toBe(0);
  });

  it("binds every Field member and type hint and encodes results by column type", async () => {
    const blob = Uint8Array.from([0, 1, 2, 255]);
    const columns = ["b", "i", "l", "d", "n", "s", "t", "bl", "dt", "tm", "ts", "j"];
    const values =
      ":b, :i, :l, :d, :n, :s, :t, :bl, :dt, :tm, :ts, :j" +
      (engine === "postgres" ? ", :u, ARRAY['x','y']" : "");
    const inserted = await exec({
      sql: `INSERT INTO t_types (${columns.join(", ")}${engine === "postgres" ? ", u, arr" : ""}) VALUES (${values})`,
      parameters: [
        { name: "b", value: { booleanValue: true } },
        { name: "i", value: { longValue: -42 } },
        { name: "l", value: { longValue: 5_000_000_000 } },
        { name: "d", value: { doubleValue: 1.5 } },
        { name: "n", value: { stringValue: "12.34" }, typeHint: "DECIMAL" },
        { name: "s", value: { stringValue: "sip:a'b\"c%_\\@x" } },
        { name: "t", value: { stringValue: "ünïcode ☎" } },
        { name: "bl", value: { blobValue: blob } },
        { name: "dt", value: { stringValue: "2024-02-29" }, typeHint: "DATE" },
        { name: "tm", value: { stringValue: "13:14:15" }, typeHint: "TIME" },
        { name: "ts", value: { stringValue: "2024-02-29 13:14:15" }, typeHint: "TIMESTAMP" },
        { name: "j", value: { stringValue: '{"k":1}' }, typeHint: "JSON" },
        { name: "u", value: { stringValue: "8f14e45f-ceea-467f-a0e1-4d5a3b1c2d3e" }, typeHint: "UUID" },
      ],
    });
    expect(inserted.numberOfRecordsUpdated).toBe(1);
    const r = await exec({ sql: `SELECT ${columns.join(", ")} FROM t_types`, includeResultMetadata: true });
    const row = r.records?.[0] ?? [];
    expect(row[0]).toEqual({ booleanValue: true });
    expect(row[1]).toEqual({ longValue: -42 });
    expect(row[2]).toEqual({ longValue: 5_000_000_000 });
    expect(row[3]).toEqual({ doubleValue: 1.5 });
    expect(row[4]).toEqual({ stringValue: "12.34" });
    expect(row[5]).toEqual({ stringValue: "sip:a'b\"c%_\\@x" });
    expect(row[6]).toEqual({ stringValue: "ünïcode ☎" });
    expect(row[7]?.blobValue).toEqual(blob);
    expect(row[8]).toEqual({ stringValue: "2024-02-29" });
    expect(row[9]).toEqual({ stringValue: "13:14:15" });
    expect(row[10]).toEqual({ stringValue: "2024-02-29 13:14:15" });
    expect(JSON.parse(row[11]?.stringValue ?? "null")).toEqual({ k: 1 });
    expect(r.columnMetadata?.map((c) => c.name)).toEqual(columns);
    const meta = Object.fromEntries((r.columnMetadata ?? []).map((c) => [c.name, c]));
    expect(meta.l?.type).toBe(-5); // java.sql.Types.BIGINT
    expect(meta.s?.type).toBe(12); // VARCHAR
    expect(meta.s?.tableName).toBe("t_types");
    expect(meta.n?.precision).toBe(10);
    expect(meta.n?.scale).toBe(2);
    if (engine === "postgres") {
      const extra = await exec({ sql: "SELECT u, arr, id FROM t_types", includeResultMetadata: true });
      expect(extra.records?.[0]?.[0]).toEqual({ stringValue: "8f14e45f-ceea-467f-a0e1-4d5a3b1c2d3e" });
      expect(extra.records?.[0]?.[1]).toEqual({ arrayValue: { stringValues: ["x", "y"] } });
      expect(extra.columnMetadata?.[2]?.typeName).toBe("bigserial");
      expect(extra.columnMetadata?.[2]?.isAutoIncrement).toBe(true);
    }
  });

  it("returns NULLs as isNull and binds isNull parameters", async () => {
    await exec({
      sql: "INSERT INTO t_types (s, dt) VALUES (:s, :dt)",
      parameters: [
        { name: "s", value: { isNull: true } },
        { name: "dt", value: { isNull: true }, typeHint: "DATE" },
      ],
    });
    const r = await exec({ sql: "SELECT s, dt FROM t_types WHERE s IS NULL" });
    expect(r.records).toEqual([[{ isNull: true }, { isNull: true }]]);
  });

  it("keeps 2^53+1 exact with longReturnType STRING (JS numbers cannot)", async () => {
    await exec({ sql: "INSERT INTO t_types (l, s) VALUES (9007199254740993, 'big')" });
    const asString = await exec({
      sql: "SELECT l FROM t_types WHERE s = 'big'",
      resultSetOptions: { longReturnType: "STRING" },
    });
    expect(asString.records?.[0]?.[0]).toEqual({ stringValue: "9007199254740993" });
    const asLong = await exec({ sql: "SELECT l FROM t_types WHERE s = 'big'" });
    expect(asLong.records?.[0]?.[0]).toEqual({ longValue: 9007199254740992 }); // rounded by JSON.parse in the SDK
    const decimals = await exec({
      sql: "SELECT n FROM t_types WHERE n IS NOT NULL",
      resultSetOptions: { decimalReturnType: "DOUBLE_OR_LONG" },
    });
    expect(decimals.records?.[0]?.[0]).toEqual({ doubleValue: 12.34 });
  });

  it("leaves :x inside literals, quoted identifiers, comments and casts alone; repeats named parameters", async () => {
    const sql =
      engine === "postgres"
        ? `SELECT ':x' AS a, $$:x$$ AS b, E'\\':x' AS c, '1'::int AS "d:x", :v AS e, :v || '!' AS f /* :x */ -- :x`
        : "SELECT ':x' AS a, \":x\" AS b, 'it\\'s :x' AS c, @n := 1 AS `d:x`, :v AS e, CONCAT(:v, '!') AS f /* :x */ # :x";
    const r = await exec({ sql, parameters: [{ name: "v", value: { stringValue: "y" } }] });
    const row = r.records?.[0]?.map((f) => f.stringValue ?? f.longValue);
    expect(row).toEqual([":x", ":x", engine === "postgres" ? "':x" : "it's :x", 1, "y", "y!"]);
    const question = await exec({
      sql: "SELECT '?' AS q, :v AS v",
      parameters: [{ name: "v", value: { stringValue: "?" } }],
    });
    expect(question.records).toEqual([[{ stringValue: "?" }, { stringValue: "?" }]]);
  });

  it("formats records as JSON with formatRecordsAs JSON", async () => {
    const r = await exec({ sql: "SELECT i, s, j FROM t_types WHERE i = -42", formatRecordsAs: "JSON" });
    expect(r.records).toBeUndefined();
    const rows = JSON.parse(r.formattedRecords ?? "[]");
    expect(rows).toHaveLength(1);
    expect(rows[0].i).toBe(-42);
    expect(rows[0].s).toBe("sip:a'b\"c%_\\@x");
  });

  if (engine === "postgres") {
    it("DELETE … RETURNING returns the deleted rows", async () => {
      await exec({ sql: "INSERT INTO t_items (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')" });
      const r = await exec({
        sql: "DELETE FROM t_items WHERE id >= :id RETURNING id, name",
        parameters: [{ name: "id", value: { longValue: 2 } }],
      });
      expect(r.numberOfRecordsUpdated).toBe(2);
      expect(r.records).toEqual([
        [{ longValue: 2 }, { stringValue: "b" }],
        [{ longValue: 3 }, { stringValue: "c" }],
      ]);
      expect(r.generatedFields).toEqual([]); // not supported by Aurora PostgreSQL
      expect(await count("items")).toBe(1);
    });
  } else {
    it("refuses MariaDB-only syntax (RETURNING, sequences) that MySQL 8.0 rejects; MariaDB alone accepts it", async () => {
      await exec({ sql: "INSERT INTO t_items (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')" });
      const e = await failure(exec({ sql: "DELETE FROM t_items WHERE id >= 2 RETURNING id" }));
      expect(e.name).toBe("DatabaseErrorException");
      expect(e.message).toMatch(/RETURNING/);
      expect(await count("items")).toBe(3); // nothing ran
      const seq = await failure(exec({ sql: "CREATE SEQUENCE s1" }));
      expect(seq.message).toMatch(/sequence/i);
      // control: the same statement straight to MariaDB works, so the refusal is the server's
      const direct = await dbs.mysql?.query<{ id: number }>("DELETE FROM t_items WHERE id >= 2 RETURNING id");
      expect(direct?.map((r) => Number(r.id)).sort()).toEqual([2, 3]);
    });

    it("returns the auto-increment value in generatedFields", async () => {
      const r = await exec({ sql: "INSERT INTO t_types (s) VALUES ('gen')" });
      const id = r.generatedFields?.[0]?.longValue;
      expect(typeof id).toBe("number");
      const check = await exec({ sql: "SELECT id FROM t_types WHERE s = 'gen'" });
      expect(check.records?.[0]?.[0]?.longValue).toBe(id);
      const b = await client.send(
        new BatchExecuteStatementCommand({
          ...base,
          sql: "INSERT INTO t_types (s) VALUES (:s)",
          parameterSets: [
            [{ name: "s", value: { stringValue: "g1" } }],
            [{ name: "s", value: { stringValue: "g2" } }],
          ],
        }),
      );
      const ids = b.updateResults?.map((u) => u.generatedFields?.[0]?.longValue ?? 0) ?? [];
      expect(ids).toHaveLength(2);
      expect((ids[1] ?? 0) - (ids[0] ?? 0)).toBe(1);
    });
  }

  it("BatchExecute runs every set, and is all-or-nothing on failure", async () => {
    const sets = (names: (string | null)[], start: number) =>
      names.map((n, i) => [
        { name: "id", value: { longValue: start + i } },
        { name: "name", value: n === null ? { isNull: true } : { stringValue: n } },
      ]);
    const ok = await client.send(
      new BatchExecuteStatementCommand({
        ...base,
        sql: "INSERT INTO t_items (id, name) VALUES (:id, :name)",
        parameterSets: sets(["x", "y"], 100),
      }),
    );
    expect(ok.updateResults).toHaveLength(2);
    const before = await count("items");
    const e = await failure(
      client.send(
        new BatchExecuteStatementCommand({
          ...base,
          sql: "INSERT INTO t_items (id, name) VALUES (:id, :name)",
          parameterSets: sets(["p", null, "q"], 200),
        }),
      ),
    );
    expect(e.name).toBe("DatabaseErrorException");
    expect(await count("items")).toBe(before); // the first set was rolled back too
  });

  it("isolates a transaction until commit, and discards it on rollback", async () => {
    const insert = (transactionId: string, id: number) =>
      exec({ sql: `INSERT INTO t_items (id, name) VALUES (${id}, 'tx')`, transactionId });
    const visible = async (id: number) =>
      ((await exec({ sql: `SELECT id FROM t_items WHERE id = ${id}` })).records ?? []).length;
    const t1 = (await client.send(new BeginTransactionCommand(base))).transactionId ?? "";
    await insert(t1, 300);
    expect(await visible(300)).toBe(0);
    const rolled = await client.send(new RollbackTransactionCommand({ ...base, transactionId: t1 }));
    expect(rolled.transactionStatus).toBe("Rollback Complete");
    expect(await visible(300)).toBe(0);
    const t2 = (await client.send(new BeginTransactionCommand(base))).transactionId ?? "";
    await insert(t2, 301);
    const inside = await exec({ sql: "SELECT id FROM t_items WHERE id = 301", transactionId: t2 });
    expect(inside.records).toEqual([[{ longValue: 301 }]]);
    expect(await visible(301)).toBe(0);
    const committed = await client.send(new CommitTransactionCommand({ ...base, transactionId: t2 }));
    expect(committed.transactionStatus).toBe("Transaction Committed");
    expect(await visible(301)).toBe(1);
  });

  it("answers TransactionNotFoundException (404) for unknown transactions", async () => {
    const commit = await failure(
      client.send(new CommitTransactionCommand({ ...base, transactionId: "nope" })),
    );
    expect(commit.name).toBe("TransactionNotFoundException");
    expect(status(commit)).toBe(404);
    const inTx = await failure(exec({ sql: "SELECT 1", transactionId: "nope" }));
    expect(inTx.name).toBe("TransactionNotFoundException");
  });

  it("rolls back a transaction left idle, then no longer knows it", async () => {
    const tx = (await shortClient.send(new BeginTransactionCommand(base))).transactionId ?? "";
    await exec(
      { sql: "INSERT INTO t_items (id, name) VALUES (400, 'idle')", transactionId: tx },
      shortClient,
    );
    await waitUntil(() => short.openTransactions() === 0, { timeoutMs: 10_000, what: "idle rollback" });
    const e = await failure(shortClient.send(new CommitTransactionCommand({ ...base, transactionId: tx })));
    expect(e.name).toBe("TransactionNotFoundException");
    expect((await exec({ sql: "SELECT id FROM t_items WHERE id = 400" })).records).toEqual([]);
  });

  it("times out a statement with StatementTimeoutException and really cancels it", async () => {
    const e = await failure(exec({ sql: sleep(5) }, shortClient));
    expect(e.name).toBe("StatementTimeoutException");
    expect(status(e)).toBe(400);
    expect(typeof e.dbConnectionId).toBe("number");
    const running =
      engine === "postgres"
        ? "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE pid = :id AND state = 'active'"
        : "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = :id AND COMMAND = 'Query'";
    const r = await exec({
      sql: running,
      parameters: [{ name: "id", value: { longValue: Number(e.dbConnectionId) } }],
    });
    expect(r.records?.[0]?.[0]?.longValue).toBe(0);
  });

  it("with continueAfterTimeout returns the timeout but lets the statement finish", async () => {
    const slowInsert =
      engine === "postgres"
        ? "INSERT INTO t_items (id, name) SELECT 500, 'slow' FROM pg_sleep(1.5)"
        : "INSERT INTO t_items (id, name) SELECT 500, 'slow' FROM (SELECT SLEEP(1.5)) AS s";
    const e = await failure(exec({ sql: slowInsert, continueAfterTimeout: true }, shortClient));
    expect(e.name).toBe("StatementTimeoutException");
    await waitUntil(
      async () => ((await exec({ sql: "SELECT id FROM t_items WHERE id = 500" })).records ?? []).length === 1,
      { timeoutMs: 10_000, what: "the slow insert to complete" },
    );
    // control: the same insert without continueAfterTimeout is cancelled and leaves no row
    const cancelled = slowInsert.replace("500", "501");
    await failure(exec({ sql: cancelled }, shortClient));
    expect((await exec({ sql: "SELECT id FROM t_items WHERE id = 501" })).records).toEqual([]);
  });

  it("rejects a missing parameter, an array parameter and SQL errors with the modelled exceptions", async () => {
    const missing = await failure(exec({ sql: "SELECT :absent" }));
    expect(missing.name).toBe("BadRequestException");
    expect(status(missing)).toBe(400);
    const array = await failure(
      exec({ sql: "SELECT :a", parameters: [{ name: "a", value: { arrayValue: { longValues: [1] } } }] }),
    );
    expect(array.name).toBe("BadRequestException");
    expect(array.message).toMatch(/Array parameters are not supported/);
    const sqlError = await failure(exec({ sql: "SELECT * FROM no_such_table" }));
    expect(sqlError.name).toBe("DatabaseErrorException");
    expect(status(sqlError)).toBe(400);
    expect(sqlError.message).toMatch(
      engine === "postgres" ? /^ERROR: [\s\S]*; SQLState: 42P01$/ : /^Database error code: 1146\./,
    );
  });

  it("refuses a response over 1 MiB and a request over 4 MiB", async () => {
    const big = engine === "postgres" ? "SELECT repeat('x', 1100000)" : "SELECT REPEAT('x', 1100000)";
    const response = await failure(exec({ sql: big }));
    expect(response.name).toBe("UnsupportedResultException");
    expect(status(response)).toBe(400);
    const small = await exec({ sql: big.replace("1100000", "1000") }); // control: below the limit it works
    expect(small.records?.[0]?.[0]?.stringValue).toHaveLength(1000);
    const request = await failure(
      exec({
        sql: "SELECT :s",
        parameters: [{ name: "s", value: { stringValue: "y".repeat(4.2 * 1024 * 1024) } }],
      }),
    );
    expect(request.name).toBe("BadRequestException");
    expect(status(request)).toBe(400);
  });

  it("injects faults: resuming, statement timeout, 503, dropped connection, by pattern", async () => {
    const calls = () => server.stats.calls;
    server.faults.failNext(1, "DatabaseResumingException");
    let before = calls();
    const resuming = await failure(exec({ sql: "SELECT 1" }));
    expect(resuming.name).toBe("DatabaseResumingException");
    expect(status(resuming)).toBe(400);
    expect(calls() - before).toBe(1); // the SDK does not retry it

    server.faults.failNext(1, "StatementTimeoutException");
    const timeout = await failure(exec({ sql: "SELECT 1" }));
    expect(timeout.name).toBe("StatementTimeoutException");
    expect(timeout.dbConnectionId).toBe(0);

    const noRetry = clientFor(server, 1);
    server.faults.failNext(1, "ServiceUnavailableError");
    const unavailable = await failure(
      noRetry.send(new ExecuteStatementCommand({ ...base, sql: "SELECT 1" })),
    );
    expect(unavailable.name).toBe("ServiceUnavailableError");
    expect(status(unavailable)).toBe(503);
    server.faults.failNext(1, "ServiceUnavailableError");
    before = calls();
    const retried = await exec({ sql: "SELECT 7" }); // the SDK retries a 503 by itself
    expect(retried.records?.[0]?.[0]?.longValue).toBe(7);
    expect(calls() - before).toBe(2);

    server.faults.failNext(1, "connection-drop");
    const dropped = await failure(noRetry.send(new ExecuteStatementCommand({ ...base, sql: "SELECT 1" })));
    expect(dropped.code).toBe("ECONNRESET");
    expect(status(dropped)).toBeUndefined(); // no HTTP answer at all
    noRetry.destroy();

    server.faults.failNext(1, "DatabaseResumingException", { match: /DELETE/ });
    const select = await exec({ sql: "SELECT 2" });
    expect(select.records?.[0]?.[0]?.longValue).toBe(2); // not matched: no fault
    const del = await failure(exec({ sql: "DELETE FROM t_items WHERE id = -1" }));
    expect(del.name).toBe("DatabaseResumingException");
    expect(server.faults.pending).toBe(0);
  });
});

describe("wire protocol edge cases", () => {
  it("answers malformed JSON with 400 BadRequestException, not 500", async () => {
    const post = (body: string) =>
      fetch(`${server.endpoint}/Execute`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
    const bad = await post("{not json");
    expect(bad.status).toBe(400);
    expect(bad.headers.get("x-amzn-errortype")).toBe("BadRequestException");
    expect(((await bad.json()) as { message: string }).message).toMatch(/Malformed JSON/);
    const good = await post(JSON.stringify({ resourceArn: PG_ARN, secretArn: SECRET, sql: "SELECT 1" }));
    expect(good.status).toBe(200);
    expect(await good.json()).toEqual({
      numberOfRecordsUpdated: 0,
      generatedFields: [],
      records: [[{ longValue: 1 }]],
    });
  });

  it("requires secretArn and a known resourceArn", async () => {
    const noSecret = await failure(
      client.send(new ExecuteStatementCommand({ resourceArn: PG_ARN, secretArn: "", sql: "SELECT 1" })),
    );
    expect(noSecret.name).toBe("BadRequestException");
    const unknown = await failure(
      client.send(
        new ExecuteStatementCommand({
          resourceArn: "arn:aws:rds:x:1:cluster:nope",
          secretArn: SECRET,
          sql: "SELECT 1",
        }),
      ),
    );
    expect(unknown.name).toBe("NotFoundException");
    expect(status(unknown)).toBe(404);
  });

  it("works through AWS_ENDPOINT_URL_RDS_DATA with a default-constructed client", async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_RDS_DATA: server.endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
    });
    try {
      const envClient = new RDSDataClient({});
      const r = await envClient.send(
        new ExecuteStatementCommand({ resourceArn: MY_ARN, secretArn: SECRET, sql: "SELECT 3" }),
      );
      expect(r.records?.[0]?.[0]?.longValue).toBe(3);
      envClient.destroy();
    } finally {
      for (const key of [
        "AWS_ENDPOINT_URL_RDS_DATA",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
      ]) {
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
      }
    }
  });
});
