// The Data API store's statements (LIKE escaping, identifiers, both dialects), its parameters,
// and its MySQL deleted-id confirmation over a mocked RDS Data API client.
import { ExecuteStatementCommand, RDSDataClient } from "@aws-sdk/client-rds-data";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { DataApiWatcherStore, toSqlParameters } from "#adapters/data-api-store.ts";
import { assertIdentifier, escapeLike, likePattern, mysqlDialect, postgresDialect } from "#core/sql.ts";
import { deleteWatchersStatement, selectCandidatesStatement } from "#core/watcher-sql.ts";

describe("SQL helpers and statements", () => {
  it("escapes LIKE metacharacters and refuses unsafe identifiers", () => {
    expect(escapeLike("a%b_c!d")).toBe("a!%b!_c!!d");
    expect(likePattern(["", "@1.2.3.4:5;", ""])).toBe("%@1.2.3.4:5;%");
    expect(() => assertIdentifier('aw"; drop')).toThrow(/refusing/);
    expect(postgresDialect.ident("aw_a")).toBe('"aw_a"');
    expect(mysqlDialect.ident("aw_a")).toBe("`aw_a`");
  });

  it("MySQL compares dialog keys with `=` and BINARY `=` (index usable, byte-exact); no RETURNING", () => {
    const scope = {
      nodeId: "n",
      table: "aw",
      socketInfo: ["tcp:1.1.1.1:5080"],
      contactStyle: "nated" as const,
    };
    const criteria = { peers: [], dialogs: [{ callId: "C'%", toTag: "t", fromTag: "f" }] };
    const my = deleteWatchersStatement(mysqlDialect, scope, [1, 2], criteria);
    expect(my.sql).toContain("callid = :p");
    expect(my.sql).toMatch(/callid = :(p\d+) AND BINARY callid = :\1/);
    expect(my.sql).not.toMatch(/RETURNING/);
    expect(Object.values(my.params)).toContain("C'%");
    expect(my.sql).not.toContain("C'%");
    const pg = deleteWatchersStatement(postgresDialect, scope, [1], criteria);
    expect(pg.sql).toMatch(/RETURNING id$/);
    const sel = selectCandidatesStatement(
      postgresDialect,
      scope,
      { peers: [{ ip: "1.2.3.4", port: 5 }], dialogs: [] },
      0,
      59,
    );
    expect(sel.sql).toContain("LOWER(contact) LIKE :p");
    expect(sel.sql).toContain("ESCAPE '!'");
    expect(sel.sql).toMatch(/ORDER BY id LIMIT 59$/);
  });

  it("binds parameters as Data API fields", () => {
    expect(toSqlParameters({ a: "x", b: 5, c: null, d: true, e: 1.5 })).toEqual([
      { name: "a", value: { stringValue: "x" } },
      { name: "b", value: { longValue: 5 } },
      { name: "c", value: { isNull: true } },
      { name: "d", value: { booleanValue: true } },
      { name: "e", value: { doubleValue: 1.5 } },
    ]);
  });

  it("MySQL store confirms which ids a partial DELETE removed (third call only then)", async () => {
    const rds = mockClient(RDSDataClient);
    rds
      .on(ExecuteStatementCommand)
      .callsFake((input: { sql: string }) =>
        input.sql.startsWith("DELETE") ? { numberOfRecordsUpdated: 1 } : { records: [[{ longValue: 2 }]] },
      );
    const store = new DataApiWatcherStore(new RDSDataClient({}), {
      engine: "mysql",
      resourceArn: "arn:c",
      secretArn: "arn:s",
      name: "kamailio",
    });
    const scope = {
      nodeId: "n",
      table: "aw",
      socketInfo: ["tcp:1.1.1.1:5080"],
      contactStyle: "nated" as const,
    };
    // The peer-index detection is a call of its own, once per table (cached).
    await store.peerIndex.hasValidIndex("aw");
    const detection = rds.commandCalls(ExecuteStatementCommand).length;
    expect(
      await store.deleteWatchers(scope, [1, 2], { peers: [{ ip: "1.2.3.4", port: 5 }], dialogs: [] }),
    ).toEqual([1]);
    expect(rds.commandCalls(ExecuteStatementCommand).length - detection).toBe(2);
    rds.reset();
    rds.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 2 });
    expect(
      await store.deleteWatchers(scope, [1, 2], { peers: [{ ip: "1.2.3.4", port: 5 }], dialogs: [] }),
    ).toEqual([1, 2]);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
    rds.restore();
  });
});
