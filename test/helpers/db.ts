// Per-test-file Kamailio databases on the project's own PostgreSQL (55432) and MariaDB (53306).
// Each TestDb is a fresh database `kwc_<prefix>_<random>` with Kamailio's standard + presence
// schema, owned by the `kamailio` user, dropped by drop(). Never the `kamailio` database.
import { readFileSync } from "node:fs";
import mysql from "mysql2/promise";
import pg from "pg";
import { randomId } from "./wait.ts";

export type Engine = "postgres" | "mysql";

export interface TestDb {
  engine: Engine;
  name: string;
  /** db_url for the Kamailio cfg (user kamailio). */
  kamailioUrl: string;
  /** Admin connection; `$1` placeholders on PostgreSQL, `?` on MySQL. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** CREATE TABLE <table> LIKE active_watchers, plus its `version` row (Kamailio checks it). */
  createNodeTable(table: string): Promise<void>;
  drop(): Promise<void>;
}

export const DB_HOST = "127.0.0.1";
export const PG_PORT = Number(process.env.KWC_PG_PORT ?? 55432);
export const MY_PORT = Number(process.env.KWC_MY_PORT ?? 53306);
export const KAMAILIO_USER = "kamailio";
export const KAMAILIO_PASSWORD = "kamailiorw";
const SCHEMA_FILES = ["standard-create.sql", "presence-create.sql"];
const ACTIVE_WATCHERS_VERSION = 12;

/** Table names are identifiers, never parameters: only plain ones are accepted. */
export function assertTableName(table: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(table)) throw new Error(`invalid table name ${JSON.stringify(table)}`);
}

function schemaSql(engine: Engine): string {
  const dir = engine === "postgres" ? "/usr/share/kamailio/postgres" : "/usr/share/kamailio/mysql";
  return SCHEMA_FILES.map((f) => readFileSync(`${dir}/${f}`, "utf8")).join("\n");
}

export async function createTestDb(engine: Engine, prefix = "test"): Promise<TestDb> {
  const safePrefix =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9]/g, "")
      .slice(0, 20) || "test";
  const name = `kwc_${safePrefix}_${randomId(10)}`;
  return engine === "postgres" ? createPostgres(name) : createMysql(name);
}

async function createPostgres(name: string): Promise<TestDb> {
  const admin = new pg.Client({ host: DB_HOST, port: PG_PORT, user: "postgres", database: "postgres" });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}" OWNER "${KAMAILIO_USER}"`);
  } finally {
    await admin.end();
  }
  // the schema is created by its owner so that Kamailio can use every table and sequence
  const owner = new pg.Pool({
    host: DB_HOST,
    port: PG_PORT,
    user: KAMAILIO_USER,
    password: KAMAILIO_PASSWORD,
    database: name,
    max: 2,
  });
  await owner.query(schemaSql("postgres"));
  const query = async <T>(sql: string, params?: unknown[]): Promise<T[]> =>
    (await owner.query(sql, params as unknown[])).rows as T[];
  return {
    engine: "postgres",
    name,
    kamailioUrl: `postgres://${KAMAILIO_USER}:${KAMAILIO_PASSWORD}@${DB_HOST}:${PG_PORT}/${name}`,
    query,
    async createNodeTable(table) {
      assertTableName(table);
      await owner.query(`CREATE TABLE ${table} (LIKE active_watchers INCLUDING ALL)`);
      await owner.query("INSERT INTO version (table_name, table_version) VALUES ($1, $2)", [
        table,
        ACTIVE_WATCHERS_VERSION,
      ]);
    },
    async drop() {
      await owner.end();
      const c = new pg.Client({ host: DB_HOST, port: PG_PORT, user: "postgres", database: "postgres" });
      await c.connect();
      try {
        // pg's Pool.end() resolves before its sockets are closed; a forced drop would then kill a
        // closing client and surface as an unhandled 57P01. Wait (bounded) for the sessions to go.
        const deadline = Date.now() + 5_000;
        while (Date.now() < deadline) {
          const { rows } = await c.query(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1",
            [name],
          );
          if (rows[0]?.n === 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

async function createMysql(name: string): Promise<TestDb> {
  const root = { host: DB_HOST, port: MY_PORT, user: "root" };
  const admin = await mysql.createConnection({ ...root, multipleStatements: true });
  try {
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`);
    await admin.changeUser({ database: name });
    await admin.query(schemaSql("mysql"));
  } finally {
    await admin.end();
  }
  const pool = mysql.createPool({ ...root, database: name, connectionLimit: 2 });
  const query = async <T>(sql: string, params?: unknown[]): Promise<T[]> => {
    const [rows] = await pool.query(sql, params);
    return (Array.isArray(rows) ? rows : []) as T[];
  };
  return {
    engine: "mysql",
    name,
    kamailioUrl: `mysql://${KAMAILIO_USER}:${KAMAILIO_PASSWORD}@${DB_HOST}:${MY_PORT}/${name}`,
    query,
    async createNodeTable(table) {
      assertTableName(table);
      await pool.query(`CREATE TABLE \`${table}\` LIKE active_watchers`);
      await pool.query("INSERT INTO version (table_name, table_version) VALUES (?, ?)", [
        table,
        ACTIVE_WATCHERS_VERSION,
      ]);
    },
    async drop() {
      await pool.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await pool.end();
    },
  };
}

/**
 * Makes a watcher row the FIRST one Kamailio notifies. Presence prepends the rows of an unordered
 * scan, so the row scanned last goes first: on MariaDB (InnoDB, clustered by id) that is already
 * the row subscribed last; on PostgreSQL a no-op UPDATE moves its tuple to the end of the heap.
 * Tests that rely on the order also assert it (it is what makes GH #4118 deterministic).
 */
export async function makeNotifiedFirst(
  db: TestDb,
  callId: string,
  table = "active_watchers",
): Promise<void> {
  assertTableName(table);
  if (db.engine === "postgres")
    await db.query(`UPDATE ${table} SET flags = flags WHERE callid = $1`, [callId]);
}
