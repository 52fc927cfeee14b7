/**
 * The local databases as local mode needs them: the project's own PostgreSQL / MariaDB instances
 * (scripts/db.sh), one `active_watchers`-shaped table per Kamailio node, and row counts for the
 * status line. Table names are identifiers: validated, never interpolated unchecked.
 */
import mysql from "mysql2/promise";
import pg from "pg";

export type Engine = "postgres" | "mysql";

export const DB_USER = process.env.KWC_DB_USER ?? "kamailio";
export const DB_PASSWORD = process.env.KWC_DB_PASSWORD ?? "kamailiorw";
export const PG_PORT = Number(process.env.KWC_PG_PORT ?? 55432);
export const MY_PORT = Number(process.env.KWC_MY_PORT ?? 53306);
/** Kamailio checks `version` for every table it uses; active_watchers is at version 12 in 5.6. */
const ACTIVE_WATCHERS_VERSION = 12;

export function dbPort(engine: Engine): number {
  return engine === "postgres" ? PG_PORT : MY_PORT;
}

export function kamailioDbUrl(engine: Engine, database: string): string {
  const scheme = engine === "postgres" ? "postgres" : "mysql";
  return `${scheme}://${DB_USER}:${DB_PASSWORD}@127.0.0.1:${dbPort(engine)}/${database}`;
}

function checkIdentifier(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) throw new Error(`invalid SQL identifier ${name}`);
  return name;
}

export interface LocalDb {
  /** Creates `table` like active_watchers (with its version row) unless it exists. */
  ensureWatchersTable(table: string): Promise<void>;
  countRows(table: string): Promise<number>;
  /** Up to `limit` contacts of the rows taken on these sockets (the node's WebSocket rows). */
  contactsOn(table: string, socketInfo: readonly string[], limit: number): Promise<string[]>;
  close(): Promise<void>;
}

/** Connection settings of another database than the project's own (local/database.ts DbTarget). */
export interface DbConnectionSettings {
  host: string;
  port: number;
  user: string;
  password: string;
  ssl?: { rejectUnauthorized: boolean; ca?: string };
}

/** The project's own instance for `engine`, or the operator's database given in `target`. */
export async function connectLocalDb(
  engine: Engine,
  database: string,
  target?: DbConnectionSettings,
): Promise<LocalDb> {
  const settings = target ?? {
    host: "127.0.0.1",
    port: dbPort(engine),
    user: DB_USER,
    password: DB_PASSWORD,
  };
  if (engine === "postgres") {
    const client = new pg.Client({ ...settings, database });
    await client.connect();
    return {
      async ensureWatchersTable(table) {
        checkIdentifier(table);
        if (table === "active_watchers") return;
        await client.query(`CREATE TABLE IF NOT EXISTS ${table} (LIKE active_watchers INCLUDING ALL)`);
        const seen = await client.query("SELECT 1 FROM version WHERE table_name = $1", [table]);
        if (seen.rowCount === 0)
          await client.query("INSERT INTO version (table_name, table_version) VALUES ($1, $2)", [
            table,
            ACTIVE_WATCHERS_VERSION,
          ]);
      },
      async countRows(table) {
        const out = await client.query(`SELECT count(*)::int AS n FROM ${checkIdentifier(table)}`);
        return Number(out.rows[0]?.n ?? 0);
      },
      async contactsOn(table, socketInfo, limit) {
        const out = await client.query(
          `SELECT contact FROM ${checkIdentifier(table)} WHERE socket_info = ANY($1::text[]) ORDER BY id DESC LIMIT $2`,
          [[...socketInfo], limit],
        );
        return out.rows.map((r: { contact: string }) => r.contact);
      },
      close: () => client.end(),
    };
  }
  const conn = await mysql.createConnection({ ...settings, database });
  return {
    async ensureWatchersTable(table) {
      checkIdentifier(table);
      if (table === "active_watchers") return;
      await conn.query(`CREATE TABLE IF NOT EXISTS ${table} LIKE active_watchers`);
      const [rows] = await conn.query("SELECT 1 FROM version WHERE table_name = ?", [table]);
      if ((rows as unknown[]).length === 0)
        await conn.query("INSERT INTO version (table_name, table_version) VALUES (?, ?)", [
          table,
          ACTIVE_WATCHERS_VERSION,
        ]);
    },
    async countRows(table) {
      const [rows] = await conn.query(`SELECT count(*) AS n FROM ${checkIdentifier(table)}`);
      return Number((rows as { n: number }[])[0]?.n ?? 0);
    },
    async contactsOn(table, socketInfo, limit) {
      if (socketInfo.length === 0) return [];
      const marks = socketInfo.map(() => "?").join(", ");
      const [rows] = await conn.query(
        `SELECT contact FROM ${checkIdentifier(table)} WHERE socket_info IN (${marks}) ORDER BY id DESC LIMIT ?`,
        [...socketInfo, limit],
      );
      return (rows as { contact: string }[]).map((r) => r.contact);
    },
    close: () => conn.end(),
  };
}
