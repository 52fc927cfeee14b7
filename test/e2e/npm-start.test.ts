// `npm start` as a user runs it (local/main.ts in its own process), with a private state
// directory and private database ports, so the project's shared instances are never stopped:
// its database instance is down at first and npm start brings it up; Ctrl-C (SIGINT) then
// leaves no process behind.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/ports.ts";
import { waitUntil } from "../helpers/wait.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const stateDir = mkdtempSync(join(tmpdir(), "kwc-npm-start-"));
// The database servers run as their system users: they must be able to reach their data dirs.
chmodSync(stateDir, 0o755);

/** Processes whose command line mentions `needle` (our private state dir is unique). */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmdline.includes(needle)) pids.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

describe("npm start", () => {
  let env: NodeJS.ProcessEnv;
  let child: ChildProcess | undefined;

  afterAll(async () => {
    if (child && child.exitCode === null && child.pid) child.kill("SIGKILL");
    if (env) execFileSync("bash", [join(ROOT, "scripts/db.sh"), "stop", "pg"], { env, stdio: "ignore" });
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("starts its stopped database instance, comes up, and leaves no process after Ctrl-C", async () => {
    env = {
      ...process.env,
      KWC_STATE_DIR: stateDir,
      KWC_PG_PORT: String(await freePort()),
      KWC_MY_PORT: String(await freePort()),
    };
    const isReady = () =>
      execFileSync("bash", [join(ROOT, "scripts/db.sh"), "status"], { env, encoding: "utf8" });
    // Control: the private instance is not running before npm start.
    expect(isReady()).toMatch(/pg: down/);

    let stderr = "";
    const started = spawn(process.execPath, ["--import", "tsx", "local/main.ts", "--reconcile-every", "0"], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = started;
    started.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    started.stdout?.resume();
    await waitUntil(() => stderr.includes("Ctrl-C stops everything") || started.exitCode !== null, {
      timeoutMs: 150_000,
      what: "npm start to come up",
    });
    expect(started.exitCode, stderr).toBeNull();
    expect(stderr).toMatch(/SIP over WebSocket at ws:\/\/127\.0\.0\.1:\d+/);
    expect(isReady()).toMatch(/pg: up/);
    // Kamailio runs from the private state dir: it is ours to watch.
    const kamailioPids = processesMentioning(join(stateDir, "local", "kamailio-"));
    expect(kamailioPids.length).toBeGreaterThan(1);

    const exited = new Promise<number | null>((r) => started.once("exit", (code) => r(code)));
    started.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(stderr).toContain("stopped; nothing left running");
    await waitUntil(() => processesMentioning(join(stateDir, "local", "kamailio-")).length === 0, {
      timeoutMs: 10_000,
      what: "every Kamailio process to be gone",
    });
    for (const pid of [started.pid, ...kamailioPids]) {
      expect(() => process.kill(pid ?? 0, 0)).toThrow();
    }
  });
});
