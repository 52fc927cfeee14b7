import WebSocket from "ws";
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import { KamailioRpcClient } from "#adapters/kamailio-rpc.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import type { FleetConfig, NodeConfig } from "#core/fleet.ts";
import { createWorker } from "#core/worker.ts";
import { defaultTargets } from "../local/dataapi/config.ts";
import { startDataApiServer } from "../local/dataapi/server.ts";
import { localDataApiClient, testDbConfig } from "../test/helpers/dataapi.ts";
import { createTestDb, type Engine, type TestDb } from "../test/helpers/db.ts";
import { FakeKamailio, nodeConfig, RecordingSink } from "../test/helpers/fakes.ts";
import { startKamailio } from "../test/helpers/kamailio.ts";

const AT = 1_795_621_085;
const BOOT = "1795621085-9f3a61c2";

function nodeOf(i: number): NodeConfig {
  return nodeConfig(`bench-${i}`, {
    rpcUrl: `http://127.0.0.${10 + i}:5081/RPC`,
    statusUrl: `http://127.0.0.${10 + i}:5081/kwc/status`,
    socketInfo: [`tcp:127.0.0.${10 + i}:5080`],
    watchersTable: `aw_bench_${i}`,
  });
}

/** Kamailio stand-in that counts calls (the bench is about Data API round trips): the events' boot, nothing live. */
function countingKamailio(nodes: readonly NodeConfig[]): FakeKamailio {
  const k = new FakeKamailio();
  for (const n of nodes) k.serve(n.id, { status: { boot: BOOT } });
  return k;
}

let rowId = 1;
async function insertRow(
  db: TestDb,
  node: NodeConfig,
  contact: string,
  presentity: string,
  callId = `c${rowId}`,
) {
  const id = rowId++;
  const p = db.engine === "postgres" ? (i: number) => `$${i}` : () => "?";
  await db.query(
    `INSERT INTO ${node.watchersTable} (id, presentity_uri, watcher_username, watcher_domain, to_user, to_domain, event, to_tag, from_tag, callid, local_cseq, remote_cseq, contact, expires, socket_info, local_contact, from_user, from_domain, updated, updated_winfo) VALUES (${p(1)}, ${p(2)}, 'w', 'example.com', 'p', 'example.com', 'presence', 'tt', 'ft', ${p(3)}, 0, 1, ${p(4)}, 2000000000, ${p(5)}, 'sip:x', 'w', 'example.com', -1, -1)`,
    [id, presentity, callId, contact, node.socketInfo[0]],
  );
}

async function benchEngine(engine: Engine) {
  const db = await createTestDb(engine, "wbench");
  const server = await startDataApiServer({ targets: defaultTargets() });
  const rds = localDataApiClient(server.endpoint);
  const nodes = [nodeOf(1), nodeOf(2), nodeOf(3)];
  try {
    for (const n of nodes) await db.createNodeTable(n.watchersTable);
    const fleet: FleetConfig = {
      version: 1,
      database: testDbConfig(db),
      notifyFailureCodes: [404, 410, 481, 408],
      nodes,
    };
    const [n1, n2, n3] = nodes as [NodeConfig, NodeConfig, NodeConfig];
    // Scenario A rows: 10 dead peers + 10 live ones on node 1.
    for (let i = 0; i < 10; i++) {
      await insertRow(db, n1, `sip:d${i}@10.1.0.1:${20000 + i};transport=ws`, `sip:p${i % 3}@example.com`);
      await insertRow(db, n1, `sip:l${i}@10.1.0.1:${30000 + i};transport=ws`, `sip:p${i % 3}@example.com`);
    }
    const run = async (label: string, body: string[], expectDeleted: number) => {
      const k = countingKamailio(nodes);
      const worker = createWorker({
        fleet: async () => fleet,
        storeFor: () => new DataApiWatcherStore(rds, fleet.database),
        kamailio: k,
        dlq: new RecordingSink(),
        telemetry: memoryTelemetry().telemetry,
        // The events' own clock: fixed `at` values stay inside the worker's freshness window.
        now: () => AT * 1000 + 5000,
      });
      const before = server.stats.calls;
      const t0 = performance.now();
      const r = await worker(body.map((b, i) => ({ messageId: `m${i}`, body: b })));
      const ms = performance.now() - t0;
      // A call count from a batch that deleted the wrong rows (events ignored) measures nothing.
      if (r.deleted !== expectDeleted)
        throw new Error(`${label}: deleted ${r.deleted}, expected ${expectDeleted}`);
      console.log(
        `${engine.padEnd(8)} ${label.padEnd(52)} dataApiCalls=${server.stats.calls - before}  deleted=${r.deleted}  ` +
          `rpc: status=${k.statusCalls} tcp_list=${k.tcpListCalls.length} refresh=${k.refreshCalls.length}  ${ms.toFixed(0)} ms`,
      );
    };
    const closed = (node: string, port: number, ip = "10.1.0.1") => ({
      type: "connection.closed",
      node,
      boot: BOOT,
      peer: { ip, port },
      transport: "ws",
      cause: "tcp:reset",
      at: AT,
    });
    await run(
      "A: 10 connection.closed, one node",
      [JSON.stringify({ v: 1, events: Array.from({ length: 10 }, (_, i) => closed(n1.id, 20000 + i)) })],
      10,
    );
    // Scenario B: node 1 gets 3 closed + 1 notify.failed, node 2 two closed, node 3 posts a change
    // of a presentity watched on nodes 1 and 2 (fan-out).
    for (let i = 0; i < 3; i++)
      await insertRow(db, n1, `sip:e${i}@10.2.0.1:${40000 + i};transport=ws`, "sip:fan@example.com");
    await insertRow(db, n1, "sip:nf@10.2.0.9:41000;transport=ws", "sip:fan@example.com", "nf-call");
    for (let i = 0; i < 2; i++)
      await insertRow(db, n2, `sip:f${i}@10.2.0.2:${42000 + i};transport=ws`, "sip:fan@example.com");
    await insertRow(db, n2, "sip:live@10.2.0.2:43000;transport=ws", "sip:fan@example.com");
    const mixed = [
      JSON.stringify({ v: 1, events: [closed(n1.id, 40000, "10.2.0.1"), closed(n1.id, 40001, "10.2.0.1")] }),
      JSON.stringify({
        v: 1,
        events: [
          closed(n1.id, 40002, "10.2.0.1"),
          {
            type: "notify.failed",
            node: n1.id,
            boot: BOOT,
            dialog: { callId: "nf-call", toTag: "tt", fromTag: "ft" },
            presentity: "sip:fan@example.com",
            event: "presence",
            code: 410,
            version: 0, // the row's version (the table's default): the NOTIFY that failed is its latest
            contact: "sip:nf@10.2.0.9:41000;transport=ws",
            at: AT,
          },
          closed(n2.id, 42000, "10.2.0.2"),
          closed(n2.id, 42001, "10.2.0.2"),
        ],
      }),
      JSON.stringify({
        v: 1,
        events: [
          {
            type: "presence.changed",
            node: n3.id,
            boot: BOOT,
            presentity: "sip:fan@example.com",
            event: "presence",
            at: AT,
          },
        ],
      }),
    ];
    await run("B: mixed batch, 3 nodes (closed, failed, fan-out)", mixed, 6);
    await run("B again (duplicates: nothing left to delete)", mixed, 0);
  } finally {
    rds.destroy();
    await server.close();
    await db.drop();
  }
}

async function benchTcpList(counts: number[]) {
  const db = await createTestDb("postgres", "wbenchtcp");
  const node = await startKamailio({ nodeId: "bench-tcp", db, listenIp: "127.0.0.46" });
  const sockets: WebSocket[] = [];
  try {
    const cfg: NodeConfig = { ...nodeOf(1), id: node.nodeId, rpcUrl: node.rpcUrl, statusUrl: node.statusUrl };
    const rpc = new KamailioRpcClient({ token: async () => node.rpcToken, timeoutMs: 30_000 });
    for (const n of counts) {
      while (sockets.length < n) {
        // Open in small groups: a burst of hundreds of handshakes overflows the listen backlog on 2 cores.
        const group = Array.from({ length: Math.min(10, n - sockets.length) }, async () => {
          const ws = new WebSocket(node.wsUrl, "sip");
          ws.on("error", () => {}); // a late reset after the bench must not crash it
          await new Promise<void>((resolve, reject) => {
            ws.once("open", () => resolve());
            ws.once("error", reject);
          });
          return ws;
        });
        const opened = await Promise.allSettled(group);
        for (const o of opened) if (o.status === "fulfilled") sockets.push(o.value);
        const failed = opened.find((o) => o.status === "rejected");
        if (failed) {
          // The test bed starts Kamailio with 64 MB of shared memory (about 780 connections).
          const lastError = node.log().trim().split("\n").at(-1) ?? "";
          console.log(
            `core.tcp_list: stopped at ${sockets.length} connections (${String(failed.reason)}; ${lastError.trim()})`,
          );
          return;
        }
      }
      const times: number[] = [];
      let entries = 0;
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        const list = await rpc.tcpList(cfg);
        times.push(performance.now() - t0);
        entries = list.filter((c) => c.type === "WS").length;
      }
      const raw = await fetch(node.rpcUrl, {
        method: "POST",
        headers: {
          authorization: `Bearer ${node.rpcToken}`,
          connection: "close",
          "content-type": "application/json",
        },
        body: JSON.stringify({ jsonrpc: "2.0", method: "core.tcp_list", id: 1 }),
      });
      const bytes = (await raw.text()).length;
      times.sort((a, b) => a - b);
      console.log(
        `core.tcp_list with ${String(n).padStart(5)} WS connections: ${entries} WS entries, reply ${(bytes / 1024).toFixed(1)} KiB ` +
          `(${(bytes / Math.max(1, entries)).toFixed(0)} B/conn), median ${times[2]?.toFixed(1)} ms, max ${times[4]?.toFixed(1)} ms (5 calls)`,
      );
    }
  } finally {
    for (const ws of sockets) ws.terminate();
    await node.stop();
    await db.drop();
  }
}

const connArg = process.argv.indexOf("--connections");
const connectionCounts = (connArg >= 0 ? (process.argv[connArg + 1] ?? "") : "100,250,700")
  .split(",")
  .map(Number)
  .filter((n) => n > 0);

console.log(
  "Data API calls per worker batch (local Data API server stats; Kamailio RPCs counted by a stand-in)",
);
for (const engine of ["postgres", "mysql"] as const) await benchEngine(engine);
if (connectionCounts.length > 0) await benchTcpList(connectionCounts);
