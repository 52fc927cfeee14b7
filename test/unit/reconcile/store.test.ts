import { ExecuteStatementCommand, RDSDataClient } from "@aws-sdk/client-rds-data";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import {
  createNodeTableStatements,
  DataApiReconcileStore,
  deleteStatement,
  selectPageStatement,
} from "#adapters/reconcile-store.ts";
import { mysqlDialect, postgresDialect } from "#core/sql.ts";

const filter = { socketInfo: ["tcp:10.0.0.1:8080"] };
const database = { engine: "postgres" as const, resourceArn: "arn:r", secretArn: "arn:s", name: "kamailio" };
const record = (id: number, wide = 10) => [
  { longValue: id },
  { stringValue: "sip:bob@x" },
  { stringValue: "presence" },
  { stringValue: `sip:u@10.0.0.9:${1000 + id};transport=ws` },
  { stringValue: "c".repeat(wide) },
  { stringValue: "tt" },
  { stringValue: "ft" },
  { longValue: 2_000_000_000 },
];

describe("reconcile statements", () => {
  it("pages on id within the node's sockets, with every scope as data (never spliced)", () => {
    const s = selectPageStatement(
      mysqlDialect,
      "aw_a",
      {
        ...filter,
        presentity: "sip:o'hara@x",
        watcher: { username: "a%b", domain: "X" },
        dialog: { callId: "c'1", toTag: "t", fromTag: "f" },
        expiresBefore: 5,
      },
      42,
      100,
    );
    expect(s.sql).toMatch(
      /^SELECT id, presentity_uri, event, contact, callid, to_tag, from_tag, expires FROM `aw_a` WHERE id > :p0 AND socket_info IN \(:p1\)/,
    );
    expect(s.sql).toMatch(/ORDER BY id LIMIT 100$/);
    expect(s.sql).toContain("BINARY callid = ");
    expect(s.sql).not.toMatch(/o'hara|a%b|c'1/);
    expect(Object.values(s.params)).toEqual(
      expect.arrayContaining([42, "tcp:10.0.0.1:8080", "sip:o'hara@x", "a%b", "X", "c'1", 5]),
    );
  });

  it("deletes by id and unchanged expires, within the same filter", () => {
    const s = deleteStatement(
      postgresDialect,
      "aw_a",
      [
        { id: 1, expires: 10 },
        { id: 2, expires: 20 },
      ],
      filter,
    );
    expect(s.sql).toBe(
      'DELETE FROM "aw_a" WHERE id IN (:p0, :p1) AND (id, expires) IN ((:p2, :p3), (:p4, :p5)) AND socket_info IN (:p6) RETURNING id, watcher_username, watcher_domain',
    );
    expect(s.params).toEqual({ p0: 1, p1: 2, p2: 1, p3: 10, p4: 2, p5: 20, p6: "tcp:10.0.0.1:8080" });
    expect(() => deleteStatement(postgresDialect, "aw; drop", [{ id: 1, expires: 1 }], filter)).toThrow(
      /refusing SQL identifier/,
    );
  });

  it("creates a node table with its own sequence on PostgreSQL, LIKE on MySQL, and the version row once", () => {
    const pg = createNodeTableStatements(postgresDialect, "aw_n1").map((s) => s.sql);
    expect(pg[0]).toMatch(/^CREATE TABLE IF NOT EXISTS "aw_n1" \(id SERIAL PRIMARY KEY/);
    expect(pg.filter((s) => s.startsWith("CREATE INDEX IF NOT EXISTS"))).toHaveLength(4);
    expect(pg.at(-1)).toMatch(/INSERT INTO version .* WHERE NOT EXISTS/);
    const my = createNodeTableStatements(mysqlDialect, "aw_n1");
    expect(my[0]?.sql).toBe("CREATE TABLE IF NOT EXISTS `aw_n1` LIKE active_watchers");
    expect(my[1]?.sql).toMatch(/FROM DUAL WHERE NOT EXISTS/);
    expect(my[1]?.params).toEqual({ t: "aw_n1", v: 12 });
  });
});

describe("DataApiReconcileStore paging", () => {
  const rds = mockClient(RDSDataClient);
  beforeEach(() => rds.reset());

  it("sizes pages from the widest row seen and halves a page the Data API finds too large", async () => {
    // As the SDK throws it: a client fault with its status (the name is not relied on).
    const tooLarge = Object.assign(new Error("Database returned more than the allowed response size limit"), {
      name: "BadRequestException",
      $fault: "client",
      $metadata: { httpStatusCode: 400 },
    });
    rds
      .on(ExecuteStatementCommand)
      .rejectsOnce(tooLarge)
      .resolvesOnce({ records: [record(1, 2000), record(2)] })
      .resolves({ records: [] });
    const store = new DataApiReconcileStore(new RDSDataClient({}), database);
    const first = await store.readPage("aw_a", filter, 0);
    expect(first.rows.map((r) => r.id)).toEqual([1, 2]);
    expect(first.done).toBe(true);
    const limits = rds
      .commandCalls(ExecuteStatementCommand)
      .map((c) => Number(/LIMIT (\d+)$/.exec(c.args[0].input.sql ?? "")?.[1]));
    expect(limits).toEqual([500, 250]);
    expect(store.stats).toMatchObject({ pages: 1, rows: 2, shrinks: 1 });
    expect(store.stats.largestResponseBytes).toBeGreaterThan(2000);
    await store.readPage("aw_a", filter, 2);
    const next = Number(
      /LIMIT (\d+)$/.exec(rds.commandCalls(ExecuteStatementCommand)[2]?.args[0].input.sql ?? "")?.[1],
    );
    // half a MiB over a ~2.1 kB widest row
    expect(next).toBeGreaterThan(200);
    expect(next).toBeLessThan(260);
  });

  it("does not retry other errors", async () => {
    rds
      .on(ExecuteStatementCommand)
      .rejects(Object.assign(new Error("boom"), { name: "DatabaseErrorException" }));
    const store = new DataApiReconcileStore(new RDSDataClient({}), database);
    await expect(store.readPage("aw_a", filter, 0)).rejects.toThrow("boom");
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
  });
});
