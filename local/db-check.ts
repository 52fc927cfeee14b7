/**
 * `kwc db check`: what the given credentials may do, against what the service needs.
 *   runtime (the worker, the reconciler, on-demand cleanup): SELECT + DELETE on each watchers
 *     table, SELECT on `version` and `presentity`;
 *   setup (an operator, once): a node's own table (CREATE in the schema/database, INSERT on
 *     `version`) and the index migration (owning the table on PostgreSQL; INDEX + ALTER on MySQL).
 * Read-only: it asks the catalog (has_table_privilege / information_schema), never tries a write.
 */
import mysql from "mysql2/promise";
import pg from "pg";
import type { DbTarget } from "./database.ts";

export interface PrivilegeLine {
  need: "runtime" | "setup";
  what: string;
  ok: boolean;
}

export interface DbCheckReport {
  user: string;
  superuser: boolean;
  lines: PrivilegeLine[];
  /** Every runtime line is ok. */
  runtimeOk: boolean;
  warnings: string[];
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

function finish(user: string, superuser: boolean, lines: PrivilegeLine[], tables: string[]): DbCheckReport {
  const warnings: string[] = [];
  if (superuser)
    warnings.push(
      `${user} is a superuser: the service needs none. Give it a role with the runtime grants only, e.g. ` +
        `GRANT SELECT, DELETE ON ${tables.join(", ")} TO kwc; GRANT SELECT ON version, presentity TO kwc;`,
    );
  return { user, superuser, lines, runtimeOk: lines.every((l) => l.need !== "runtime" || l.ok), warnings };
}

async function checkPostgres(t: DbTarget, tables: string[]): Promise<DbCheckReport> {
  const client = new pg.Client({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
    database: t.database,
    ...(t.ssl ? { ssl: t.ssl } : {}),
  });
  await client.connect();
  try {
    const who = await client.query<{ u: string; su: boolean; create: boolean }>(
      "SELECT current_user AS u, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS su, " +
        "has_schema_privilege(current_schema(), 'CREATE') AS create",
    );
    const priv = async (table: string, privilege: string): Promise<boolean> => {
      const r = await client.query<{ ok: boolean }>(
        "SELECT CASE WHEN to_regclass($1) IS NULL THEN false ELSE has_table_privilege($1, $2) END AS ok",
        [table, privilege],
      );
      return r.rows[0]?.ok === true;
    };
    const owns = async (table: string): Promise<boolean> => {
      const r = await client.query<{ ok: boolean }>(
        "SELECT COALESCE((SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass($1)), false) AS ok",
        [table],
      );
      return r.rows[0]?.ok === true;
    };
    const lines: PrivilegeLine[] = [];
    for (const table of tables) {
      lines.push({ need: "runtime", what: `SELECT on ${table}`, ok: await priv(table, "SELECT") });
      lines.push({ need: "runtime", what: `DELETE on ${table}`, ok: await priv(table, "DELETE") });
    }
    lines.push({ need: "runtime", what: "SELECT on version", ok: await priv("version", "SELECT") });
    lines.push({ need: "runtime", what: "SELECT on presentity", ok: await priv("presentity", "SELECT") });
    lines.push({
      need: "setup",
      what: "CREATE in the schema (a node's table)",
      ok: who.rows[0]?.create === true,
    });
    lines.push({
      need: "setup",
      what: "INSERT on version (a node's table)",
      ok: await priv("version", "INSERT"),
    });
    for (const table of tables)
      lines.push({ need: "setup", what: `owner of ${table} (index migration)`, ok: await owns(table) });
    return finish(who.rows[0]?.u ?? t.user, who.rows[0]?.su === true, lines, tables);
  } finally {
    await client.end();
  }
}

async function checkMysql(t: DbTarget, tables: string[]): Promise<DbCheckReport> {
  const conn = await mysql.createConnection({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
    database: t.database,
    ...(t.ssl ? { ssl: t.ssl } : {}),
  });
  try {
    const [who] = await conn.query("SELECT CURRENT_USER() AS u");
    const current = String((who as { u: string }[])[0]?.u ?? "");
    const at = current.lastIndexOf("@");
    const grantee = `'${current.slice(0, at)}'@'${current.slice(at + 1)}'`;
    const [rows] = await conn.query(
      "SELECT PRIVILEGE_TYPE AS p, '' AS t FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ? " +
        "UNION ALL SELECT PRIVILEGE_TYPE, '' FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ? AND ? LIKE TABLE_SCHEMA " +
        "UNION ALL SELECT PRIVILEGE_TYPE, TABLE_NAME FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = ? AND TABLE_SCHEMA = ?",
      [grantee, grantee, t.database, grantee, t.database],
    );
    const grants = rows as { p: string; t: string }[];
    const has = (privilege: string, table = "") =>
      grants.some((g) => g.p === privilege && (g.t === "" || g.t.toLowerCase() === table.toLowerCase()));
    const lines: PrivilegeLine[] = [];
    for (const table of tables) {
      lines.push({ need: "runtime", what: `SELECT on ${table}`, ok: has("SELECT", table) });
      lines.push({ need: "runtime", what: `DELETE on ${table}`, ok: has("DELETE", table) });
    }
    lines.push({ need: "runtime", what: "SELECT on version", ok: has("SELECT", "version") });
    lines.push({ need: "runtime", what: "SELECT on presentity", ok: has("SELECT", "presentity") });
    lines.push({ need: "setup", what: "CREATE in the database (a node's table)", ok: has("CREATE") });
    lines.push({ need: "setup", what: "INSERT on version (a node's table)", ok: has("INSERT", "version") });
    for (const table of tables)
      lines.push({
        need: "setup",
        what: `INDEX and ALTER on ${table} (index migration)`,
        ok: has("INDEX", table) && has("ALTER", table),
      });
    const superuser = grants.some((g) => g.t === "" && g.p === "SUPER");
    return finish(current, superuser, lines, tables);
  } finally {
    await conn.end();
  }
}

export async function checkDbPrivileges(target: DbTarget, tables: readonly string[]): Promise<DbCheckReport> {
  const list = tables.length > 0 ? [...tables] : ["active_watchers"];
  for (const table of list)
    if (!IDENT.test(table)) throw new Error(`invalid table name ${JSON.stringify(table)}`);
  return target.engine === "postgres" ? checkPostgres(target, list) : checkMysql(target, list);
}

export function renderDbCheck(report: DbCheckReport, where: string): string {
  const out = [`database ${where}, connected as ${report.user}${report.superuser ? " (superuser)" : ""}`];
  for (const need of ["runtime", "setup"] as const) {
    out.push(need === "runtime" ? "runtime (the service):" : "setup (an operator, once):");
    for (const l of report.lines.filter((x) => x.need === need))
      out.push(`  ${l.ok ? "ok     " : "MISSING"} ${l.what}`);
  }
  for (const w of report.warnings) out.push(`warning: ${w}`);
  out.push(
    report.runtimeOk
      ? "runtime privileges: ok"
      : "runtime privileges: MISSING (the service cannot clean up with these credentials)",
  );
  return out.join("\n");
}
