// `kwc` end to end: the real launcher (cli/bin.mjs) as a child process against real Kamailio 5.6.3,
// MariaDB through the local Data API server; --json output parsed, exit codes checked.
// --remote goes through the real @aws-sdk/client-lambda to local/invoke.ts (the local mode's
// Invoke-compatible endpoint) running the cleanup handler.
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCleanupHandler } from "#handlers/functions.ts";
import { type InvokeServer, startInvokeServer } from "../../../local/invoke.ts";
import { type Bed, callIdsIn, killAndWaitGone, startBed, watcher } from "../reconcile/setup.ts";

const BIN = fileURLToPath(new URL("../../../cli/bin.mjs", import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function kwc(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env, cwd: "/tmp", timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const json = (r: Run) => {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
};

describe("kwc CLI (MariaDB)", () => {
  let bed: Bed;
  let invoke: InvokeServer;
  let env: NodeJS.ProcessEnv;
  const presentity = "sip:cli@example.com";

  beforeAll(async () => {
    bed = await startBed("mysql", "cli", [{ id: "cli-a", listenIp: "127.0.0.41", table: "aw_cli_a" }]);
    invoke = await startInvokeServer({ functions: { "kwc-cleanup": createCleanupHandler(bed.runtime) } });
    env = bed.cliEnv();
  });
  afterAll(async () => {
    await invoke?.close();
    await bed?.close();
  });

  it("--help documents the commands and exit codes; bad usage exits 2", async () => {
    const help = await kwc(["--help"], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/kwc reconcile \[--node N\]/);
    expect(help.stdout).toMatch(/Exit codes:\n {2}0 {2}done/);
    expect(help.stdout).toMatch(/3 {2}--dry-run found stale rows/);
    const bad = await kwc(["clean", "--watcher", "nobody"], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/watcher AOR/);
    // A flag the verb does not use is refused, not dropped: these used to clean the whole node
    // (--event ignored) and reconcile the whole fleet (--presentity ignored).
    const nodeAndEvent = await kwc(["clean", "--node", "cli-a", "--event", "dialog", "--json"], env);
    expect(nodeAndEvent.code).toBe(2);
    expect(nodeAndEvent.stderr).toMatch(/--event needs --presentity/);
    const reconcileOne = await kwc(["reconcile", "--presentity", presentity], env);
    expect(reconcileOne.code).toBe(2);
    expect(reconcileOne.stderr).toMatch(/reconcile does not take --presentity/);
    const unknownNode = await kwc(["reconcile", "--node", "nope"], env);
    expect(unknownNode.code).toBe(2);
    expect(unknownNode.stderr).toMatch(/unknown node "nope"/);
  });

  it("nodes check reports version, mode, boot id and connections per node", async () => {
    const r = await kwc(["nodes", "check", "--json"], env);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const [node] = json(r).nodes;
    expect(node).toMatchObject({
      node: "cli-a",
      ok: true,
      reachable: true,
      kamailioVersion: "5.6.3",
      subsDbMode: 3,
      notifierProcesses: 0,
      bootId: bed.nodes[0]?.bootId,
      watchersTable: "aw_cli_a",
      problems: [],
    });
  });

  it("watchers list, reconcile --dry-run (exit 3), reconcile (exit 0), with --json", async () => {
    const [a] = bed.nodes;
    if (!a) throw new Error("no node");
    const live = await watcher(bed, a, "cli-live", presentity);
    const dead = await watcher(bed, a, "cli-dead", presentity);
    await killAndWaitGone(a, dead.c, "rst");

    const list = await kwc(["watchers", "list", "--json"], env);
    expect(list.code).toBe(0);
    const states = Object.fromEntries(
      json(list).nodes[0].rows.map((r: { key: { callId: string }; reason: string }) => [
        r.key.callId,
        r.reason,
      ]),
    );
    expect(states).toMatchObject({ [live.sub.callId]: "live", [dead.sub.callId]: "conn-closed" });

    const dry = await kwc(["reconcile", "--dry-run", "--json"], env);
    expect(dry.code, `${dry.stdout}\n${dry.stderr}`).toBe(3);
    expect(json(dry).nodes[0].rows.map((r: { key: { callId: string } }) => r.key.callId)).toEqual([
      dead.sub.callId,
    ]);
    expect(await callIdsIn(bed, "aw_cli_a")).toContain(dead.sub.callId);

    const table = await kwc(["reconcile", "--dry-run"], env);
    expect(table.code).toBe(3);
    expect(table.stdout).toMatch(/node +id +reason/);
    expect(table.stdout).toMatch(/dry run: 1 stale rows would be deleted/);

    const wet = await kwc(["reconcile", "--json"], env);
    expect(wet.code, `${wet.stdout}\n${wet.stderr}`).toBe(0);
    expect(json(wet).totals).toMatchObject({ deleted: 1, refreshes: 1, refreshFailures: 0 });
    // the deletion's audit record, on stderr (stdout is the report)
    const audits = wet.stderr
      .split("\n")
      .filter((l) => l.includes('"watcher.deleted"'))
      .map((l) => JSON.parse(l).audit);
    expect(audits.map((x) => [x.dialog.callId, x.reason, x.deletedBy, x.watcher])).toEqual([
      [dead.sub.callId, "conn-closed", "kwc", dead.c.aor],
    ]);
    expect(dry.stderr).not.toContain("watcher.deleted"); // control: a dry run deletes nothing
    const after = await callIdsIn(bed, "aw_cli_a");
    expect(after).toContain(live.sub.callId);
    expect(after).not.toContain(dead.sub.callId);
  });

  it("clean --dialog --include-live removes one live subscription; clean --presentity keeps live rows", async () => {
    const [a] = bed.nodes;
    if (!a) throw new Error("no node");
    const keep = await watcher(bed, a, "cli-keep", presentity);
    const target = await watcher(bed, a, "cli-target", presentity);
    const kept = await kwc(["clean", "--presentity", presentity, "--json"], env);
    expect(kept.code, `${kept.stdout}\n${kept.stderr}`).toBe(0);
    expect(json(kept).totals.deleted).toBe(0);

    const r = await kwc(
      [
        "clean",
        "--dialog",
        target.sub.callId,
        "--to-tag",
        target.sub.toTag,
        "--from-tag",
        target.sub.fromTag,
        "--include-live",
        "--json",
      ],
      env,
    );
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const report = json(r);
    expect(report.nodes[0].rows).toEqual([
      expect.objectContaining({
        reason: "requested",
        key: expect.objectContaining({ callId: target.sub.callId }),
      }),
    ]);
    const after = await callIdsIn(bed, "aw_cli_a");
    expect(after).not.toContain(target.sub.callId);
    expect(after).toContain(keep.sub.callId);
  });

  it("--remote invokes the cleanup function through the Lambda API", async () => {
    const [a] = bed.nodes;
    if (!a) throw new Error("no node");
    const dead = await watcher(bed, a, "cli-remote-dead", presentity);
    await killAndWaitGone(a, dead.c, "rst");
    const before = invoke.invocations["kwc-cleanup"] ?? 0;
    const remoteEnv = bed.cliEnv({
      AWS_ENDPOINT_URL_LAMBDA: invoke.endpoint,
      KWC_CLEANUP_FUNCTION: "kwc-cleanup",
    });
    const dry = await kwc(["clean", "--node", "cli-a", "--dry-run", "--remote", "--json"], remoteEnv);
    expect(dry.code, `${dry.stdout}\n${dry.stderr}`).toBe(3);
    expect(json(dry).nodes[0].rows.map((r: { key: { callId: string } }) => r.key.callId)).toEqual([
      dead.sub.callId,
    ]);
    const wet = await kwc(["clean", "--node", "cli-a", "--remote", "--json"], remoteEnv);
    expect(wet.code, `${wet.stdout}\n${wet.stderr}`).toBe(0);
    expect(json(wet).totals.deleted).toBe(1);
    expect(invoke.invocations["kwc-cleanup"]).toBe(before + 2);
    expect(await callIdsIn(bed, "aw_cli_a")).not.toContain(dead.sub.callId);
    // an invalid request gets a readable error from the function itself
    const handler = createCleanupHandler(bed.runtime);
    expect(await handler({ scope: "presentity" })).toEqual({
      ok: false,
      error: { type: "BadRequest", message: expect.stringMatching(/^invalid request: presentity: /) },
    });
  });

  it("db create-node-table creates the table and its version row (idempotent); an unreachable node fails the check", async () => {
    const fleet = {
      ...bed.fleet,
      nodes: [
        ...bed.fleet.nodes,
        {
          ...bed.fleet.nodes[0],
          id: "cli-new",
          watchersTable: "aw_cli_new",
          socketInfo: ["tcp:127.0.0.42:5060"],
          rpcUrl: "http://127.0.0.42:9/RPC",
          statusUrl: "http://127.0.0.42:9/kwc/status",
          tokenSecret: "env:KWC_TEST_TOKEN_NEW",
        },
      ],
    };
    const file = `/tmp/kwc-fleet-${bed.db.name}-new.json`;
    writeFileSync(file, JSON.stringify(fleet));
    const newEnv = bed.cliEnv({ KWC_FLEET_CONFIG: `file:${file}`, KWC_TEST_TOKEN_NEW: "x" });

    const dry = await kwc(["db", "create-node-table", "cli-new", "--dry-run"], newEnv);
    expect(dry.code, `${dry.stdout}\n${dry.stderr}`).toBe(0);
    expect(dry.stdout).toMatch(/CREATE TABLE IF NOT EXISTS `aw_cli_new` LIKE active_watchers/);
    expect(await bed.db.query("SHOW TABLES LIKE 'aw_cli_new'")).toHaveLength(0);

    for (let i = 0; i < 2; i++) {
      const r = await kwc(["db", "create-node-table", "cli-new", "--json"], newEnv);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(json(r)).toMatchObject({ node: "cli-new", table: "aw_cli_new", dryRun: false });
    }
    expect(await bed.db.query("SHOW TABLES LIKE 'aw_cli_new'")).toHaveLength(1);
    expect(await bed.db.query("SELECT table_version FROM version WHERE table_name = 'aw_cli_new'")).toEqual([
      { table_version: 12 },
    ]);

    const check = await kwc(["nodes", "check", "--node", "cli-new", "--json"], newEnv);
    expect(check.code).toBe(1);
    expect(json(check).nodes[0]).toMatchObject({ node: "cli-new", ok: false, reachable: false });
    expect(json(check).nodes[0].problems[0]).toMatch(/unreachable/);
  });
});
