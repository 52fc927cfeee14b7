// Benchmark of the local Data API server against the same statements through the driver directly.
//   npx tsx bench/dataapi.ts [--iterations 200] [--seconds 5] [--engine postgres|mysql]
// Per engine: p50/p99 latency (ms) of each call kind, sequentially, through the Data API (real
// RDSDataClient) and through pg / mysql2; then throughput (calls/s) at concurrency 8 for a fixed
// mix (an indexed DELETE on a 100k-row table, a 1,000-row SELECT page, a 10-set BatchExecute).
// Prints figures only; nothing here asserts timing.

import { parseArgs } from "node:util";
import { BatchExecuteStatementCommand, ExecuteStatementCommand } from "@aws-sdk/client-rds-data";
import mysql from "mysql2/promise";
import pg from "pg";
import { startDataApiServer } from "../local/dataapi/server.ts";
import { localDataApiClient, testDbTarget } from "../test/helpers/dataapi.ts";
import {
  createTestDb,
  DB_HOST,
  KAMAILIO_PASSWORD,
  KAMAILIO_USER,
  MY_PORT,
  PG_PORT,
} from "../test/helpers/db.ts";

const { values: args } = parseArgs({
  options: {
    iterations: { type: "string", default: "200" },
    seconds: { type: "string", default: "5" },
    engine: { type: "string" },
  },
});
const ITERATIONS = Number(args.iterations);
const SECONDS = Number(args.seconds);
const CONCURRENCY = 8;
const ROWS = 100_000;
const ARN = "arn:aws:rds:us-east-1:000000000000:cluster:bench";

type Op = "delete" | "select1000" | "batch10";
interface Runner {
  run(op: Op, n: number): Promise<void>;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

async function latency(
  runner: Runner,
  op: Op,
  counter: { next: number },
): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const start = performance.now();
    await runner.run(op, counter.next++);
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
}

async function throughput(runner: Runner, counter: { next: number }): Promise<number> {
  const mix: Op[] = ["delete", "select1000", "batch10"];
  const deadline = performance.now() + SECONDS * 1000;
  let calls = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, worker) => {
      let i = worker;
      while (performance.now() < deadline) {
        await runner.run(mix[i++ % mix.length] as Op, counter.next++);
        calls++;
      }
    }),
  );
  return calls / SECONDS;
}

async function benchEngine(engine: "postgres" | "mysql") {
  const db = await createTestDb(engine, "benchdataapi");
  const isPg = engine === "postgres";
  const server = await startDataApiServer({
    targets: [testDbTarget(db, { resourceArn: ARN, poolSize: CONCURRENCY })],
  });
  const client = localDataApiClient(server.endpoint);
  try {
    if (isPg) {
      await db.query(
        "CREATE TABLE bench_rows (id bigserial PRIMARY KEY, k int NOT NULL, payload varchar(100))",
      );
      await db.query(
        `INSERT INTO bench_rows (k, payload) SELECT g, 'sip:user' || g || '@example.com' FROM generate_series(1, ${ROWS}) g`,
      );
      await db.query("ANALYZE bench_rows");
    } else {
      await db.query(
        "CREATE TABLE bench_rows (id bigint AUTO_INCREMENT PRIMARY KEY, k int NOT NULL, payload varchar(100))",
      );
      await db.query(
        `INSERT INTO bench_rows (k, payload) SELECT seq, CONCAT('sip:user', seq, '@example.com') FROM seq_1_to_${ROWS}`,
      );
    }
    const sql = {
      delete: "DELETE FROM bench_rows WHERE id = :id",
      select1000: "SELECT id, k, payload FROM bench_rows WHERE id > :after ORDER BY id LIMIT 1000",
      batch10: "INSERT INTO bench_rows (k, payload) VALUES (:k, :p)",
    };
    // ids to delete walk up from 1; pages start at a spread of offsets
    const dataApi: Runner = {
      async run(op, n) {
        const base = { resourceArn: ARN, secretArn: "bench" };
        if (op === "batch10") {
          await client.send(
            new BatchExecuteStatementCommand({
              ...base,
              sql: sql.batch10,
              parameterSets: Array.from({ length: 10 }, (_, i) => [
                { name: "k", value: { longValue: -n * 10 - i } },
                { name: "p", value: { stringValue: `sip:batch${n}_${i}@example.com` } },
              ]),
            }),
          );
        } else {
          const name = op === "delete" ? "id" : "after";
          const value = op === "delete" ? n : (n * 7919) % (ROWS - 2000);
          await client.send(
            new ExecuteStatementCommand({
              ...base,
              sql: sql[op],
              parameters: [{ name, value: { longValue: value } }],
            }),
          );
        }
      },
    };
    const direct = directRunner(engine, db.name);
    const counter = { next: 1 };
    const rows: string[] = [];
    for (const op of ["delete", "select1000", "batch10"] as Op[]) {
      const viaDriver = await latency(direct, op, counter);
      const viaApi = await latency(dataApi, op, counter);
      rows.push(
        `${engine.padEnd(8)} ${op.padEnd(11)} driver p50 ${viaDriver.p50.toFixed(2).padStart(7)} p99 ${viaDriver.p99.toFixed(2).padStart(7)} | data api p50 ${viaApi.p50.toFixed(2).padStart(7)} p99 ${viaApi.p99.toFixed(2).padStart(7)} | added p50 ${(viaApi.p50 - viaDriver.p50).toFixed(2).padStart(6)} ms`,
      );
    }
    const driverRate = await throughput(direct, counter);
    const callsBefore = server.stats.calls;
    const apiRate = await throughput(dataApi, counter);
    rows.push(
      `${engine.padEnd(8)} mix@${CONCURRENCY}      driver ${driverRate.toFixed(0)} calls/s | data api ${apiRate.toFixed(0)} calls/s (${server.stats.calls - callsBefore} calls in ${SECONDS}s)`,
    );
    await direct.close();
    return rows;
  } finally {
    client.destroy();
    await server.close();
    await db.drop();
  }
}

/** A pooled driver connection, as the server keeps one per target. */
interface Driver {
  query(sql: string, params: unknown[]): Promise<unknown>;
  /** Runs `body` inside BEGIN … COMMIT on one pooled connection. */
  transaction(body: (query: Driver["query"]) => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

function pgDriver(database: string): Driver {
  const pool = new pg.Pool({ ...directLogin(PG_PORT), database, max: CONCURRENCY });
  return {
    query: (sql, params) => pool.query(sql, params),
    async transaction(body) {
      const c = await pool.connect();
      try {
        await c.query("BEGIN");
        await body((sql, params) => c.query(sql, params));
        await c.query("COMMIT");
      } finally {
        c.release();
      }
    },
    close: () => pool.end(),
  };
}

function mysqlDriver(database: string): Driver {
  const pool = mysql.createPool({ ...directLogin(MY_PORT), database, connectionLimit: CONCURRENCY });
  return {
    query: (sql, params) => pool.query(sql, params),
    async transaction(body) {
      const c = await pool.getConnection();
      try {
        await c.query("BEGIN");
        await body((sql, params) => c.query(sql, params));
        await c.query("COMMIT");
      } finally {
        c.release();
      }
    },
    close: () => pool.end(),
  };
}

function directLogin(port: number) {
  return { host: DB_HOST, port, user: KAMAILIO_USER, password: KAMAILIO_PASSWORD };
}

/** The same three call kinds as the Data API runner, straight through the driver. */
function directRunner(engine: "postgres" | "mysql", database: string): Runner & { close(): Promise<void> } {
  const driver = engine === "postgres" ? pgDriver(database) : mysqlDriver(database);
  const ph = (n: number) => (engine === "postgres" ? `$${n}` : "?");
  return {
    async run(op, n) {
      if (op === "delete") await driver.query(`DELETE FROM bench_rows WHERE id = ${ph(1)}`, [n]);
      else if (op === "select1000") {
        await driver.query(
          `SELECT id, k, payload FROM bench_rows WHERE id > ${ph(1)} ORDER BY id LIMIT 1000`,
          [(n * 7919) % (ROWS - 2000)],
        );
      } else {
        await driver.transaction(async (query) => {
          for (let i = 0; i < 10; i++) {
            await query(`INSERT INTO bench_rows (k, payload) VALUES (${ph(1)}, ${ph(2)})`, [
              -n * 10 - i,
              `sip:b${n}_${i}@x`,
            ]);
          }
        });
      }
    },
    close: () => driver.close(),
  };
}

const engines = args.engine ? [args.engine as "postgres" | "mysql"] : (["postgres", "mysql"] as const);
console.log(
  `Data API server benchmark: ${ITERATIONS} sequential calls per kind, ${SECONDS}s mix at concurrency ${CONCURRENCY}, ${ROWS} rows (latencies in ms)`,
);
for (const engine of engines) {
  for (const line of await benchEngine(engine)) console.log(line);
}
