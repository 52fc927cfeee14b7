/**
 * Kamailio for local mode: the shipped example cfg (kamailio/kamailio.cfg) on a loopback address,
 * with free ports, its own run directory and per-node watchers table, pointed at the local ingest.
 * Secrets reach it through its environment (KWC_INGEST_KEY, KWC_RPC_TOKEN), never the cfg text.
 *
 * The process is started in its own process group (`-DD`: the creator stays in the foreground
 * and is the main process), so stop() can take down every child and nothing is left behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { TRACE_ENABLED } from "./trace.ts";

export const KAMAILIO_BIN = process.env.KWC_KAMAILIO_BIN ?? "/usr/sbin/kamailio";
/** The shipped example cfg; KWC_KAMAILIO_CFG runs another (e.g. an older release's, to compare). */
export const EXAMPLE_CFG =
  process.env.KWC_KAMAILIO_CFG ?? resolve(import.meta.dirname, "../kamailio/kamailio.cfg");

export interface LocalKamailioOptions {
  nodeId: string;
  engine: "postgres" | "mysql";
  /** Kamailio db_url, e.g. postgres://kamailio:kamailiorw@127.0.0.1:55432/kamailio */
  dbUrl: string;
  watchersTable: string;
  ingestUrl: string;
  ingestKey: string;
  rpcToken: string;
  /** Directory for the run dir and the log file. */
  stateDir: string;
  listenIp?: string;
  notifierProcesses?: number;
  contactStyle?: "nated" | "alias";
  /** Short timers (keepalive 2 s, fr_timer 1.5 s): for tests and the demo. */
  testTimers?: boolean;
}

export interface LocalKamailio {
  nodeId: string;
  pid: number;
  listenIp: string;
  sipPort: number;
  wsUrl: string;
  rpcUrl: string;
  statusUrl: string;
  socketInfo: string;
  watchersTable: string;
  logFile: string;
  bootId: string;
  stop(): Promise<void>;
}

/** A port that is free on `host` right now (bind 0, read, close). */
export async function freePort(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function fetchStatus(statusUrl: string, token: string): Promise<{ boot?: string } | undefined> {
  try {
    const res = await fetch(statusUrl, {
      headers: { authorization: `Bearer ${token}`, connection: "close" },
      signal: AbortSignal.timeout(1000),
    });
    return res.ok ? ((await res.json()) as { boot?: string }) : undefined;
  } catch {
    return undefined;
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once("exit", () => r()));
}

export async function startLocalKamailio(options: LocalKamailioOptions): Promise<LocalKamailio> {
  const listenIp = options.listenIp ?? "127.0.0.1";
  const sipPort = await freePort(listenIp);
  let rpcPort = await freePort(listenIp);
  while (rpcPort === sipPort) rpcPort = await freePort(listenIp);
  const nodeDir = join(options.stateDir, `kamailio-${options.nodeId}`);
  const runDir = join(nodeDir, "run");
  mkdirSync(runDir, { recursive: true });
  const logFile = join(nodeDir, "kamailio.log");
  const log = createWriteStream(logFile, { flags: "a" });
  await new Promise((r) => log.once("open", r));

  const defines: string[] = [
    `KWC_NODE_ID="${options.nodeId}"`,
    `KWC_LISTEN_IP=${listenIp}`,
    `KWC_SIP_PORT=${sipPort}`,
    `KWC_RPC_PORT=${rpcPort}`,
    `KWC_RUN_DIR="${runDir}"`,
    `KWC_DB_URL="${options.dbUrl}"`,
    `KWC_WATCHERS_TABLE="${options.watchersTable}"`,
    `KWC_NOTIFIER_PROCESSES=${options.notifierProcesses ?? 0}`,
    `KWC_INGEST_URL="${options.ingestUrl}"`,
  ];
  if (options.engine === "mysql") defines.push("KWC_WITH_MYSQL");
  if (options.contactStyle === "alias") defines.push("KWC_CONTACT_ALIAS");
  if (options.testTimers ?? true) defines.push("KWC_TEST_TIMERS");
  // The cfg's trace lines (enqueue, POST) when the pipeline trace is on (local/trace.ts).
  if (TRACE_ENABLED) defines.push("KWC_TRACE");
  const args = ["-f", EXAMPLE_CFG, "-DD", "-E", "-m", "64", "-M", "8", "-Y", runDir];
  for (const d of defines) args.push("-A", d);

  // setpriv --pdeathsig: if this process dies without stopping it (SIGKILL), Kamailio gets SIGTERM.
  const useSetpriv = existsSync("/usr/bin/setpriv");
  const [command, argv] = useSetpriv
    ? ["/usr/bin/setpriv", ["--pdeathsig", "TERM", "--", KAMAILIO_BIN, ...args]]
    : [KAMAILIO_BIN, args];
  const child = spawn(command, argv, {
    cwd: runDir,
    detached: true,
    stdio: ["ignore", log, log],
    env: {
      PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      KWC_INGEST_KEY: options.ingestKey,
      KWC_RPC_TOKEN: options.rpcToken,
    },
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${KAMAILIO_BIN}`);

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-pid, "SIGTERM");
      } catch {
        /* already gone */
      }
      const done = await Promise.race([exited(child).then(() => true), sleep(5000).then(() => false)]);
      if (!done) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          /* already gone */
        }
        await exited(child);
      }
    }
    // Children may outlive the main process by a moment: make sure the whole group is gone.
    for (let i = 0; i < 50; i++) {
      try {
        process.kill(-pid, 0);
      } catch {
        break;
      }
      if (i === 25) process.kill(-pid, "SIGKILL");
      await sleep(100);
    }
    log.end();
  };

  const rpcBase = `http://${listenIp}:${rpcPort}`;
  const statusUrl = `${rpcBase}/kwc/status`;
  const deadline = Date.now() + 20_000;
  let bootId = "";
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`kamailio ${options.nodeId} exited at start; see ${logFile}`);
    const status = await fetchStatus(statusUrl, options.rpcToken);
    if (status?.boot) {
      bootId = status.boot;
      break;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`kamailio ${options.nodeId} did not answer on ${statusUrl}; see ${logFile}`);
    }
    await sleep(100);
  }

  return {
    nodeId: options.nodeId,
    pid,
    listenIp,
    sipPort,
    wsUrl: `ws://${listenIp}:${sipPort}`,
    rpcUrl: `${rpcBase}/RPC`,
    statusUrl,
    socketInfo: `tcp:${listenIp}:${sipPort}`,
    watchersTable: options.watchersTable,
    logFile,
    bootId,
    stop,
  };
}
