import { describe, expect, it } from "vitest";
import { bindMysql, bindPostgres } from "../../../local/dataapi/bindings.ts";
import { parsePgArray } from "../../../local/dataapi/engines/postgres.ts";
import { FaultInjector } from "../../../local/dataapi/faults.ts";
import { mariadbOnlySyntax } from "../../../local/dataapi/mysql8.ts";
import { stringifyExact } from "../../../local/dataapi/protocol.ts";
import { type Dialect, tokenize } from "../../../local/dataapi/tokenizer.ts";

const params = (sql: string, dialect: Dialect) =>
  tokenize(sql, dialect)
    .filter((t) => t.kind === "param")
    .map((t) => t.name);

describe("tokenizer: where :name is a parameter", () => {
  it.each<[string, Dialect, string[]]>([
    ["SELECT :a, :b_2 FROM t WHERE x = :a", "postgres", ["a", "b_2", "a"]],
    ["SELECT ':a', 'it''s :b', :c", "postgres", ["c"]],
    ["SELECT E'\\' :a', :b", "postgres", ["b"]],
    ["SELECT $$ :a $$, $tag$ :b $x$ :c $tag$, :d", "postgres", ["d"]],
    ['SELECT "col:a", :b', "postgres", ["b"]],
    ["SELECT x::int, :a::text, y := 1", "postgres", ["a"]],
    ["SELECT 1 -- :a\n, :b /* :c /* nested :d */ :e */ , :f", "postgres", ["b", "f"]],
    ["SELECT arr[1:2], $1", "postgres", []],
    ["SELECT 'it\\'s :a', \"dq :b\", `bt:c`, :d", "mysql", ["d"]],
    ["SELECT @v := :a # :b\n, :c", "mysql", ["a", "c"]],
    ["SELECT 1--:a\n, :b", "mysql", ["a", "b"]], // `--` without a space is not a comment in MySQL
    ["SELECT 1 -- :a\n, :b", "mysql", ["b"]],
    ["SELECT /* :a /* :b */ :c", "mysql", ["c"]], // MySQL block comments do not nest
    ["SELECT 'unterminated :a", "postgres", []],
  ])("%s (%s) → %j", (sql, dialect, expected) => {
    expect(params(sql, dialect)).toEqual(expected);
  });

  it("reassembles the statement byte for byte", () => {
    const sql = 'SELECT E\'a\\\'b\', $x$ q $x$, "i""d" -- c\n/* d */ :p::int';
    expect(
      tokenize(sql, "postgres")
        .map((t) => t.text)
        .join(""),
    ).toBe(sql);
  });
});

describe("binding", () => {
  it("PostgreSQL: one typed $n per distinct name, hints as casts", () => {
    const out = bindPostgres(tokenize("SELECT :a, :b, :a, :d, :n, ':a'", "postgres"), [
      { name: "a", value: { longValue: 5 } },
      { name: "b", value: { stringValue: "2024-01-01" }, typeHint: "DATE" },
      { name: "d", value: { blobValue: "AAE=" } },
      { name: "n", value: { isNull: true } },
    ]);
    expect(out.sql).toBe("SELECT $1::int8, $2::date, $1::int8, $3::bytea, $4, ':a'");
    expect(out.values).toEqual([5, "2024-01-01", Buffer.from([0, 1]), null]);
  });

  it("MySQL: one ? per occurrence, temporal hints as CAST", () => {
    const out = bindMysql(tokenize("SELECT :a, :t, :a", "mysql"), [
      { name: "a", value: { booleanValue: true } },
      { name: "t", value: { stringValue: "10:00:00" }, typeHint: "TIME" },
    ]);
    expect(out.sql).toBe("SELECT ?, CAST(? AS TIME(6)), ?");
    expect(out.values).toEqual([true, "10:00:00", true]);
  });

  it("MySQL with a literal writer: values inline, a '?' in a string literal untouched", () => {
    const out = bindMysql(
      tokenize("SELECT '?', :a, :b", "mysql"),
      [
        { name: "a", value: { stringValue: "x'y" } },
        { name: "b", value: { isNull: true } },
      ],
      (v) => (v === null ? "NULL" : `'${String(v).replace(/'/g, "''")}'`),
    );
    expect(out.sql).toBe("SELECT '?', 'x''y', NULL");
    expect(out.values).toEqual([]);
  });

  it("refuses missing, array and multi-member parameters", () => {
    const tokens = tokenize("SELECT :a", "postgres");
    expect(() => bindPostgres(tokens, [])).toThrow(/No value specified for parameter: a/);
    expect(() => bindPostgres(tokens, [{ name: "a", value: { arrayValue: { longValues: [1] } } }])).toThrow(
      /Array parameters are not supported/,
    );
    expect(() => bindPostgres(tokens, [{ name: "a", value: { longValue: 1, stringValue: "x" } }])).toThrow(
      /exactly one/,
    );
  });
});

describe("aurora-mysql refuses MariaDB-only syntax", () => {
  const check = (sql: string) => mariadbOnlySyntax(tokenize(sql, "mysql"));
  it.each([
    "DELETE FROM t WHERE id = 1 RETURNING id",
    "INSERT INTO t (a) VALUES (1) RETURNING a",
    "CREATE SEQUENCE s",
    "SELECT NEXTVAL(s)",
    "SELECT NEXT VALUE FOR s",
    "CREATE OR REPLACE TABLE t (a int)",
    "ALTER TABLE t ADD COLUMN IF NOT EXISTS a int",
    "CREATE INDEX IF NOT EXISTS i ON t (a)",
    "CREATE TABLE t (a INET6)",
    "CREATE TABLE t (id int, u UUID)",
    "SELECT a FROM t FETCH FIRST 1 ROWS ONLY",
  ])("refuses %s", (sql) => {
    expect(check(sql)).toEqual(expect.any(String));
  });
  it.each([
    "SELECT 'RETURNING' AS returning_text, `returning` FROM t -- RETURNING",
    "CREATE TABLE IF NOT EXISTS t (a int, uuid CHAR(36))",
    "DROP TABLE IF EXISTS t",
    "CREATE OR REPLACE VIEW v AS SELECT 1",
    "SELECT UUID()",
    "DELETE FROM t WHERE id IN (1, 2)",
  ])("accepts %s", (sql) => {
    expect(check(sql)).toBeUndefined();
  });
});

describe("encoding helpers", () => {
  it("writes bigints as exact JSON digits", () => {
    expect(stringifyExact({ a: 9007199254740993n, b: [{ longValue: -1n }], s: "9007199254740993" })).toBe(
      '{"a":9007199254740993,"b":[{"longValue":-1}],"s":"9007199254740993"}',
    );
  });
  it("parses PostgreSQL array text, refuses nested arrays", () => {
    expect(parsePgArray('{a,"b c","q\\"x",NULL,"NULL"}')).toEqual(["a", "b c", 'q"x', null, "NULL"]);
    expect(parsePgArray("{}")).toEqual([]);
    expect(() => parsePgArray("{{1,2},{3,4}}")).toThrow(/multidimensional/);
  });
});

describe("fault injector", () => {
  it("fails the next N matching calls, then none", () => {
    const f = new FaultInjector();
    f.failNext(2, "DatabaseResumingException", { match: /DELETE/ });
    expect(f.take("ExecuteStatement", "SELECT 1")).toBeUndefined();
    expect(f.take("ExecuteStatement", "DELETE FROM t")).toBe("DatabaseResumingException");
    expect(f.take("ExecuteStatement", "DELETE FROM t")).toBe("DatabaseResumingException");
    expect(f.take("ExecuteStatement", "DELETE FROM t")).toBeUndefined();
    expect(f.injected).toHaveLength(2);
  });
  it("is deterministic for a seed", () => {
    const pattern = (seed: number) => {
      const f = new FaultInjector();
      f.failNext(5, "ServiceUnavailableError", { probability: 0.5, seed });
      return Array.from({ length: 20 }, () => f.take("ExecuteStatement", "SELECT 1") !== undefined);
    };
    expect(pattern(42)).toEqual(pattern(42));
    expect(pattern(42).filter(Boolean)).toHaveLength(5);
    expect(pattern(42)).not.toEqual(pattern(7));
  });
});
