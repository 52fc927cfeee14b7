// "Use it with your Kamailio", run as an operator would, from the docs alone: the Debian package's
// stock /etc/kamailio/kamailio.cfg (WITH_PRESENCE, WITH_MYSQL, WITH_JSONRPC, WITH_NAT) wired with
// kamailio/README.md's own fenced blocks (test/helpers/wiring.ts), `npm start -- --existing-kamailio`
// in its own process against MariaDB reached by URL (user kamailio, no superuser), Kamailio started
// with exactly the defines npm start printed. Then the core scenario, once per contact style: a
// WebSocket watcher dies, its row is gone, every survivor is notified. In 5.6.3's sync mode Kamailio
// never deletes that row nor re-NOTIFYs anyone by itself (the reconciler is off here), so both
// effects are the service's, through the events the wired cfg posted.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createTestDb, MY_PORT, PG_PORT, type TestDb } from "../helpers/db.ts";
import { startKamailio } from "../helpers/kamailio.ts";
import { freePort, loopbackAddress } from "../helpers/ports.ts";
import { SipWsClient } from "../helpers/sip-ws-client.ts";
import { randomId, waitUntil } from "../helpers/wait.ts";
import { type ContactStyle, writeWiredCfg } from "../helpers/wiring.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const cleanups: (() => Promise<void> | void)[] = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A child process whose stderr (npm start's [kwc] lines) is collected; stopped by its own pid group. */
function startProcess(file: string, args: string[], env: NodeJS.ProcessEnv, cwd: string) {
  const child = spawn(file, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const out = { text: "" };
  child.stdout?.on("data", (d: Buffer) => {
    out.text += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out.text += d.toString();
  });
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
    const exited = new Promise((r) => child.once("exit", r));
    process.kill(-child.pid, signal);
    const timer = setTimeout(() => child.pid && process.kill(-child.pid, "SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  };
  cleanups.push(() => stop("SIGKILL"));
  return { child, out, stop };
}

/** `-A 'KWC_INGEST_URL="…"' -A KWC_HTTP_IP=… …` as printed → argv entries. */
function printedDefines(text: string): string[] {
  const line = text.split("\n").find((l) => l.includes("-A 'KWC_INGEST_URL="));
  if (!line) throw new Error(`npm start printed no KWC_INGEST_URL define:\n${text}`);
  return [...line.matchAll(/-A ('([^']*)'|(\S+))/g)].flatMap((m) => ["-A", m[2] ?? m[3] ?? ""]);
}

async function operatorRun(style: ContactStyle, expect: import("vitest").ExpectStatic, db: TestDb) {
  const dir = mkdtempSync(join(tmpdir(), `kwc-wire-${style}-`));
  const stateDir = mkdtempSync(join(tmpdir(), `kwc-wire-state-${style}-`));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
  const ip = loopbackAddress();
  const [wsPort, httpPort, ingestPort] = [await freePort(ip), await freePort(ip), await freePort()];
  const token = `tok-${randomId(24)}`;
  const databaseUrl = `mysql://kamailio:kamailiorw@127.0.0.1:${MY_PORT}/${db.name}`;
  const socketInfo = `tcp:${ip}:${wsPort}`;

  // 1. The pipeline first: it prints what Kamailio needs and waits for the node.
  const { KWC_INGEST_KEY: _none, ...env } = process.env;
  const npmStart = startProcess(
    process.execPath,
    [
      "--import",
      "tsx",
      "local/main.ts",
      "--existing-kamailio",
      `http://${ip}:${httpPort}/kwc/status`,
      "--socket-info",
      socketInfo,
      "--database-url",
      databaseUrl,
      "--ingest-port",
      String(ingestPort),
      "--reconcile-every",
      "0",
    ],
    { ...env, KWC_STATE_DIR: stateDir, KWC_RPC_TOKEN: token },
    ROOT,
  );
  await waitUntil(
    () => npmStart.out.text.includes("waiting for the node") || npmStart.child.exitCode !== null,
    {
      timeoutMs: 60_000,
      what: "npm start to wait for the node",
    },
  );
  const keyFile = /KWC_INGEST_KEY = the content of (\S+) \(mode 0600\)/.exec(npmStart.out.text)?.[1];
  expect(keyFile, npmStart.out.text).toBe(join(stateDir, "local", "ingest-key"));
  expect(statSync(keyFile ?? "").mode & 0o777).toBe(0o600);
  const key = readFileSync(keyFile ?? "", "utf8").trim();
  const defines = printedDefines(npmStart.out.text);

  // 2. Kamailio: the wired stock cfg, the printed defines plus the operator's own.
  const cfg = writeWiredCfg(dir, style);
  const kamailio = startProcess(
    "/usr/sbin/kamailio",
    [
      "-f",
      cfg,
      "-DD",
      "-E",
      "-n",
      "2",
      "-m",
      "64",
      "-M",
      "8",
      "-Y",
      dir,
      "-A",
      "WITH_PRESENCE",
      "-A",
      "WITH_MYSQL",
      "-A",
      "WITH_JSONRPC",
      "-A",
      "WITH_NAT",
      "-A",
      `DBURL="${db.kamailioUrl}"`,
      "-A",
      `MY_IP=${ip}`,
      "-A",
      `MY_WS_PORT=${wsPort}`,
      "-A",
      'MY_DOMAIN="example.com"',
      ...defines,
      "-A",
      `KWC_NODE_ID="wire-${style}"`,
      "-A",
      'KWC_WATCHERS_TABLE="active_watchers"',
      "-A",
      "KWC_SUBS_DB_MODE=3",
      "-A",
      "KWC_NOTIFIER_PROCESSES=0",
      "-A",
      "KWC_SEND_FAST_NOTIFY=1",
      "-A",
      `KWC_CONTACT_STYLE="${style}"`,
    ],
    { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin", KWC_INGEST_KEY: key, KWC_RPC_TOKEN: token },
    dir,
  );
  await waitUntil(() => npmStart.out.text.includes("ready:") || npmStart.child.exitCode !== null, {
    timeoutMs: 60_000,
    what: "npm start to be ready",
  }).catch((e: Error) => {
    throw new Error(
      `${e.message}\n--- npm start ---\n${npmStart.out.text}\n--- kamailio ---\n${kamailio.out.text.slice(-4000)}`,
    );
  });
  expect(npmStart.child.exitCode, npmStart.out.text).toBeNull();
  expect(npmStart.out.text).toContain(`contact style ${style}`);
  // never a secret on the terminal
  expect(npmStart.out.text).not.toContain(key);
  expect(npmStart.out.text).not.toContain(token);
  expect((await fetch(`http://127.0.0.1:${ingestPort}/healthz`)).status).toBe(200);
  // the operator's own JSON-RPC (stock WITH_JSONRPC, on its SIP socket) is untouched: no token needed
  const own = await fetch(`http://${ip}:${wsPort}/RPC`, {
    method: "POST",
    body: JSON.stringify({ jsonrpc: "2.0", method: "core.version", id: 1 }),
  });
  expect(own.status).toBe(200);

  try {
    // 3. The core scenario.
    const presentity = `sip:alice-${style}@example.com`;
    const connect = async (user: string) => {
      const c = await SipWsClient.connect(`ws://${ip}:${wsPort}`, { user });
      cleanups.push(() => c.close());
      return c;
    };
    const publisher = await connect(`alice-${style}`);
    expect(await publisher.publish(presentity)).toBe(200);
    const watchers = await Promise.all(["w1", "w2", "w3"].map((u) => connect(`${u}-${style}`)));
    const subs = [];
    for (const w of watchers) {
      const sub = await w.subscribe(presentity);
      expect(sub.status).toBe(200);
      await w.waitForNotify((n) => n.callId === sub.callId);
      subs.push(sub);
    }
    const rows = async (callId: string) =>
      Number(
        (
          await db.query<{ n: number }>("SELECT count(*) AS n FROM active_watchers WHERE callid = ?", [
            callId,
          ])
        )[0]?.n,
      );
    const contacts = await db.query<{ contact: string }>("SELECT contact FROM active_watchers");
    for (const { contact } of contacts)
      expect(contact).toMatch(style === "alias" ? /;alias=[\d.]+~\d+~5/ : /@127\.0\.0\.1:\d+;transport=ws/);
    const [dying, ...survivors] = watchers;
    const [dyingSub, ...survivorSubs] = subs;
    if (!dying || !dyingSub) throw new Error("no watcher");
    const diedAt = Date.now();
    await dying.die("rst");
    await waitUntil(async () => (await rows(dyingSub.callId)) === 0, {
      timeoutMs: 20_000,
      what: `the dead watcher's row to be deleted (${style})`,
    });
    for (const [i, w] of survivors.entries()) {
      await w.waitForNotify((n) => n.callId === survivorSubs[i]?.callId && n.receivedAt >= diedAt, 20_000);
      expect(await rows(survivorSubs[i]?.callId ?? "")).toBe(1);
    }
    // npm start's status line counts the events it took in and the rows it deleted
    await waitUntil(() => /events in [1-9]\d* \| rows deleted [1-9]/.test(npmStart.out.text), {
      timeoutMs: 5000,
      what: "the status line to count the deletion",
    });
    expect(npmStart.out.text).not.toMatch(/warning: node/);
  } catch (error) {
    const e = error as Error;
    e.message += `\n--- npm start ---\n${npmStart.out.text.slice(-3000)}\n--- kamailio (tail) ---\n${kamailio.out.text.slice(-6000)}`;
    throw e;
  }

  const exited = new Promise<number | null>((r) => npmStart.child.once("exit", (code) => r(code)));
  npmStart.child.kill("SIGINT");
  expect(await exited).toBe(0);
  await kamailio.stop();
}

describe("npm start -- --existing-kamailio with the stock Debian cfg, wired from the README", () => {
  for (const style of ["alias", "nated"] as const) {
    it.concurrent(`${style} contacts: a WS watcher dies, the survivors are notified, the row is gone`, async ({
      expect,
    }) => {
      const db = await createTestDb("mysql", `wire${style}`);
      cleanups.push(() => db.drop());
      await operatorRun(style, expect, db);
    });
  }
});

describe("npm start -- --existing-kamailio refuses what the service cannot help", () => {
  it("notifier mode on 5.6.x PostgreSQL without send_fast_notify=0: refused with the reason and the fix", async () => {
    const db = await createTestDb("postgres", "wirerefuse");
    cleanups.push(() => db.drop());
    const node = await startKamailio({
      nodeId: "refuse-me",
      db,
      notifierProcesses: 1,
      listenIp: loopbackAddress(),
    });
    cleanups.push(() => node.stop());
    expect((await node.status()).sendFastNotify).toBe(1);
    const stateDir = mkdtempSync(join(tmpdir(), "kwc-wire-refuse-"));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const run = startProcess(
      process.execPath,
      [
        "--import",
        "tsx",
        "local/main.ts",
        "--existing-kamailio",
        node.statusUrl,
        "--socket-info",
        node.socketInfo,
        "--database-url",
        `postgres://kamailio:kamailiorw@127.0.0.1:${PG_PORT}/${db.name}`,
        "--ingest-port",
        String(await freePort()),
      ],
      { ...process.env, KWC_STATE_DIR: stateDir, KWC_RPC_TOKEN: node.rpcToken },
      ROOT,
    );
    const code = await new Promise<number | null>((r) => run.child.once("exit", (c) => r(c)));
    expect(code, run.out.text).toBe(3);
    expect(run.out.text).toMatch(
      /refused: node refuse-me: notifier_processes=1 on PostgreSQL with Kamailio 5\.6\.3/,
    );
    expect(run.out.text).toContain("-A KWC_SEND_FAST_NOTIFY=0");
    expect(run.out.text).not.toContain("ready:");
  });
});
