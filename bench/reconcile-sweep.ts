// Reconcile sweep benchmark: one node with 100k active_watchers rows and 20k live peers.
//   npx tsx bench/reconcile-sweep.ts [--engine postgres|mysql] [--rows 100000] [--live 20000] [--trace-memory]
// The real sweep (DataApiReconcileStore over the real RDSDataClient → the local Data API server →
// the project's own PostgreSQL/MariaDB) against a fake node whose core.tcp_list answer is the JSON
// Kamailio would send for the live peers (parsed on every call, as the real client does).
// A child process owns the database (creates, fills, serves it through the Data API server, drops
// it), so the sweeper process loads only what a reconciler Lambda loads (SDK client, core, store)
// and its peak RSS is the sweeper's alone.
// Prints: sweep and dry-run time, pages, largest response (exact bytes on the wire, from
// content-length), baseline RSS before the sweeps, peak RSS and the sweeps' own delta over it.
// Goal (issue 6): ≤ 3 s, ≤ 256 MB, every response < 1 MiB.
// The same run without tsx (as the deployed Lambda runs, an esbuild bundle):
//   npx esbuild bench/reconcile-sweep.ts --bundle --platform=node --format=esm --packages=external \
//     --outfile=node_modules/.cache/kwc-bench/reconcile-sweep.mjs && node node_modules/.cache/kwc-bench/reconcile-sweep.mjs
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DataApiReconcileStore } from "#adapters/reconcile-store.ts";
import { CleanupRequestSchema } from "#core/cleanup-request.ts";
import type { KamailioClient } from "#core/ports.ts";
import { runCleanup, type SweepHooks } from "#core/reconcile-sweep.ts";
import type { DataApiTarget } from "../local/dataapi/server.ts";
import { localDataApiClient, testDbConfig } from "../test/helpers/dataapi.ts";
import type { Engine } from "../test/helpers/db.ts";
import { nodeConfig } from "../test/helpers/fakes.ts";

const { values } = parseArgs({
  options: {
    engine: { type: "string", default: "postgres" },
    rows: { type: "string", default: "100000" },
    live: { type: "string", default: "20000" },
    serve: { type: "string" },
    "delete-chunk": { type: "string", default: "1000" },
    "trace-memory": { type: "boolean", default: false },
  },
});

const TABLE = "aw_bench";
const SOCKET = "tcp:10.255.0.1:8080";

interface ServeSpec {
  engine: Engine;
  rows: number;
  peers: number;
}

/** What the child prints once the table is filled and served. */
interface Served {
  endpoint: string;
  db: { engine: Engine; name: string };
}

if (values.serve) {
  await serve(JSON.parse(values.serve) as ServeSpec);
} else {
  await bench(values.engine === "mysql" ? "mysql" : "postgres", Number(values.rows), Number(values.live));
}

/**
 * Child mode: create and fill a test database, serve it through the Data API server, print its
 * endpoint; on SIGTERM close the server and drop the database. Database drivers and the server are
 * imported here only, so they never weigh on the sweeper's memory.
 */
async function serve(spec: ServeSpec): Promise<void> {
  const { createTestDb } = await import("../test/helpers/db.ts");
  const { testDbTarget } = await import("../test/helpers/dataapi.ts");
  const { startDataApiServer } = await import("../local/dataapi/server.ts");
  const db = await createTestDb(spec.engine, "bench");
  try {
    await db.createNodeTable(TABLE);
    const target = testDbTarget(db);
    await fill(target, spec);
    const server = await startDataApiServer({ targets: [target] });
    const served: Served = { endpoint: server.endpoint, db: { engine: db.engine, name: db.name } };
    process.stdout.write(`${JSON.stringify(served)}\n`);
    await new Promise<void>((resolve) => process.once("SIGTERM", () => resolve()));
    await server.close();
  } finally {
    await db.drop();
  }
}

function ip(p: number): string {
  return `10.${(p >> 16) & 255}.${(p >> 8) & 255}.${p & 255}`;
}

async function fill(target: DataApiTarget, f: ServeSpec): Promise<void> {
  const pg = (await import("pg")).default;
  const mysql = (await import("mysql2/promise")).default;
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
          `${expires},'${SOCKET}','sip:10.255.0.1:8080;transport=ws','u${p}','example.com',0,0)`,
      );
    }
    await run.query(
      `INSERT INTO ${TABLE} (presentity_uri, watcher_username, watcher_domain, to_user, to_domain, event, to_tag, from_tag, callid, local_cseq, remote_cseq, contact, expires, socket_info, local_contact, from_user, from_domain, updated, updated_winfo) VALUES ${tuples.join(",")}`,
    );
  }
  if (f.engine === "postgres") await run.query(`ANALYZE ${TABLE}`);
  await run.end();
  process.stderr.write(`filled ${f.rows} rows (${f.peers} peers) in ${Date.now() - t0} ms\n`);
}

function startServerChild(spec: ServeSpec): Promise<{ served: Served; child: ChildProcess }> {
  const self = fileURLToPath(import.meta.url);
  // Under tsx the child needs its loader; an esbuild bundle (.mjs) runs on plain node.
  const loader = self.endsWith(".mjs") ? [] : ["--import", "tsx"];
  const child = spawn(process.execPath, [...loader, self, "--serve", JSON.stringify(spec)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`Data API server exited with ${code}`)));
    child.stdout?.once("data", (chunk: Buffer) =>
      resolve({ served: JSON.parse(chunk.toString()) as Served, child }),
    );
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.removeAllListeners("exit");
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

function mb(bytes: number): string {
  return (bytes / 1048576).toFixed(0);
}

function traceMemory(label: string): void {
  if (!values["trace-memory"]) return;
  // With --expose-gc the heap figure is what is live, not what awaits collection (peak RSS is then
  // no longer the undisturbed figure: run without --trace-memory for that).
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const m = process.memoryUsage();
  const f = (n: number) => (n / 1048576).toFixed(1);
  console.log(
    `  [mem] ${label}: rss ${f(m.rss)} (peak so far ${f(process.resourceUsage().maxRSS * 1024)}) | heap used ${f(m.heapUsed)} total ${f(m.heapTotal)} | external ${f(m.external)} (array buffers ${f(m.arrayBuffers)})`,
  );
}

async function bench(engine: Engine, rowCount: number, livePeers: number): Promise<void> {
  const rowsPerPeer = 4;
  const peers = Math.ceil(rowCount / rowsPerPeer);
  const { served, child } = await startServerChild({ engine, rows: rowCount, peers });
  try {
    // Exact response sizes from the server's content-length (the body itself is left to the SDK).
    const responseBytes: number[] = [];
    const client = localDataApiClient(served.endpoint);
    client.middlewareStack.add(
      (next) => async (args) => {
        const out = await next(args);
        const headers = (out.response as { headers?: Record<string, string> }).headers ?? {};
        responseBytes.push(Number(headers["content-length"] ?? Number.NaN));
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
    const kamailio: KamailioClient = {
      status: async () => ({
        boot: "1800000000-bench",
        version: "5.6.3",
        subsDbMode: 3,
        notifierProcesses: 0,
        watchersTable: TABLE,
      }),
      tcpList: async () => {
        traceMemory("rows read, before core.tcp_list");
        const parsed = (
          JSON.parse(tcpListJson).result as { src_ip: string; src_port: number; type: string }[]
        ).map((c, id) => ({
          id,
          type: c.type,
          state: "CONN_OK",
          srcIp: c.src_ip,
          srcPort: c.src_port,
          dstIp: "10.255.0.1",
          dstPort: 5081,
        }));
        traceMemory("after core.tcp_list");
        return parsed;
      },
      refreshWatchers: async () => {
        refreshes++;
      },
    };
    const node = nodeConfig("bench", { socketInfo: [SOCKET], watchersTable: TABLE });
    const hooks: SweepHooks = {
      onProgress: (e) => {
        if (e.phase === "rows" && e.done % 25000 < 1600) traceMemory(`rows ${e.done}`);
      },
    };
    const store = new DataApiReconcileStore(client, testDbConfig(served.db));
    const deps = { store, kamailio, engine, fleet: [node], hooks };

    // A dry run (read + classify only), then the real sweep (read + classify + delete + refresh).
    const baselineRss = process.memoryUsage().rss;
    traceMemory("before the sweeps");
    const times: Record<string, number> = {};
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
      traceMemory("after runCleanup");
      // maxRSS only grows: after the dry run it is one sweep's peak in a fresh process; after the
      // full sweep it includes what the dry run left for the collector (a warm Lambda's case).
      const peakSoFar = process.resourceUsage().maxRSS * 1024;
      times[dryRun ? "dry" : "sweep"] = ms;
      const n = report.nodes[0];
      const largest = Math.max(...responseBytes);
      console.log(
        `${engine} ${dryRun ? "dry run" : "sweep  "}: ${ms.toFixed(0)} ms | rows ${rowCount} (live ${n?.counts.live}, conn-closed ${n?.counts["conn-closed"]}) | ` +
          `live peers ${livePeers} | pages ${store.stats.pages - pages0} | Data API calls ${responseBytes.length} | ` +
          `largest response ${largest} B (${((largest / 1048576) * 100).toFixed(1)} % of 1 MiB) | deleted ${n?.deleted} | refreshes ${refreshes} | outcome ${n?.outcome} | peak RSS so far ${mb(peakSoFar)} MB`,
      );
      if (!(largest < 1048576))
        console.log("  GOAL MISSED: a response reached 1 MiB (or its size is unknown)");
    }
    const peak = process.resourceUsage().maxRSS * 1024;
    const runtime = import.meta.url.endsWith(".mjs") ? "plain node (bundle)" : "tsx";
    console.log(
      `${engine} peak RSS ${mb(peak)} MB = baseline ${mb(baselineRss)} MB (${runtime}, before the sweeps) + ${mb(peak - baselineRss)} MB for the sweeps | ` +
        `goal ≤ 3000 ms (sweep ${times.sweep?.toFixed(0)} ms), ≤ 256 MB, every response < 1 MiB`,
    );
    client.destroy();
  } finally {
    await stopChild(child);
  }
}
