import { describe, expect, it } from "vitest";
import { EXIT, HELP, parseCommandLine, UsageError } from "../../../cli/args.ts";
import { exitCodeOf, renderReport, table } from "../../../cli/output.ts";
import {
  CleanupRequestSchema,
  emptyCounts,
  type NodeReport,
  summarize,
} from "../../../lambdas/core/cleanup-request.ts";

const parse = (line: string, env = {}) => parseCommandLine(line.split(" ").filter(Boolean), env);

describe("kwc argument parsing", () => {
  it("builds the shared request for each cleanup command", () => {
    expect(parse("reconcile --node n1 --dry-run")).toMatchObject({
      kind: "cleanup",
      verb: "reconcile",
      request: { scope: "reconcile", node: "n1", dryRun: true, limit: 100_000, includeLive: false },
    });
    expect(parse("clean --presentity sip:bob@x --event dialog --json")).toMatchObject({
      request: { scope: "presentity", presentity: "sip:bob@x", event: "dialog" },
      global: { json: true },
    });
    expect(parse("clean --watcher sip:alice@example.com --limit 5 --include-live")).toMatchObject({
      request: { scope: "watcher", watcher: "sip:alice@example.com", limit: 5, includeLive: true },
    });
    expect(parse("clean --node n2")).toMatchObject({ request: { scope: "node", node: "n2" } });
    expect(parse("clean --expired")).toMatchObject({ request: { scope: "expired" } });
    expect(parse("clean --dialog a%'b@h --to-tag t! --from-tag f_")).toMatchObject({
      request: { scope: "dialog", dialog: { callId: "a%'b@h", toTag: "t!", fromTag: "f_" } },
    });
    expect(parse("watchers list --node n1")).toMatchObject({
      verb: "watchers-list",
      request: { scope: "reconcile", node: "n1", dryRun: true, list: "all" },
    });
    expect(parse("nodes check")).toMatchObject({ kind: "nodes-check" });
    expect(parse("db create-node-table n3 --dry-run")).toMatchObject({
      kind: "create-node-table",
      node: "n3",
      dryRun: true,
    });
    expect(parse("")).toEqual({ kind: "help" });
    expect(parse("reconcile --help")).toEqual({ kind: "help" });
  });

  it("takes the fleet and function from env, flags win", () => {
    const env = { KWC_FLEET_CONFIG: "file:/a.json", KWC_CLEANUP_FUNCTION: "fn-env" };
    expect(parse("reconcile --remote", env)).toMatchObject({
      global: { remote: true, functionName: "fn-env", fleet: "file:/a.json" },
    });
    expect(parse("reconcile --remote --function fn2", env)).toMatchObject({
      global: { functionName: "fn2" },
    });
  });

  it.each([
    ["frobnicate", /unknown command "frobnicate"/],
    ["clean", /give a scope/],
    ["clean --presentity a --expired", /one of/],
    ["clean --dialog abc", /--to-tag and --from-tag/],
    ["clean --watcher bob", /watcher AOR/],
    ["reconcile --limit ten", /--limit/],
    ["reconcile --limit 0", /limit/],
    ["reconcile --bogus", /bogus/],
    ["reconcile --remote", /--function/],
    ["nodes check --remote --function f", /locally only/],
    ["db create-node-table", /exactly one node/],
    ["reconcile --node bad/id", /node/],
  ])("rejects `%s` as bad usage", (line, message) => {
    expect(() => parse(line)).toThrow(UsageError);
    expect(() => parse(line)).toThrow(message);
  });

  it("documents every command and the exit codes in --help", () => {
    for (const text of [
      "watchers list",
      "clean --presentity",
      "--watcher",
      "--node",
      "--dialog",
      "--expired",
      "reconcile",
      "nodes check",
      "db create-node-table",
      "--dry-run",
      "--json",
      "--remote",
    ]) {
      expect(HELP).toContain(text);
    }
    expect(HELP).toMatch(/0 {2}done/);
    expect(HELP).toMatch(/1 {2}error/);
    expect(HELP).toMatch(/2 {2}bad usage/);
    expect(HELP).toMatch(/3 {2}--dry-run found stale rows/);
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
