// The presentity deletion trace (core/sql/presentity-trace.ts) on real PostgreSQL and MariaDB behind
// the local Data API server: `kwc db trace` installs it as the tables' owner; the worker's reader,
// as a runtime role with only the grants docs/security.md lists, sees each deletion Kamailio's
// statements make (the per-row delete of an expiry or Expires: 0, the clean timer's bulk delete)
// in the database's clock, prunes old rows but never the start row, and stops trusting the trace
// when its trigger or its view is gone. Controls: before the install, after a dropped trigger and
// after `kwc db untrace` the reader says "not installed".
import { writeFileSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataApiExecutor } from "#adapters/data-api-store.ts";
import { DataApiPresentityTrace } from "#adapters/presentity-trace.ts";
import { presentityKeyId } from "#core/plan.ts";
import { TRACE_TRIGGER, traceInstallStatements } from "#core/sql/presentity-trace.ts";
import { dialectFor } from "#core/sql.ts";
import { main } from "../../../cli/main.ts";
import { type DataApiServer, startDataApiServer } from "../../../local/dataapi/server.ts";
import { localDataApiClient, testDbConfig, testDbTarget } from "../../helpers/dataapi.ts";
import { createTestDb, DB_HOST, type Engine, PG_PORT, type TestDb } from "../../helpers/db.ts";
import { randomId } from "../../helpers/wait.ts";

const RUNTIME_ARN = (engine: Engine) => `arn:aws:rds:us-east-1:000000000000:cluster:kwc-trace-rt-${engine}`;
const alice = { presentityUri: "sip:alice@example.com", event: "presence" };
const bob = { presentityUri: "sip:bob@example.com", event: "dialog" };
const carol = { presentityUri: "sip:carol@example.com", event: "presence" };

describe.each<Engine>(["postgres", "mysql"])("presentity deletion trace on %s", (engine) => {
  let db: TestDb;
  let server: DataApiServer;
  let fleetFile: string;
  const role = `kwc_rt_${randomId(8)}`;
  const ph = (i: number) => (engine === "postgres" ? `$${i}` : "?");

  async function kwc(args: string[]) {
    const out: string[] = [];
    const env = {
      KWC_FLEET_CONFIG: `file:${fleetFile}`,
      KWC_TEST_TOKEN: "t".repeat(16),
      AWS_ENDPOINT_URL_RDS_DATA: server.endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
    };
    const code = await main(args, { out: (t) => out.push(t), err: (t) => out.push(t), env });
    return { code, stdout: out.join("\n") };
  }
  /** The worker's reader, as the runtime role (a fresh one: no cached "absent"). */
  const reader = (onAbsent?: (reason: string) => void) => {
    const executor = new DataApiExecutor(localDataApiClient(server.endpoint), {
      ...testDbConfig(db),
      resourceArn: RUNTIME_ARN(engine),
    });
    return new DataApiPresentityTrace((s) => executor.execute(s), { engine }, onAbsent ? { onAbsent } : {});
  };
  /** Roles and grants: the superuser on PostgreSQL (the test database's owner cannot create roles), root on MariaDB. */
  async function admin(sql: string): Promise<void> {
    if (engine === "mysql") return void (await db.query(sql));
    const c = new pg.Client({ host: DB_HOST, port: PG_PORT, user: "postgres", database: db.name });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  }
  const publish = (user: string, event: string, etag: string, expires: number) =>
    db.query(
      `INSERT INTO presentity (username, domain, event, etag, expires, received_time, body, sender, priority, ruid) VALUES (${[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(ph).join(", ")})`,
      [
        user,
        "example.com",
        event,
        etag,
        expires,
        Math.floor(Date.now() / 1000) - 100,
        "<x/>",
        "",
        0,
        `ruid-${etag}`,
      ],
    );

  beforeAll(async () => {
    db = await createTestDb(engine, "ptrace");
    const pw = "pw-runtime";
    if (engine === "postgres") {
      await admin(`CREATE ROLE ${role} LOGIN PASSWORD '${pw}'`);
    } else {
      await admin(`CREATE USER '${role}'@'%' IDENTIFIED BY '${pw}'`);
      await admin(`GRANT SELECT ON \`${db.name}\`.presentity TO '${role}'@'%'`);
    }
    server = await startDataApiServer({
      targets: [
        testDbTarget(db),
        { ...testDbTarget(db), resourceArn: RUNTIME_ARN(engine), user: role, password: pw },
      ],
    });
    fleetFile = `/tmp/kwc-fleet-${db.name}.json`;
    const node = {
      id: "n1",
      rpcUrl: "http://127.0.0.1:9/RPC",
      statusUrl: "http://127.0.0.1:9/kwc/status",
      tokenSecret: "env:KWC_TEST_TOKEN",
      socketInfo: ["tcp:127.0.0.2:5060"],
      watchersTable: "active_watchers",
      contactStyle: "auto",
      kamailioVersion: "5.6.3",
      subsDbMode: 3,
      notifierProcesses: 0,
    };
    writeFileSync(fleetFile, JSON.stringify({ version: 1, database: testDbConfig(db), nodes: [node] }));
  });
  afterAll(async () => {
    await server?.close();
    if (engine === "mysql") await admin(`DROP USER IF EXISTS '${role}'@'%'`).catch(() => {});
    else if (db) {
      await admin(`DROP OWNED BY ${role}`).catch(() => {});
      await admin(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
    }
    await db?.drop();
  });

  it("installs, traces Kamailio's deletes in DB time, prunes, and is distrusted once its trigger or view is gone", async () => {
    // CONTROL: not installed yet.
    const reasons: string[] = [];
    expect((await reader((r) => reasons.push(r)).read([alice])).installed).toBe(false);
    expect(reasons.join()).toMatch(/kwc_presentity_trace/);

    const dry = await kwc(["db", "trace", "--dry-run"]);
    expect(dry.stdout).toBe(
      traceInstallStatements(dialectFor(engine), db.name)
        .map((s) => `${s};`)
        .join("\n"),
    );
    const install = await kwc(["db", "trace"]);
    expect(install.code, install.stdout).toBe(0);
    expect((await kwc(["db", "trace"])).code).toBe(0); // idempotent
    // The runtime grants of docs/security.md.
    if (engine === "postgres") {
      await admin(`GRANT SELECT ON presentity, kwc_presentity_trace TO ${role}`);
      await admin(`GRANT SELECT, DELETE ON kwc_presentity_deletions TO ${role}`);
    } else {
      await admin(`GRANT SELECT ON \`${db.name}\`.kwc_presentity_trace TO '${role}'@'%'`);
      await admin(`GRANT SELECT, DELETE ON \`${db.name}\`.kwc_presentity_deletions TO '${role}'@'%'`);
    }

    const now = Math.floor(Date.now() / 1000);
    await publish("alice", "presence", "a-phone", now + 600);
    await publish("alice", "presence", "a-laptop", now + 600);
    await publish("bob", "dialog", "b-1", now - 5);
    await publish("carol", "presence", "c-1", now + 600);
    // Expires: 0 (and the clean timer's per-row delete): by (username, domain, event, etag).
    await db.query(
      `DELETE FROM presentity WHERE username = ${ph(1)} AND domain = ${ph(2)} AND event = ${ph(3)} AND etag = ${ph(4)}`,
      ["alice", "example.com", "presence", "a-laptop"],
    );
    // The clean timer's closing bulk delete (expires < now AND expires > 0).
    await db.query(`DELETE FROM presentity WHERE expires < ${ph(1)} AND expires > 0`, [now]);

    const read = await reader().read([alice, bob, carol]);
    expect(read.installed).toBe(true);
    const a = read.byKey.get(presentityKeyId(alice));
    const b = read.byKey.get(presentityKeyId(bob));
    const c = read.byKey.get(presentityKeyId(carol));
    expect(a?.rows).toEqual([{ receivedTime: now - 100, expires: now + 600 }]);
    expect(b?.rows).toEqual([]);
    expect(c?.rows).toHaveLength(1);
    for (const d of [a?.deletions.lastDeletedAt, b?.deletions.lastDeletedAt])
      expect(Math.abs((d ?? 0) - now)).toBeLessThanOrEqual(3);
    expect(c?.deletions.lastDeletedAt).toBeUndefined();
    expect(a?.deletions.tracedSince).toBeLessThanOrEqual(now + 3);

    // Pruning: rows past the retention go, the start row stays.
    await db.query(
      `UPDATE kwc_presentity_deletions SET deleted_at = deleted_at - 10000 WHERE username = 'bob'`,
    );
    const pruner = reader();
    await pruner.read([alice]);
    expect(await pruner.prune()).toBe(1);
    expect(await pruner.prune()).toBe(0); // at most once per interval
    const left = await db.query<{ username: string }>(
      "SELECT username FROM kwc_presentity_deletions ORDER BY username",
    );
    expect(left.map((r) => r.username)).toEqual(["", "alice"]);

    // CONTROL: a presentity table recreated by a schema upgrade loses the trigger: distrusted at once.
    await db.query(
      engine === "postgres" ? `DROP TRIGGER ${TRACE_TRIGGER} ON presentity` : `DROP TRIGGER ${TRACE_TRIGGER}`,
    );
    expect((await reader().read([alice])).installed).toBe(false);
    expect((await kwc(["db", "trace"])).code).toBe(0);
    expect((await reader().read([alice])).installed).toBe(true);
    // CONTROL: untrace.
    expect((await kwc(["db", "untrace"])).code).toBe(0);
    expect((await reader().read([alice])).installed).toBe(false);
  });
});
