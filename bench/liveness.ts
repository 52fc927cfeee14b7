// The liveness check's cost as the node grows (issue 14): real Kamailio 5.6.3 with WS connections
// opened from this process, shm / tcp_max_connections raised for them (-m, KWC_TCP_MAX_CONNECTIONS).
// For each connection count it measures, over the node's JSON-RPC listener:
//   tcp_list     core.tcp_list (every connection, built under the TCP lock): reply bytes, latency
//   route-live   POST /kwc/peers for 10 live peers (the narrow check alone decides)
//   route-dead   POST /kwc/peers for 10 dead peers (+ the core.tcp_list that must confirm them)
//   worker-dead  core/peer-liveness.ts as the worker runs it for 10 dead tabs
// and whether any live peer was ever reported not found (the tcpops false negative; the service
// confirms those with core.tcp_list, so it never deletes a live row for it).
// Prints a table and, last, one JSON document.
//   npm run bench:liveness -- [--connections 1000,5000] [--calls 9]
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { KamailioRpcClient } from "#adapters/kamailio-rpc.ts";
import { peerKey } from "#core/peer.ts";
import { livePeersAmong } from "#core/peer-liveness.ts";
import { createTestDb } from "../test/helpers/db.ts";
import { runningNodeConfig } from "../test/helpers/fakes.ts";
import { startKamailio } from "../test/helpers/kamailio.ts";

const { values: args } = parseArgs({
  options: { connections: { type: "string", default: "1000,5000" }, calls: { type: "string", default: "9" } },
});
const COUNTS = (args.connections ?? "").split(",").map(Number);
const CALLS = Number(args.calls);
const CLIENT_IP = "127.0.0.82";

interface Row {
  connections: number;
  check: string;
  msMedian: number;
  msMax: number;
  replyBytes?: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function timeIt(f: () => Promise<unknown>): Promise<{ med: number; max: number }> {
  const t: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    await f();
    t.push(performance.now() - t0);
  }
  return { med: Math.round(median(t) * 10) / 10, max: Math.round(Math.max(...t) * 10) / 10 };
}

const max = Math.max(...COUNTS);
const db = await createTestDb("postgres", "liveness");
const node = await startKamailio({
  nodeId: "bench-live",
  db,
  listenIp: "127.0.0.81",
  // ~81 KiB of shm per WS connection, plus the rest of the node.
  shmMb: Math.max(64, Math.ceil((max * 81) / 1024) + 128),
  defines: { KWC_TCP_MAX_CONNECTIONS: max + 512 },
});
const config = runningNodeConfig(node);
const rpc = new KamailioRpcClient({ token: async () => node.rpcToken, timeoutMs: 60_000 });
const sockets: WebSocket[] = [];
const rows: Row[] = [];
let falseNotFound = 0;
let asked = 0;
try {
  for (const n of COUNTS) {
    while (sockets.length < n) {
      // Small groups: a burst of hundreds of handshakes overflows the listen backlog on 2 cores.
      const group = Array.from({ length: Math.min(20, n - sockets.length) }, async () => {
        const ws = new WebSocket(node.wsUrl, "sip", { localAddress: CLIENT_IP });
        ws.on("error", () => {});
        await new Promise<void>((resolve, reject) => {
          ws.once("open", () => resolve());
          ws.once("error", reject);
        });
        return ws;
      });
      for (const o of await Promise.allSettled(group)) {
        if (o.status === "fulfilled") sockets.push(o.value);
        else
          throw new Error(
            `opening connection ${sockets.length + 1}: ${String(o.reason)}; ${node.log().trim().split("\n").at(-1)}`,
          );
      }
    }
    const livePeers = sockets.map((ws) =>
      peerKey({
        ip: CLIENT_IP,
        port: (ws as unknown as { _socket: { localPort: number } })._socket.localPort,
      }),
    );
    const pick = (i: number) => livePeers[Math.floor((i * livePeers.length) / 10)] as string;
    const live10 = Array.from({ length: 10 }, (_, i) => pick(i));
    const dead10 = Array.from({ length: 10 }, (_, i) => `10.99.0.${i + 1}:${40000 + i}`);
    const list = await rpc.call(config, "core.tcp_list");
    const listBytes = JSON.stringify(list).length;
    const tl = await timeIt(() => rpc.tcpList(config));
    rows.push({ connections: n, check: "tcp_list", msMedian: tl.med, msMax: tl.max, replyBytes: listBytes });
    const rl = await timeIt(() => rpc.peerStates(config, live10));
    rows.push({ connections: n, check: "route-live (10)", msMedian: rl.med, msMax: rl.max });
    const rd = await timeIt(() => rpc.peerStates(config, dead10));
    rows.push({ connections: n, check: "route-dead (10)", msMedian: rd.med, msMax: rd.max });
    const fullList = async () =>
      new Set((await rpc.tcpList(config)).map((c) => peerKey({ ip: c.srcIp, port: c.srcPort })));
    const wd = await timeIt(() =>
      livePeersAmong(
        rpc,
        config,
        dead10.map((k) => ({ ip: k.split(":")[0] as string, port: Number(k.split(":")[1]) })),
        fullList,
      ),
    );
    rows.push({
      connections: n,
      check: "worker, 10 dead (route + tcp_list)",
      msMedian: wd.med,
      msMax: wd.max,
    });
    // Every live peer asked once, 200 at a time: how many does the lookup miss?
    for (let i = 0; i < livePeers.length; i += 200) {
      const answer = await rpc.peerStates(config, livePeers.slice(i, i + 200));
      falseNotFound += answer?.notFound.length ?? 0;
      asked += Math.min(200, livePeers.length - i);
    }
    console.error(JSON.stringify(rows.filter((r) => r.connections === n)));
  }
} finally {
  for (const ws of sockets) ws.terminate();
  await node.stop();
  await db.drop();
}

console.log("\nLiveness check cost on Kamailio 5.6.3 (loopback, 2 shared cores), per call\n");
console.log(
  `${"connections".padStart(11)}  ${"check".padEnd(36)}${"median ms".padStart(10)}${"max ms".padStart(9)}${"reply KiB".padStart(11)}`,
);
for (const r of rows)
  console.log(
    `${String(r.connections).padStart(11)}  ${r.check.padEnd(36)}${String(r.msMedian).padStart(10)}${String(r.msMax).padStart(9)}${(r.replyBytes ? (r.replyBytes / 1024).toFixed(0) : "-").padStart(11)}`,
  );
console.log(
  `\nlive peers reported notFound by /kwc/peers: ${falseNotFound} of ${asked} asked (each would be confirmed by core.tcp_list)`,
);
console.log(JSON.stringify({ bench: "liveness", calls: CALLS, rows, falseNotFound, asked }));
