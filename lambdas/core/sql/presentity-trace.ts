/**
 * The presentity deletion trace (`kwc db trace`): an AFTER DELETE trigger on `presentity` keeps,
 * per (username, domain, event), the time of its last row deletion in the database's clock, in
 * `kwc_presentity_deletions` (one row per presentity: an upsert, so the table is as large as the
 * set of presentities, not as the deletion rate). Presence deletes a row after the NOTIFY-to-all
 * it sends for an expiry (clean timer) or a PUBLISH with Expires: 0, so the deletion time is at or
 * after that NOTIFY. A sentinel row (all keys '') holds when tracing began; the view
 * `kwc_presentity_trace` gives that start, the database's now and whether the trigger exists (from
 * the catalog, in the view owner's rights: on MySQL a user sees a trigger only with the TRIGGER
 * privilege). The worker reads the view with every trace read, so a dropped trigger (a schema
 * upgrade that recreated `presentity`) is noticed at once. Pure: SQL text and parameters only.
 */
import type { DatabaseEngine } from "../fleet.ts";
import { assertIdentifier, type Dialect, ParamBuilder } from "../sql.ts";
import type { Statement } from "../watcher-sql.ts";

export const TRACE_TABLE = "kwc_presentity_deletions";
export const TRACE_TRIGGER = "kwc_presentity_deleted";
export const TRACE_VIEW = "kwc_presentity_trace";
export const PRESENTITY_TABLE = "presentity";
/** Trace rows older than this are pruned (by the worker); deaths older than it are not judged by the trace. */
export const TRACE_RETENTION_SECONDS = 7200;
/** Presentities per read statement (4 parameters each). */
export const TRACE_KEYS_PER_STATEMENT = 50;

/** The database's now, in epoch seconds (whole seconds, like time() in Kamailio). */
function dbNow(engine: DatabaseEngine): string {
  return engine === "postgres"
    ? "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT)"
    : "UNIX_TIMESTAMP()";
}

function triggerCount(engine: DatabaseEngine, database: string): string {
  if (engine === "postgres")
    return `(SELECT COUNT(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = '${TRACE_TRIGGER}' AND c.relname = '${PRESENTITY_TABLE}' AND t.tgenabled <> 'D' AND pg_table_is_visible(c.oid))`;
  return `(SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '${assertIdentifier(database)}' AND EVENT_OBJECT_TABLE = '${PRESENTITY_TABLE}' AND TRIGGER_NAME = '${TRACE_TRIGGER}')`;
}

function viewStatement(dialect: Dialect, database: string): string {
  // MySQL: SQL SECURITY DEFINER is the default, so the catalog is read in the installer's rights.
  return `CREATE OR REPLACE VIEW ${dialect.ident(TRACE_VIEW)} AS SELECT (SELECT deleted_at FROM ${dialect.ident(TRACE_TABLE)} WHERE username = '' AND domain = '' AND event = '') AS traced_since, ${dbNow(dialect.engine)} AS db_now, ${triggerCount(dialect.engine, database)} AS triggers`;
}

/** An upsert into the trace; `keep` keeps the later time (the trigger), else the new one wins (the sentinel). */
function upsert(dialect: Dialect, values: string, keep: boolean): string {
  const t = dialect.ident(TRACE_TABLE);
  if (dialect.engine === "postgres") {
    const set = keep ? `GREATEST(${t}.deleted_at, EXCLUDED.deleted_at)` : "EXCLUDED.deleted_at";
    return `INSERT INTO ${t} (username, domain, event, deleted_at) VALUES (${values}) ON CONFLICT (username, domain, event) DO UPDATE SET deleted_at = ${set}`;
  }
  const set = keep ? "GREATEST(deleted_at, VALUES(deleted_at))" : "VALUES(deleted_at)";
  return `INSERT INTO ${t} (username, domain, event, deleted_at) VALUES (${values}) ON DUPLICATE KEY UPDATE deleted_at = ${set}`;
}

/**
 * The install, in order: table, trigger (PostgreSQL: through a SECURITY DEFINER function, so
 * Kamailio's database user needs no grant on the trace table), the sentinel (written after the
 * trigger exists: tracing is complete from then on), the view. Idempotent: run again after a
 * schema upgrade that recreated `presentity`; the sentinel then moves to the new start.
 */
export function traceInstallStatements(dialect: Dialect, database: string): string[] {
  const t = dialect.ident(TRACE_TABLE);
  const p = dialect.ident(PRESENTITY_TABLE);
  const now = dbNow(dialect.engine);
  const sentinel = upsert(dialect, `'', '', '', ${now}`, false);
  const traced = upsert(dialect, `OLD.username, OLD.domain, OLD.event, ${now}`, true);
  if (dialect.engine === "postgres")
    return [
      `CREATE TABLE IF NOT EXISTS ${t} (username VARCHAR(255) NOT NULL, domain VARCHAR(255) NOT NULL, event VARCHAR(255) NOT NULL, deleted_at BIGINT NOT NULL, PRIMARY KEY (username, domain, event))`,
      `CREATE INDEX IF NOT EXISTS kwc_presentity_deletions_at ON ${t} (deleted_at)`,
      `CREATE OR REPLACE FUNCTION ${TRACE_TRIGGER}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ BEGIN ${traced}; RETURN NULL; END $$`,
      `DROP TRIGGER IF EXISTS ${TRACE_TRIGGER} ON ${p}`,
      `CREATE TRIGGER ${TRACE_TRIGGER} AFTER DELETE ON ${p} FOR EACH ROW EXECUTE FUNCTION ${TRACE_TRIGGER}()`,
      sentinel,
      viewStatement(dialect, database),
    ];
  return [
    `CREATE TABLE IF NOT EXISTS ${t} (username VARCHAR(255) NOT NULL, domain VARCHAR(255) NOT NULL, event VARCHAR(255) NOT NULL, deleted_at BIGINT NOT NULL, PRIMARY KEY (username, domain, event), KEY kwc_presentity_deletions_at (deleted_at))`,
    `DROP TRIGGER IF EXISTS ${TRACE_TRIGGER}`,
    `CREATE TRIGGER ${TRACE_TRIGGER} AFTER DELETE ON ${p} FOR EACH ROW ${traced}`,
    sentinel,
    viewStatement(dialect, database),
  ];
}

/** The removal: the view first (the worker stops trusting the trace at once), then the trigger. */
export function traceRemoveStatements(dialect: Dialect): string[] {
  const t = dialect.ident(TRACE_TABLE);
  const v = dialect.ident(TRACE_VIEW);
  if (dialect.engine === "postgres")
    return [
      `DROP VIEW IF EXISTS ${v}`,
      `DROP TRIGGER IF EXISTS ${TRACE_TRIGGER} ON ${dialect.ident(PRESENTITY_TABLE)}`,
      `DROP FUNCTION IF EXISTS ${TRACE_TRIGGER}()`,
      `DROP TABLE IF EXISTS ${t}`,
    ];
  return [`DROP VIEW IF EXISTS ${v}`, `DROP TRIGGER IF EXISTS ${TRACE_TRIGGER}`, `DROP TABLE IF EXISTS ${t}`];
}

/** `sip:alice@example.com` → Kamailio's presentity columns; undefined if the URI has no user@host. */
export function presentityColumns(uri: string): { username: string; domain: string } | undefined {
  const m = uri.match(/^sips?:([^@;?>]+)@([^;?>:]+)(?::\d+)?$/i);
  return m?.[1] && m[2] ? { username: m[1], domain: m[2] } : undefined;
}

/** One row per key: i, rows, max received_time, min expires, last deletion, then the view's three columns. */
export const TRACE_READ_COLUMNS = 8;

/**
 * What the policy needs of these presentities, and the trace's state, in one statement: per key
 * its row count, newest received_time, earliest expires and last traced deletion. Fails if the
 * trace is not installed (the view is missing) or not readable by this user.
 */
export function traceReadStatement(
  dialect: Dialect,
  keys: readonly { username: string; domain: string; event: string }[],
): Statement {
  const params = new ParamBuilder("k");
  const p = dialect.ident(PRESENTITY_TABLE);
  const t = dialect.ident(TRACE_TABLE);
  const selects = keys.map((key, i) => {
    const where = `username = ${params.add(key.username)} AND domain = ${params.add(key.domain)} AND event = ${params.add(key.event)}`;
    return `SELECT ${i} AS i, (SELECT COUNT(*) FROM ${p} WHERE ${where}) AS n, (SELECT MAX(received_time) FROM ${p} WHERE ${where}) AS received, (SELECT MIN(expires) FROM ${p} WHERE ${where}) AS expires, (SELECT MAX(deleted_at) FROM ${t} WHERE ${where}) AS deleted_at, v.traced_since, v.db_now, v.triggers FROM ${dialect.ident(TRACE_VIEW)} v`;
  });
  return { sql: selects.join(" UNION ALL "), params: params.params };
}

/** Deletes trace rows older than the retention, by the database's clock (never the sentinel). */
export function tracePruneStatement(dialect: Dialect, retentionSeconds = TRACE_RETENTION_SECONDS): Statement {
  const params = new ParamBuilder("r");
  return {
    sql: `DELETE FROM ${dialect.ident(TRACE_TABLE)} WHERE event <> '' AND deleted_at < ${dbNow(dialect.engine)} - ${params.add(retentionSeconds)}`,
    params: params.params,
  };
}
