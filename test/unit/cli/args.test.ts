import { describe, expect, it } from "vitest";
import { CleanupRequestSchema, emptyCounts, type NodeReport, summarize } from "#core/cleanup-request.ts";
import { EXIT, HELP, helpFor, parseCommandLine, UsageError } from "../../../cli/args.ts";
import { COMMANDS, OPTIONS, type OptionName } from "../../../cli/commands.ts";
import { exitCodeOf, renderReport, table } from "../../../cli/output.ts";

const parse = (line: string, env = {}) => parseCommandLine(line.split(" ").filter(Boolean), env);

const refused = (line: string, message: RegExp) => {
  expect(() => parse(line)).toThrow(UsageError);
  expect(() => parse(line)).toThrow(message);
};

describe("kwc argument parsing: each verb takes exactly the options of its table", () => {
  it("refuses, for every verb, every option of another verb, naming the flag and the verb", () => {
    const values: Record<string, string> = { string: "x", boolean: "" };
    for (const verb of COMMANDS) {
      const words = [...verb.words, ...(verb.operands ?? []).map(() => "n1")].join(" ");
      for (const [name, spec] of Object.entries(OPTIONS)) {
        if (name === "help" || verb.options.includes(name as OptionName)) continue;
        refused(
          `${words} --${name} ${values[spec.type]}`,
          new RegExp(`^${verb.words.join(" ")} does not take --${name}\\b`),
        );
      }
    }
  });

  it("builds db check with its own options only", () => {
    expect(parse("db check --database-url mysql://u@h/d --table a,b --json")).toMatchObject({
      kind: "db-check",
      databaseUrl: "mysql://u@h/d",
      tables: ["a", "b"],
    });
    expect(() => parse("db check --node x")).toThrow(/db check does not take --node/);
  });

  it("refuses what it does not know at all, and options without their value", () => {
    refused("reconcile --bogus", /Unknown option '--bogus'/);
    refused("clean --node", /--node <value>' argument missing/);
    refused("frobnicate", /unknown command "frobnicate"/);
    refused(
      "db frob",
      /unknown command "db frob" \(try: kwc db create-node-table <node> \| kwc db check \[--database-url URL\] \[--table T1,T2\] \| kwc db migrate .* \| kwc db unmigrate/,
    );
  });

  it("db migrate / unmigrate: the peer index, with --node, --dry-run and (migrate only) --allow-stall", () => {
    expect(parse("db migrate --node n1 --allow-stall")).toMatchObject({
      kind: "peer-index",
      action: "migrate",
      node: "n1",
      dryRun: false,
      allowStall: true,
    });
    expect(parse("db unmigrate --dry-run")).toMatchObject({
      kind: "peer-index",
      action: "unmigrate",
      dryRun: true,
    });
    refused("db unmigrate --allow-stall", /^db unmigrate does not take --allow-stall/);
    refused("db migrate n1", /unexpected argument|takes no/);
  });

  it("answers --help with the verb's own help", () => {
    expect(parse("")).toEqual({ kind: "help" });
    expect(parse("--help")).toEqual({ kind: "help" });
    expect(parse("reconcile --help")).toEqual({ kind: "help", verb: "reconcile" });
    expect(parse("-h db create-node-table")).toEqual({ kind: "help", verb: "db create-node-table" });
  });

  it("takes the fleet and function from env, flags win", () => {
    const env = { KWC_FLEET_CONFIG: "file:/a.json", KWC_CLEANUP_FUNCTION: "fn-env" };
    expect(parse("reconcile --remote", env)).toMatchObject({
      global: { remote: true, functionName: "fn-env", fleet: "file:/a.json" },
    });
    expect(parse("reconcile --remote --function fn2 --fleet file:/b.json", env)).toMatchObject({
      global: { functionName: "fn2", fleet: "file:/b.json" },
    });
    refused("reconcile --remote", /--remote needs --function/);
  });
});

describe("kwc clean", () => {
  it("builds the shared request for each scope", () => {
    expect(parse("clean --presentity sip:bob@x --event dialog --json")).toMatchObject({
      kind: "cleanup",
      verb: "clean",
      request: { scope: "presentity", presentity: "sip:bob@x", event: "dialog" },
      global: { json: true },
    });
    expect(parse("clean --watcher sip:alice@example.com --limit 5 --include-live")).toMatchObject({
      request: { scope: "watcher", watcher: "sip:alice@example.com", limit: 5, includeLive: true },
    });
    expect(parse("clean --node n2")).toMatchObject({ request: { scope: "node", node: "n2" } });
    expect(parse("clean --expired --node n2")).toMatchObject({ request: { scope: "expired", node: "n2" } });
    expect(parse("clean --dialog a%'b@h --to-tag t! --from-tag f_ --dry-run")).toMatchObject({
      request: { scope: "dialog", dialog: { callId: "a%'b@h", toTag: "t!", fromTag: "f_" }, dryRun: true },
    });
  });

  it.each([
    // was accepted, --event dropped, and every stale row of the node cleaned
    ["clean --node n1 --event dialog", /--event needs --presentity/],
    ["clean --watcher sip:a@x --event presence", /--event needs --presentity/],
    ["clean --node n1 --to-tag t", /--to-tag needs --dialog/],
    ["clean --presentity sip:a@x --from-tag f", /--from-tag needs --dialog/],
    ["clean", /give a scope/],
    ["clean --presentity a --expired", /one of/],
    ["clean --dialog abc", /--to-tag and --from-tag/],
    ["clean --watcher bob", /watcher AOR/],
    ["clean --node bad/id", /node/],
    ["clean --node n1 extra", /unexpected argument "extra"/],
  ])("refuses `%s`", (line, message) => refused(line, message));
});

describe("kwc reconcile", () => {
  it("builds a reconcile request", () => {
    expect(parse("reconcile --node n1 --dry-run --limit 7")).toMatchObject({
      kind: "cleanup",
      verb: "reconcile",
      request: { scope: "reconcile", node: "n1", dryRun: true, limit: 7, includeLive: false },
    });
  });

  it.each([
    // was accepted and the whole fleet reconciled
    ["reconcile --presentity sip:a@x", /^reconcile does not take --presentity/],
    ["reconcile --watcher sip:a@x", /^reconcile does not take --watcher/],
    // --include-live on a whole-fleet sweep would delete live rows: a clean-only flag
    ["reconcile --include-live", /^reconcile does not take --include-live/],
    ["reconcile --limit ten", /--limit/],
    ["reconcile --limit 0", /limit/],
    ["reconcile --node bad/id", /node/],
  ])("refuses `%s`", (line, message) => refused(line, message));
});

describe("kwc watchers list", () => {
  it("lists every row in scope, as a dry run", () => {
    expect(parse("watchers list --node n1")).toMatchObject({
      verb: "watchers-list",
      request: { scope: "reconcile", node: "n1", dryRun: true, list: "all" },
    });
    expect(parse("watchers list --presentity sip:b@x --event dialog")).toMatchObject({
      request: { scope: "presentity", presentity: "sip:b@x", event: "dialog", dryRun: true, list: "all" },
    });
    expect(parse("watchers list --watcher sip:a@x")).toMatchObject({
      request: { scope: "watcher", watcher: "sip:a@x", list: "all" },
    });
  });

  it.each([
    ["watchers list --dialog c", /^watchers list does not take --dialog/],
    ["watchers list --dry-run", /^watchers list does not take --dry-run/],
    ["watchers list --event dialog", /--event needs --presentity/],
    ["watchers list --presentity sip:a@x --watcher sip:b@x", /one of --presentity, --watcher/],
  ])("refuses `%s`", (line, message) => refused(line, message));
});

describe("kwc nodes check and db create-node-table", () => {
  it("build their commands", () => {
    expect(parse("nodes check")).toEqual({
      kind: "nodes-check",
      global: { json: false, progress: true, remote: false },
    });
    expect(parse("nodes check --node n1 --json")).toMatchObject({ kind: "nodes-check", node: "n1" });
    expect(parse("db create-node-table n3 --dry-run")).toMatchObject({
      kind: "create-node-table",
      node: "n3",
      dryRun: true,
    });
  });

  it.each([
    ["nodes check --limit 5", /^nodes check does not take --limit/],
    ["nodes check --remote --function f", /^nodes check does not take --remote/],
    ["nodes frob", /unknown command "nodes frob"/],
    ["db create-node-table", /takes exactly 1 argument \(<node>\), received 0/],
    ["db create-node-table a b", /received 2/],
    ["db create-node-table a --node a", /does not take --node/],
  ])("refuse `%s`", (line, message) => refused(line, message));
});

describe("kwc --help, generated from the verb tables", () => {
  it("documents every verb, every option and the exit codes", () => {
    for (const verb of COMMANDS) for (const [usage] of verb.usage) expect(HELP).toContain(`kwc ${usage}`);
    for (const name of Object.keys(OPTIONS)) expect(HELP).toContain(`--${name}`);
    expect(HELP).toMatch(/kwc reconcile \[--node N\]/);
    expect(HELP).toMatch(/--include-live +also delete rows whose peer is connected .*\[clean\]/);
    expect(HELP).toMatch(/0 {2}done/);
    expect(HELP).toMatch(/1 {2}error/);
    expect(HELP).toMatch(/2 {2}bad usage/);
    expect(HELP).toMatch(/3 {2}--dry-run found stale rows/);
  });

  it("lists, per verb, exactly the options it takes", () => {
    const text = helpFor("reconcile");
    expect(text).toContain("kwc reconcile [--node N]");
    for (const name of Object.keys(OPTIONS)) {
      const listed = new RegExp(`^ +(-h, )?--${name}\\b`, "m").test(text);
      expect(listed, name).toBe(
        name === "help" ||
          COMMANDS.find((v) => v.words[0] === "reconcile")?.options.includes(name as OptionName),
      );
    }
  });
});

describe("kwc output", () => {
  const nodeReport = (over: Partial<NodeReport>): NodeReport => ({
    node: "n1",
    outcome: "done",
    warnings: [],
    counts: emptyCounts(),
    rows: [],
    truncated: false,
    deleted: 0,
    refreshes: [],
    pages: 1,
    connections: 0,
    durationMs: 1,
    ...over,
  });

  it("maps reports to exit codes", () => {
    const dry = CleanupRequestSchema.parse({ scope: "reconcile", dryRun: true });
    const wet = CleanupRequestSchema.parse({ scope: "reconcile" });
    const stale = { ...emptyCounts(), "conn-closed": 2 };
    expect(exitCodeOf(summarize(dry, new Date(), [nodeReport({ counts: stale })]))).toBe(EXIT.staleFound);
    expect(exitCodeOf(summarize(dry, new Date(), [nodeReport({ counts: stale })]), true)).toBe(EXIT.ok);
    expect(exitCodeOf(summarize(dry, new Date(), [nodeReport({})]))).toBe(EXIT.ok);
    expect(exitCodeOf(summarize(wet, new Date(), [nodeReport({ counts: stale, deleted: 2 })]))).toBe(EXIT.ok);
    expect(exitCodeOf(summarize(wet, new Date(), [nodeReport({ outcome: "refused", message: "no" })]))).toBe(
      EXIT.error,
    );
  });

  it("renders rows, node summary and messages as a table", () => {
    const report = summarize(CleanupRequestSchema.parse({ scope: "reconcile", dryRun: true }), new Date(), [
      nodeReport({
        bootId: "1800000000-ab12",
        counts: { ...emptyCounts(), live: 1, "conn-closed": 1 },
        rows: [
          {
            id: 7,
            node: "n1",
            key: { callId: "c7", toTag: "t", fromTag: "f" },
            presentity: "sip:bob@x",
            event: "presence",
            contact: "sip:u@1.2.3.4:5;transport=ws",
            peer: "1.2.3.4:5",
            reason: "conn-closed",
          },
        ],
        warnings: ["careful"],
      }),
    ]);
    const text = renderReport(report);
    expect(text).toMatch(/n1 +7 +conn-closed +presence +sip:bob@x +1\.2\.3\.4:5 +c7/);
    expect(text).toMatch(/n1 +done +1800000000-ab12 +1 +1 +0 +0 +0 +0\/0/);
    expect(text).toContain("warning: careful");
    expect(text).toContain("dry run: 1 stale rows would be deleted");
    expect(table(["a", "bb"], [["xyz", "1"]])).toBe("a    bb\n---  --\nxyz  1");
  });
});

describe("progress bar", () => {
  it("draws a bar when the total is known and a count otherwise, and clears the line at the end", async () => {
    const { progressBar } = await import("../../../cli/output.ts");
    const written: string[] = [];
    const stream = { write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
    const bar = progressBar(stream);
    bar.update({ node: "n1", phase: "rows", done: 500 });
    bar.update({ node: "n1", phase: "delete", done: 10, total: 10 });
    bar.end();
    expect(written[0]).toContain("n1 rows 500");
    expect(written[1]).toContain(`n1 delete [${"#".repeat(24)}] 10/10`);
    expect(written.at(-1)).toBe("\r\x1b[2K");
  });
});
