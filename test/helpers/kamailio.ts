// Starts Kamailio nodes with the shipped cfg (kamailio/kamailio.cfg + kwc.cfg) on free ports and
// distinct loopback addresses, each with its own run dir and log, stopped by pid.
// The launcher is pluggable (KamailioRuntime): the host's 5.6.3 binary now; a 6.0.1 chroot or a
// TLS listener later only add a runtime, tests keep calling startKamailio().
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assertTableName, type Engine, type TestDb } from "./db.ts";
import { freePort, freePortOnAll } from "./ports.ts";
import { makeSelfSignedCert } from "./tls.ts";
import { randomId, waitUntil } from "./wait.ts";

export const SHIPPED_CFG = fileURLToPath(new URL("../../kamailio/kamailio.cfg", import.meta.url));

/** How a Kamailio binary is started: host binary, a chroot of another version, ... */
export interface KamailioRuntime {
  name: string;
  /** e.g. "5.6.3" */
  version: string;
  /** The command that runs `kamailio <args>` for a cfg reachable at cfgPath, with cwd runDir. */
  command(args: string[], paths: { cfgPath: string; runDir: string }): { file: string; argv: string[] };
}

/**
 * Debian's Kamailio 5.6.3. Under `setpriv --pdeathsig TERM` (which execs it: the pid stays
 * Kamailio's) so that a test or bench killed without stopping it takes its node along.
 */
export const hostKamailio: KamailioRuntime = {
  name: "host",
  version: "5.6.3",
  command: (args) =>
    existsSync("/usr/bin/setpriv")
      ? { file: "/usr/bin/setpriv", argv: ["--pdeathsig", "TERM", "--", "/usr/sbin/kamailio", ...args] }
      : { file: "/usr/sbin/kamailio", argv: args },
};

export interface KamailioNodeOptions {
  nodeId: string;
  db: TestDb;
  /** presence active_watchers_table; default "active_watchers". Create it first (db.createNodeTable). */
  watchersTable?: string;
  contactStyle?: "nated" | "alias";
  notifierProcesses?: 0 | 1;
  /** default 127.0.0.1; several nodes use 127.0.0.2, .3 ... */
  listenIp?: string;
  /**
   * Also take SIP over WS (and WSS with `tls`) on this IPv6 address, same ports as on listenIp
   * (KWC_LISTEN_IPV6), e.g. "::1". Fails with a clear message where the address is unusable.
   */
  listenIpv6?: string;
  /** SIP over WSS on its own port (KWC_WITH_TLS), with a self-signed cert made in the run dir. */
  tls?: boolean;
  /** kwc's listener takes HTTPS (KWC_HTTP_TLS, with `tls`'s certificate): status/RPC over https. */
  httpTls?: boolean;
  /** where the cfg POSTs envelopes (a startEventReceiver() url); default: nothing listens */
  ingestUrl?: string;
  ingestKey?: string;
  /** Bearer token for /RPC and /kwc/status; default: random */
  rpcToken?: string;
  /** A second accepted token (KWC_RPC_TOKEN_NEXT), as during a rotation. */
  rpcTokenNext?: string;
  /** Regex of allowed RPC sources (KWC_RPC_ALLOW); default 127.0.0.1 and ::1 */
  rpcAllow?: string;
  /**
   * Test timers (KWC_TEST_TIMERS: fr_timer 1.5 s, short rm_delay); default true. The WS keepalive
   * stays 30 s unless `defines.KWC_WS_KEEPALIVE` says otherwise: Kamailio's keepalive can close a
   * live loopback peer that answers its Ping at once (docs/browsers.md), so only a test of the
   * keepalive itself shortens it, and keeps its live peers busy (SipWsClient.keepBusy).
   */
  testTimers?: boolean;
  /** Extra -A defines: a string value is quoted, a number is bare, true defines the name. */
  defines?: Record<string, string | number | true>;
  runtime?: KamailioRuntime;
  /** Shared memory in MB (`-m`); default 64 (about 750 WS connections at ~81 KiB each). */
  shmMb?: number;
}

export interface RpcReply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON-RPC bodies are whatever Kamailio answers
  body: any;
}

/** One SIP-over-WebSocket listener of a node. */
export interface WsListener {
  /** ws://127.0.0.2:40123, wss://[::1]:40124 ... */
  url: string;
  transport: "ws" | "wss";
  /** The listener's address as a client connects to it (no brackets). */
  ip: string;
  /** What active_watchers.socket_info holds for rows taken on it, e.g. "tls:[::1]:40124". */
  socketInfo: string;
}

export interface KamailioNode {
  nodeId: string;
  bootId: string;
  listenIp: string;
  sipPort: number;
  rpcPort: number;
  wsUrl: string;
  rpcUrl: string;
  statusUrl: string;
  rpcToken: string;
  /** e.g. "tcp:127.0.0.2:40123", as in active_watchers.socket_info */
  socketInfo: string;
  /** Every WS/WSS listener (the first is wsUrl's); several with listenIpv6 or tls. */
  listeners: WsListener[];
  /** PEM of the node's self-signed certificate (tls nodes only): pass it as a client's `ca`. */
  tlsCa?: string;
  watchersTable: string;
  pid: number;
  logFile: string;
  runDir: string;
  engine: Engine;
  /** JSON-RPC call with the node's token (positional params). */
  rpc(method: string, params?: unknown[]): Promise<RpcReply>;
  /** GET /kwc/status with the token; throws unless 200. */
  // biome-ignore lint/suspicious/noExplicitAny: the status JSON is checked by the tests
  status(): Promise<any>;
  /** Raw HTTP to the RPC port (for auth tests): any path, headers, source address. */
  http(opts: HttpOptions): Promise<RpcReply>;
  /** Log lines written so far. */
  log(): string;
  /** Stop and start again on the same ports; bootId changes. */
  restart(): Promise<void>;
  /** SIGTERM by pid (SIGKILL after 5 s), then removes the run dir unless KWC_KEEP_KAMAILIO_LOGS=1. */
  stop(): Promise<void>;
}

export interface HttpOptions {
  method?: "GET" | "POST";
  path: string;
  headers?: Record<string, string>;
  body?: string;
  localAddress?: string;
  /** PEM to trust for an https URL (the node's self-signed certificate). */
  ca?: string;
}

/** One HTTP request on its own socket with Connection: close (Kamailio closes without saying so). */
export function httpRequest(url: string, opts: HttpOptions): Promise<RpcReply> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const body = opts.body ?? "";
    const send = u.protocol === "https:" ? httpsRequest : request;
    const req = send(
      {
        ...(opts.ca ? { ca: opts.ca } : {}),
        host: u.hostname,
        port: Number(u.port),
        path: opts.path,
        method: opts.method ?? (opts.body === undefined ? "GET" : "POST"),
        agent: false,
        localAddress: opts.localAddress,
        timeout: 10_000,
        headers: {
          connection: "close",
          ...(opts.body !== undefined
            ? { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) }
            : {}),
          ...opts.headers,
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`HTTP ${opts.path}: timeout`)));
    req.on("error", reject);
    req.end(opts.body);
  });
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** A define value: a string is quoted, a number or `{ bare }` goes in as is, `true` only defines the name. */
type DefineValue = string | number | true | { bare: string };

function defineArgs(defines: Record<string, DefineValue>): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(defines)) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`bad define name ${name}`);
    if (value === true) out.push("-A", name);
    else if (typeof value === "number") out.push("-A", `${name}=${value}`);
    else if (typeof value === "object") out.push("-A", `${name}=${value.bare}`);
    else {
      if (/["\n]/.test(value)) throw new Error(`define ${name} holds a quote or newline`);
      out.push("-A", `${name}="${value}"`);
    }
  }
  return out;
}

/** Bracketed host for URLs and socket_info: [::1] for IPv6, the address as is for IPv4. */
export function hostText(ip: string): string {
  return ip.includes(":") ? `[${ip}]` : ip;
}

function wsListeners(ipv4: string, ipv6: string | undefined, wsPort: number, wssPort?: number): WsListener[] {
  const out: WsListener[] = [];
  for (const ip of ipv6 ? [ipv4, ipv6] : [ipv4]) {
    out.push({
      url: `ws://${hostText(ip)}:${wsPort}`,
      transport: "ws",
      ip,
      socketInfo: `tcp:${hostText(ip)}:${wsPort}`,
    });
    if (wssPort)
      out.push({
        url: `wss://${hostText(ip)}:${wssPort}`,
        transport: "wss",
        ip,
        socketInfo: `tls:${hostText(ip)}:${wssPort}`,
      });
  }
  return out;
}

/** KWC_LISTEN_IPV6 is a bare address substituted into `listen=tcp:[...]:port`: only hex, ':' and '.'. */
function bareIpv6(ip: string): { bare: string } {
  if (!/^[0-9a-fA-F:.]+$/.test(ip) || !ip.includes(":"))
    throw new Error(`listenIpv6 ${ip} is not an IPv6 address`);
  return { bare: ip };
}

/** Every descendant of `pid` (from /proc), children first. */
function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses, so split after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone in between
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const child of children.get(p) ?? []) {
      out.push(child);
      walk(child);
    }
  };
  if (pid > 0) walk(pid);
  return out;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * Starts a node; when a port picked free was taken before Kamailio bound it (another process's
 * listener or outgoing socket got the same ephemeral port), starts again on fresh ports.
 */
export async function startKamailio(opts: KamailioNodeOptions): Promise<KamailioNode> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startKamailioOnce(opts);
    } catch (error) {
      if (attempt >= 3 || !/Address already in use/.test((error as Error).message)) throw error;
    }
  }
}

async function startKamailioOnce(opts: KamailioNodeOptions): Promise<KamailioNode> {
  const listenIp = opts.listenIp ?? "127.0.0.1";
  const watchersTable = opts.watchersTable ?? "active_watchers";
  assertTableName(watchersTable);
  const runtime = opts.runtime ?? hostKamailio;
  const ipv6 = opts.listenIpv6;
  // With an IPv6 listener the SIP (and WSS) ports must be free on both addresses.
  const wsHosts = ipv6 ? [listenIp, ipv6] : [listenIp];
  const sipPort = await freePortOnAll(wsHosts);
  const rpcPort = await freePort(listenIp);
  const wssPort = opts.tls ? await freePortOnAll(wsHosts) : undefined;
  const rpcToken = opts.rpcToken ?? `rpc-${randomId(24)}`;
  const runDir = mkdtempSync(join(tmpdir(), `kwc-kam-${opts.nodeId}-`));
  mkdirSync(runDir, { recursive: true });
  const logFile = join(runDir, "kamailio.log");
  const cert = opts.tls ? makeSelfSignedCert(runDir, wsHosts) : undefined;
  const listeners = wsListeners(listenIp, ipv6, sipPort, wssPort);
  const defines: Record<string, DefineValue> = {
    KWC_NODE_ID: opts.nodeId,
    KWC_LISTEN_IP: listenIp,
    KWC_SIP_PORT: sipPort,
    KWC_RPC_PORT: rpcPort,
    KWC_RUN_DIR: runDir,
    KWC_CTL_SOCK: `unix:${join(runDir, "kamailio_ctl")}`,
    KWC_DB_URL: opts.db.kamailioUrl,
    KWC_WATCHERS_TABLE: watchersTable,
    KWC_NOTIFIER_PROCESSES: opts.notifierProcesses ?? 0,
    KWC_INGEST_URL: opts.ingestUrl ?? "http://127.0.0.1:1/events",
    ...(opts.rpcAllow ? { KWC_RPC_ALLOW: opts.rpcAllow } : {}),
    ...(opts.db.engine === "mysql" ? { KWC_WITH_MYSQL: true as const } : {}),
    ...(opts.contactStyle === "alias" ? { KWC_CONTACT_ALIAS: true as const } : {}),
    ...(opts.testTimers === false ? {} : { KWC_TEST_TIMERS: true as const, KWC_WS_KEEPALIVE: 30 }),
    ...(ipv6 ? { KWC_LISTEN_IPV6: bareIpv6(ipv6) } : {}),
    ...(cert && wssPort
      ? {
          KWC_WITH_TLS: true as const,
          KWC_WSS_PORT: wssPort,
          KWC_TLS_CERT: cert.certFile,
          KWC_TLS_KEY: cert.keyFile,
        }
      : {}),
    ...(opts.httpTls ? { KWC_HTTP_TLS: true as const } : {}),
    ...opts.defines,
  };
  // -DD: the creator stays in the foreground (its pid is the main pid), -E: log to stderr
  const args = [
    "-f",
    SHIPPED_CFG,
    "-P",
    join(runDir, "kamailio.pid"),
    "-m",
    String(opts.shmMb ?? 64),
    "-M",
    "8",
    "-DD",
    "-E",
  ];
  args.push(...defineArgs(defines));
  const env = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    KWC_INGEST_KEY: opts.ingestKey ?? "",
    KWC_RPC_TOKEN: rpcToken,
    ...(opts.rpcTokenNext ? { KWC_RPC_TOKEN_NEXT: opts.rpcTokenNext } : {}),
  };
  if (opts.httpTls && !cert) throw new Error("httpTls needs tls (the listener's certificate)");
  const scheme = opts.httpTls ? "https" : "http";
  const rpcUrl = `${scheme}://${listenIp}:${rpcPort}/RPC`;
  const statusUrl = `${scheme}://${listenIp}:${rpcPort}/kwc/status`;
  const ca = opts.httpTls && cert ? { ca: cert.certPem } : {};
  let child: ChildProcess | undefined;
  let bootId = "";

  const auth = { authorization: `Bearer ${rpcToken}` };
  const node: KamailioNode = {
    nodeId: opts.nodeId,
    bootId,
    listenIp,
    sipPort,
    rpcPort,
    wsUrl: `ws://${listenIp}:${sipPort}`,
    rpcUrl,
    statusUrl,
    rpcToken,
    socketInfo: `tcp:${listenIp}:${sipPort}`,
    listeners,
    ...(cert ? { tlsCa: cert.certPem } : {}),
    watchersTable,
    pid: 0,
    logFile,
    runDir,
    engine: opts.db.engine,
    rpc: (method, params) =>
      httpRequest(rpcUrl, {
        ...ca,
        path: "/RPC",
        headers: auth,
        body: JSON.stringify({ jsonrpc: "2.0", method, id: 1, ...(params ? { params } : {}) }),
      }),
    async status() {
      const r = await httpRequest(statusUrl, { ...ca, path: "/kwc/status", headers: auth });
      if (r.status !== 200) throw new Error(`status answered ${r.status}: ${JSON.stringify(r.body)}`);
      return r.body;
    },
    http: (h) => httpRequest(rpcUrl, { ...ca, ...h }),
    log: () => {
      try {
        return readFileSync(logFile, "utf8");
      } catch {
        return "";
      }
    },
    async restart() {
      await halt();
      await launch();
    },
    async stop() {
      await halt();
      // run dir and log go too, unless kept for debugging (KWC_KEEP_KAMAILIO_LOGS=1)
      if (!process.env.KWC_KEEP_KAMAILIO_LOGS) rmSync(runDir, { recursive: true, force: true });
    },
  };

  async function halt(): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    c.kill("SIGTERM");
    // A node that ignores SIGTERM (loaded) gets SIGKILL, and so do its children: Kamailio's main
    // process stops them only on a clean exit.
    const timer = setTimeout(() => {
      for (const pid of descendantsOf(c.pid ?? 0)) killQuietly(pid);
      c.kill("SIGKILL");
    }, 5000);
    await exited;
    clearTimeout(timer);
    live.delete(c);
  }

  async function launch(): Promise<void> {
    const { file, argv } = runtime.command(args, { cfgPath: SHIPPED_CFG, runDir });
    const out = openSync(logFile, "a");
    const c = spawn(file, argv, { cwd: runDir, env, stdio: ["ignore", out, out] });
    child = c;
    live.add(c);
    c.once("exit", () => live.delete(c));
    node.pid = c.pid ?? 0;
    try {
      const status = await waitUntil(
        async () => {
          if (c.exitCode !== null) throw new Error(`kamailio exited with ${c.exitCode}`);
          const s = await node.status();
          return typeof s?.boot === "string" && s.boot.length > 0 ? s : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 100, what: `kamailio ${opts.nodeId} status endpoint` },
      );
      bootId = status.boot;
      node.bootId = bootId;
    } catch (e) {
      await halt();
      const tail = node.log().split("\n").slice(-30).join("\n");
      throw new Error(`${(e as Error).message}\n--- ${logFile} (tail) ---\n${tail}`);
    }
  }

  await launch();
  return node;
}
