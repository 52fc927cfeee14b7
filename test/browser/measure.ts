// What Chromium actually puts on the wire when a tab running JsSIP reloads, closes, crashes or goes
// silent, and which Kamailio 5.6.3 events fire and how late: the table in docs/browsers.md.
// Not part of `npm test` (it needs tcpdump, which the setup does not install):
//   apt-get install --no-install-recommends tcpdump
//   KWC_STATE_DIR=/work/main/.state npx tsx test/browser/measure.ts [runs=3]
// Each death runs on its own Kamailio node (WS, and WSS where the wire is encrypted: TCP flags only)
// with tcpdump on loopback filtered to the node's port; events come from the cfg's own reports.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDb, type TestDb } from "../helpers/db.ts";
import { type KamailioNode, startKamailio } from "../helpers/kamailio.ts";
import { loopbackAddress } from "../helpers/ports.ts";
import { type EventReceiver, startEventReceiver } from "../helpers/receiver.ts";
import { SipWsClient } from "../helpers/sip-ws-client.ts";
import { waitUntil } from "../helpers/wait.ts";
import { startPageServer } from "./bed.ts";
import { launchChromium, type Tab, type TestBrowser } from "./chromium.ts";

type Death = "reload" | "close" | "crash" | "silent";
interface Packet {
  t: number;
  fromClient: boolean;
  clientPort: number;
  flags: string;
  what: string;
}

/** The TCP packets of a pcap file (Ethernet or Linux cooked framing, IPv4). */
function readPcap(file: string, serverPort: number): Packet[] {
  const b = readFileSync(file);
  if (b.length < 24) return [];
  const link = b.readUInt32LE(20);
  const l2 = link === 1 ? 14 : link === 113 ? 16 : link === 276 ? 20 : -1;
  if (l2 < 0) throw new Error(`pcap link type ${link}`);
  const out: Packet[] = [];
  for (let off = 24; off + 16 <= b.length; ) {
    const t = b.readUInt32LE(off) * 1000 + b.readUInt32LE(off + 4) / 1000;
    const len = b.readUInt32LE(off + 8);
    const ip = b.subarray(off + 16 + l2, off + 16 + len);
    off += 16 + len;
    const ihl = ((ip[0] ?? 0) & 15) * 4;
    if (ip.length < 20 || (ip[0] ?? 0) >> 4 !== 4 || ip[9] !== 6) continue;
    const tcp = ip.subarray(ihl);
    const src = tcp.readUInt16BE(0);
    const f = tcp[13] ?? 0;
    const flags = [f & 2 ? "SYN" : "", f & 1 ? "FIN" : "", f & 4 ? "RST" : ""].filter(Boolean).join("+");
    const payload = tcp.subarray(((tcp[12] ?? 0) >> 4) * 4, ip.readUInt16BE(2) - ihl);
    const fromClient = src !== serverPort;
    out.push({
      t,
      fromClient,
      clientPort: fromClient ? src : tcp.readUInt16BE(2),
      flags,
      what: payload.length ? wsFrame(payload) : "",
    });
  }
  return out;
}

/** A WebSocket frame's opcode, and a Close frame's code (client frames are masked). */
function wsFrame(p: Buffer): string {
  const opcode = (p[0] ?? 0) & 15;
  const names: Record<number, string> = {
    0: "cont",
    1: "text",
    2: "binary",
    8: "Close",
    9: "Ping",
    10: "Pong",
  };
  if (p.subarray(0, 4).toString() === "GET " || p.subarray(0, 5).toString() === "HTTP/") return "http";
  if (!((p[0] ?? 0) & 0x80) || (p[0] ?? 0) & 0x70) return "tls/data";
  const name = names[opcode] ?? `op${opcode}`;
  if (opcode !== 8) return name;
  const n = (p[1] ?? 0) & 0x7f;
  const masked = (p[1] ?? 0) & 0x80;
  const mask = masked ? p.subarray(2, 6) : Buffer.alloc(4);
  const start = masked ? 6 : 2;
  const body = Buffer.from(p.subarray(start, start + n).map((x, i) => x ^ (mask[i % 4] ?? 0)));
  return body.length >= 2 ? `Close ${body.readUInt16BE(0)}` : "Close (no code)";
}

async function capture(port: number, file: string): Promise<ChildProcess> {
  const child = spawn("tcpdump", ["-i", "lo", "-nn", "-U", "-w", file, `tcp port ${port}`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on("data", (d: Buffer) => d.toString().includes("listening on") && resolve());
    child.once("exit", (code) => reject(new Error(`tcpdump exited ${code}`)));
  });
  return child;
}

async function measure(db: TestDb, pageUrl: string, death: Death, transport: "ws" | "wss"): Promise<string> {
  const rx: EventReceiver = await startEventReceiver();
  const node: KamailioNode = await startKamailio({
    nodeId: `measure-${death}`,
    db,
    listenIp: loopbackAddress(),
    ingestUrl: rx.url,
    ingestKey: rx.key,
    tls: transport === "wss",
    defines: { KWC_WS_KEEPALIVE: death === "silent" ? 2 : 30 },
  });
  const listener = node.listeners.find((l) => l.transport === transport);
  if (!listener) throw new Error("no listener");
  const serverPort = Number(new URL(listener.url).port);
  const dir = mkdtempSync(join(tmpdir(), "kwc-measure-"));
  const pcap = join(dir, "lo.pcap");
  const dump = await capture(serverPort, pcap);
  let browser: TestBrowser | undefined;
  const publisher = await SipWsClient.connect(node.wsUrl, { user: "publisher" });
  try {
    const presentity = `sip:${death}@example.com`;
    await publisher.publish(presentity);
    browser = await launchChromium({
      pageUrl,
      wsUrl: listener.url,
      ...(node.tlsCa && { caPem: node.tlsCa }),
    });
    const b = browser;
    const tab: Tab = await b.openTab("victim", [{ presentity, event: "presence" }]);
    const [row] = await db.query<{ contact: string }>(
      "SELECT contact FROM active_watchers WHERE callid = $1",
      [tab.callIds[0]],
    );
    const port = Number(/@[^:;>]+:(\d+)/.exec(row?.contact ?? "")?.[1]);
    const closes = () =>
      rx.events.filter((e) => e.type === "connection.closed" && e.peer.port === port) as {
        cause: string;
      }[];
    const t0 = Date.now();
    const seen: { cause: string; ms: number }[] = [];
    const actions: Record<Death, () => Promise<unknown>> = {
      reload: () => tab.page.reload(),
      close: () => tab.page.close(),
      crash: async () => b.kill(),
      silent: async () => b.freeze(),
    };
    await actions[death]();
    // every event this death makes: until two have come, or 4 s (silent: 6 s) after the first one
    await waitUntil(
      () => {
        for (const e of closes().slice(seen.length)) seen.push({ cause: e.cause, ms: Date.now() - t0 });
        const tail = death === "silent" ? 6000 : 4000;
        return seen.length >= 2 || (seen.length === 1 && Date.now() - t0 - (seen[0]?.ms ?? 0) > tail);
      },
      { timeoutMs: 20_000, intervalMs: 5, what: `${death}: events` },
    );
    dump.kill("SIGINT");
    await new Promise((r) => dump.once("exit", r));
    const wire = readPcap(pcap, serverPort).filter((p) => p.clientPort === port && p.t >= t0 - 5);
    const line = wire
      .filter((p) => p.flags.includes("FIN") || p.flags.includes("RST") || p.what.startsWith("Close"))
      .map(
        (p) =>
          `${p.fromClient ? "C→S" : "S→C"} ${[p.what, p.flags].filter(Boolean).join(" ")} +${Math.round(p.t - t0)}`,
      )
      .join(", ");
    const pings = wire.filter((p) => p.what === "Ping").length;
    const pongs = wire.filter((p) => p.what === "Pong").length;
    const keepalive = death === "silent" ? `; ${pings} Ping, ${pongs} Pong` : "";
    return `| ${death} | ${transport} | ${line || "(no FIN, RST or Close)"}${keepalive} | ${seen.map((e) => `${e.cause} +${e.ms}`).join(", ")} |`;
  } finally {
    if (dump.exitCode === null) dump.kill("SIGINT");
    await browser?.close();
    publisher.close();
    await node.stop();
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const runs = Number(process.argv[2] ?? 3);
const db = await createTestDb("postgres", "measure");
const pages = await startPageServer();
try {
  console.log(
    "| death | transport | on the wire (victim's connection; ms after the action) | Kamailio events (ms after) |",
  );
  console.log("| --- | --- | --- | --- |");
  for (const death of ["reload", "close", "crash", "silent"] as const)
    for (const transport of ["ws", "wss"] as const)
      for (let i = 0; i < runs; i++) console.log(await measure(db, pages.url, death, transport));
} finally {
  await pages.close();
  await db.drop();
}
process.exit(0);
