// `kwc db check` against the project's real PostgreSQL and MariaDB: for the credentials it is
// given, the runtime privileges the service needs and the setup ones an operator needs, read from
// the catalog. Control: a role with the runtime grants only passes runtime and lacks setup; a role
// without DELETE fails runtime (exit 1).
import mysql from "mysql2/promise";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../../cli/main.ts";
import type { DbCheckReport } from "../../../local/db-check.ts";
import { createTestDb, DB_HOST, MY_PORT, PG_PORT, type TestDb } from "../../helpers/db.ts";
import { randomId } from "../../helpers/wait.ts";

async function dbCheck(url: string): Promise<{ code: number; report: DbCheckReport; text: string }> {
  let text = "";
  const append = (t: string) => {
    text += t;
  };
  const io = { out: append, err: append, env: {} };
  const code = await main(["db", "check", "--database-url", url, "--table", "active_watchers", "--json"], io);
  return { code, report: JSON.parse(text) as DbCheckReport, text };
}

const line = (r: DbCheckReport, what: string) => r.lines.find((l) => l.what === what)?.ok;

describe("kwc db check on PostgreSQL", () => {
  let db: TestDb;
  const runtimeRole = `kwc_rt_${randomId(8)}`;
  const noDeleteRole = `kwc_nd_${randomId(8)}`;
  const admin = () => new pg.Client({ host: DB_HOST, port: PG_PORT, user: "postgres", database: db.name });

  beforeAll(async () => {
    db = await createTestDb("postgres", "dbcheck");
    const c = admin();
    await c.connect();
    try {
      await c.query(`CREATE ROLE ${runtimeRole} LOGIN PASSWORD 'pw-runtime'`);
      await c.query(`GRANT SELECT, DELETE ON active_watchers TO ${runtimeRole}`);
      await c.query(`GRANT SELECT ON version, presentity TO ${runtimeRole}`);
      await c.query(`CREATE ROLE ${noDeleteRole} LOGIN PASSWORD 'pw-nodelete'`);
      await c.query(`GRANT SELECT ON active_watchers, version, presentity TO ${noDeleteRole}`);
    } finally {
      await c.end();
    }
  });

  afterAll(async () => {
    const c = admin();
    await c.connect();
    try {
      for (const r of [runtimeRole, noDeleteRole]) {
        await c.query(`DROP OWNED BY ${r}`);
        await c.query(`DROP ROLE ${r}`);
      }
    } finally {
      await c.end();
    }
    await db?.drop();
  });

  const url = (user: string, pw: string) => `postgres://${user}:${pw}@${DB_HOST}:${PG_PORT}/${db.name}`;

  it("the tables' owner (kamailio) has every runtime and setup privilege, and is no superuser", async () => {
    const { code, report } = await dbCheck(url("kamailio", "kamailiorw"));
    expect(code).toBe(0);
    expect(report.superuser).toBe(false);
    expect(report.lines.every((l) => l.ok)).toBe(true);
  });

  it("a role with the runtime grants only: runtime ok, setup missing", async () => {
    const { code, report } = await dbCheck(url(runtimeRole, "pw-runtime"));
    expect(code).toBe(0);
    expect(report.runtimeOk).toBe(true);
    expect(line(report, "owner of active_watchers (index migration)")).toBe(false);
    expect(line(report, "INSERT on version (a node's table)")).toBe(false);
  });

  it("a role without DELETE fails the runtime check (exit 1)", async () => {
    const { code, report } = await dbCheck(url(noDeleteRole, "pw-nodelete"));
    expect(code).toBe(1);
    expect(line(report, "DELETE on active_watchers")).toBe(false);
    expect(line(report, "SELECT on active_watchers")).toBe(true);
  });
});

describe("kwc db check on MariaDB", () => {
  let db: TestDb;
  const user = `kwc_rt_${randomId(6)}`;
  const root = () => mysql.createConnection({ host: DB_HOST, port: MY_PORT, user: "root" });

  beforeAll(async () => {
    db = await createTestDb("mysql", "dbcheck");
    const c = await root();
    try {
      await c.query(`CREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY 'pw-runtime'`);
      await c.query(`GRANT SELECT, DELETE ON \`${db.name}\`.active_watchers TO '${user}'@'127.0.0.1'`);
      await c.query(`GRANT SELECT ON \`${db.name}\`.version TO '${user}'@'127.0.0.1'`);
      await c.query(`GRANT SELECT ON \`${db.name}\`.presentity TO '${user}'@'127.0.0.1'`);
    } finally {
      await c.end();
    }
  });

  afterAll(async () => {
    const c = await root();
    try {
      await c.query(`DROP USER IF EXISTS '${user}'@'127.0.0.1'`);
    } finally {
      await c.end();
    }
    await db?.drop();
  });

  it("kamailio (database-wide grants) has everything; a runtime-only user lacks setup", async () => {
    const owner = await dbCheck(`mysql://kamailio:kamailiorw@${DB_HOST}:${MY_PORT}/${db.name}`);
    expect(owner.code).toBe(0);
    expect(owner.report.lines.every((l) => l.ok)).toBe(true);
    const runtime = await dbCheck(`mysql://${user}:pw-runtime@${DB_HOST}:${MY_PORT}/${db.name}`);
    expect(runtime.code).toBe(0);
    expect(runtime.report.runtimeOk).toBe(true);
    expect(line(runtime.report, "CREATE in the database (a node's table)")).toBe(false);
    expect(line(runtime.report, "INDEX and ALTER on active_watchers (index migration)")).toBe(false);
  });

  it("root is reported as a superuser the service does not need", async () => {
    const r = await dbCheck(`mysql://root@${DB_HOST}:${MY_PORT}/${db.name}`);
    expect(r.report.superuser).toBe(true);
    expect(r.report.warnings.join(" ")).toMatch(/needs none/);
  });
});
