// Reconcile sweep benchmark: one node with 100k active_watchers rows and 20k live peers.
//   npx tsx bench/reconcile-sweep.ts [--engine postgres|mysql] [--rows 100000] [--live 20000]
// The real sweep (DataApiReconcileStore over the real RDSDataClient → the local Data API server →
// the project's own PostgreSQL/MariaDB) against a fake node whose core.tcp_list answer is the JSON
// Kamailio would send for the live peers (parsed on every call, as the real client does).
// The Data API server runs in a child process, so the peak RSS printed is the sweeper's alone.
// Prints: sweep time, peak RSS, pages, largest response (exact bytes on the wire), deletes.
// Goal (issue 6): ≤ 3 s, ≤ 256 MB, every response < 1 MiB.
import { type ChildProcess, spawn } from "node:child_process";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import mysql from "mysql2/promise";
import pg from "pg";
import { DataApiReconcileStore } from "../lambdas/adapters/reconcile-store.ts";
import { CleanupRequestSchema } from "../lambdas/core/cleanup-request.ts";
import type { ReconcileNodeConfig } from "../lambdas/core/reconcile.ts";
import { type NodeProbe, runCleanup } from "../lambdas/core/reconcile-sweep.ts";
import { type DataApiTarget, startDataApiServer } from "../local/dataapi/server.ts";
import { localDataApiClient, testDbConfig, testDbTarget } from "../test/helpers/dataapi.ts";
import { createTestDb, type Engine } from "../test/helpers/db.ts";

const { values } = parseArgs({
  options: {
    engine: { type: "string", default: "postgres" },
    rows: { type: "string", default: "100000" },
    live: { type: "string", default: "20000" },
    serve: { type: "string" },
    "delete-chunk": { type: "string", default: "1000" },
  },
});

interface ServeSpec {
  target: DataApiTarget;
  fill: { engine: Engine; table: string; rows: number; peers: number; socket: string };
}

// Child mode: fill the table, run the Data API server over it and print its endpoint (so neither
// the fill nor the server count in the sweeper's memory).
if (values.serve) {
  const spec = JSON.parse(values.serve) as ServeSpec;
  await fill(spec);
  const server = await startDataApiServer({ targets: [spec.target] });
  process.stdout.write(`${server.endpoint}\n`);
  process.on("SIGTERM", () => void server.close().then(() => process.exit(0)));
} else {
  await bench(values.engine === "mysql" ? "mysql" : "postgres", Number(values.rows), Number(values.live));
}

function ip(p: number): string {
  return `10.${(p >> 16) & 255}.${(p >> 8) & 255}.${p & 255}`;
}

async function fill({ target, fill: f }: ServeSpec): Promise<void> {
  const t0 = Date.now();
  const conn = {
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
  };
  const run =
    f.engine === "postgres"
      ? await (async () => {
          const c = new pg.Client(conn);
          await c.connect();
          return { query: (q: string) => c.query(q), end: () => c.end() };
        })()
      : await (async () => {
          const c = await mysql.createConnection(conn);
          return { query: (q: string) => c.query(q), end: () => c.end() };
        })();
  const expires = Math.floor(Date.now() / 1000) + 3600;
  const BATCH = 5000;
  for (let start = 0; start < f.rows; start += BATCH) {
    const tuples: string[] = [];
    for (let g = start; g < Math.min(f.rows, start + BATCH); g++) {
      const p = g % f.peers;
      // Realistic widths: JsSIP-like Call-IDs and tags, 1000 presentities, BLF and presence.
      tuples.push(
        `('sip:ext${g % 1000}@pbx.example.com','u${p}','example.com','ext${g % 1000}','pbx.example.com',` +
          `'${g % 3 === 0 ? "dialog" : "presence"}','${g}-to-tag-0123456789abcdef','from${g}xyzabcdef',` +
          `'call-${g}-abcdefghijklmnopqrstuvwx',1,1,'sip:u${p}@${ip(p)}:${40000 + (p % 20000)};transport=ws',` +
          `${expires},'${f.socket}','sip:10.255.0.1:8080;transport=ws','u${p}','example.com',0,0)`,
      );
    }
    await run.query(
      `INSERT INTO ${f.table} (presentity_uri, watcher_username, watcher_domain, to_user, to_domain, event, to_tag, from_tag, callid, local_cseq, remote_cseq, contact, expires, socket_info, local_contact, from_user, from_domain, updated, updated_winfo) VALUES ${tuples.join(",")}`,
    );
  }
  if (f.engine === "postgres") await run.query(`ANALYZE ${f.table}`);
  await run.end();
  process.stderr.write(`filled ${f.rows} rows (${f.peers} peers) in ${Date.now() - t0} ms\n`);
}

function startServerChild(spec: ServeSpec): Promise<{ endpoint: string; child: ChildProcess }> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ["--import", "tsx", self, "--serve", JSON.stringify(spec)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`Data API server exited with ${code}`)));
    child.stdout?.once("data", (chunk: Buffer) => resolve({ endpoint: chunk.toString().trim(), child }));
  });
}

async function bench(engine: Engine, rowCount: number, livePeers: number): Promise<void> {
  const rowsPerPeer = 4;
  const peers = Math.ceil(rowCount / rowsPerPeer);
  const table = "aw_bench";
  const socket = "tcp:10.255.0.1:8080";
  const db = await createTestDb(engine, "bench");
  let child: ChildProcess | undefined;
  try {
    await db.createNodeTable(table);
    const server = await startServerChild({
      target: testDbTarget(db),
      fill: { engine, table, rows: rowCount, peers, socket },
    });
    child = server.child;

    // Exact response sizes: read each raw HTTP body before the SDK deserializes it.
    const responseBytes: number[] = [];
    const client = localDataApiClient(server.endpoint);
    client.middlewareStack.add(
      (next) => async (args) => {
        const out = await next(args);
        const response = out.response as { body?: Readable };
        if (response.body) {
          const chunks: Buffer[] = [];
          for await (const c of response.body) chunks.push(Buffer.from(c));
          const body = Buffer.concat(chunks);
          responseBytes.push(body.length);
          response.body = Readable.from([body]);
        }
        return out;
      },
      { step: "deserialize", priority: "low", name: "measureResponseBytes" },
    );

    // The node: core.tcp_list as Kamailio prints it for `livePeers` WS peers (+ the RPC's own connection).
    const tcpListJson = JSON.stringify({
      jsonrpc: "2.0",
      result: [
        ...Array.from({ length: livePeers }, (_, p) => ({
          id: p + 2,
          type: "WS",
          state: "CONN_OK",
          timeout: 3600,
          lifetime: 3605,
          ref_count: 1,
          src_ip: ip(p),
          src_port: 40000 + (p % 20000),
          dst_ip: "10.255.0.1",
          dst_port: 8080,
        })),
        {
          id: 1,
          type: "TCP",
          state: "CONN_OK",
          timeout: 5,
          lifetime: 5,
          ref_count: 2,
          src_ip: "10.255.0.9",
          src_port: 33333,
          dst_ip: "10.255.0.1",
          dst_port: 5081,
        },
      ],
      id: 1,
    });
    let refreshes = 0;
    const probe: NodeProbe = {
      status: async () => ({
        bootId: "1800000000-bench",
        kamailioVersion: "5.6.3",
        subsDbMode: 3,
        notifierProcesses: 0,
        watchersTable: table,
      }),
      connections: async () =>
        (JSON.parse(tcpListJson).result as { src_ip: string; src_port: number; type: string }[]).map((c) => ({
          ip: c.src_ip,
          port: c.src_port,
          type: c.type,
        })),
      refresh: async () => {
        refreshes++;
        return { ok: true };
      },
    };
    const node: ReconcileNodeConfig = {
      id: "bench",
      socketInfo: [socket],
      watchersTable: table,
      contactStyle: "nated",
      kamailioVersion: "5.6.3",
      subsDbMode: 3,
      notifierProcesses: 0,
    };
    const store = new DataApiReconcileStore(client, testDbConfig(db));
    const deps = { store, probe, engine, fleet: [node] };

    // A dry run (read + classify only), then the real sweep (read + classify + delete + refresh).
    const rss0 = process.memoryUsage().rss;
    for (const dryRun of [true, false]) {
      responseBytes.length = 0;
      refreshes = 0;
      const pages0 = store.stats.pages;
      const t0 = performance.now();
      const report = await runCleanup(deps, CleanupRequestSchema.parse({ scope: "reconcile", dryRun }), {
        maxListedRows: 0,
        deleteChunk: Number(values["delete-chunk"]),
      });
      const ms = performance.now() - t0;
      const n = report.nodes[0];
      const largest = Math.max(...responseBytes);
      console.log(
        `${engine} ${dryRun ? "dry run" : "sweep  "}: ${ms.toFixed(0)} ms | rows ${rowCount} (live ${n?.counts.live}, conn-closed ${n?.counts["conn-closed"]}) | ` +
          `live peers ${livePeers} | pages ${store.stats.pages - pages0} | Data API calls ${responseBytes.length} | ` +
          `largest response ${largest} B (${((largest / 1048576) * 100).toFixed(1)} % of 1 MiB) | deleted ${n?.deleted} | refreshes ${refreshes} | outcome ${n?.outcome}`,
      );
      if (largest >= 1048576) console.log("  GOAL MISSED: a response reached 1 MiB");
    }
    const peakMb = process.resourceUsage().maxRSS / 1024;
    console.log(
      `peak RSS ${peakMb.toFixed(0)} MB (sweeper process; ${(rss0 / 1048576).toFixed(0)} MB before the sweeps) | goal ≤ 3000 ms, ≤ 256 MB, < 1 MiB`,
    );
    client.destroy();
  } finally {
    child?.kill("SIGTERM");
    await db.drop();
  }
}
