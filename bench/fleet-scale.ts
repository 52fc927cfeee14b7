// Fleet scale (issue 14): the DB work and Data API calls of one worker batch of 10 dead BLF tabs
// (10 connection.closed events, 10 peers x 100 BLF rows = 1,000 rows to delete) on a node table of
// 100k and 500k BLF-shaped rows, on PostgreSQL and MariaDB behind the local Data API server:
//   shipped  = the store as it was (LIKE scan in id order, keyset pages of 59 rows) - the baseline
//   scan     = this store without the peer index (byte-sized pages, same LIKE predicate)
//   indexed  = this store with the peer index (`kwc db migrate`)
// The table is filled once per engine inside the database (generate_series / sequence tables) and
// grown from 100k to 500k in place; the index is added and dropped in place (its build is timed).
// Kamailio is a stand-in that reports no connection (every tab is dead): the wall time of a batch
// is its DB work. Prints a table and, last, one JSON document.
//   npm run bench:fleet-scale -- [--engines postgres,mysql] [--sizes 100000,500000] [--runs 3] [--no-baseline] [--indexed-only]
import { parseArgs } from "node:util";
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import { dataApiPeerIndexPort } from "#adapters/peer-index.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import type { FleetConfig } from "#core/fleet.ts";
import { migratePeerIndex, unmigratePeerIndex } from "#core/peer-index-migration.ts";
import type { NodeScope, WatcherCriteria, WatcherRow, WatcherStore } from "#core/ports.ts";
import { selectCandidatesStatement } from "#core/watcher-sql.ts";
import { createWorker } from "#core/worker.ts";
import { defaultTargets } from "../local/dataapi/config.ts";
import { startDataApiServer } from "../local/dataapi/server.ts";
import { BLF_SOCKET, blfPeer, fillBlf } from "../test/helpers/blf.ts";
import { localDataApiClient, testDbConfig } from "../test/helpers/dataapi.ts";
import { createTestDb, type Engine } from "../test/helpers/db.ts";
import { FakeKamailio, nodeConfig, RecordingSink } from "../test/helpers/fakes.ts";

const { values: args } = parseArgs({
  options: {
    engines: { type: "string", default: "postgres,mysql" },
    sizes: { type: "string", default: "100000,500000" },
    runs: { type: "string", default: "3" },
    "no-baseline": { type: "boolean", default: false },
    "indexed-only": { type: "boolean", default: false },
  },
});
const ENGINES = (args.engines ?? "").split(",") as Engine[];
const SIZES = (args.sizes ?? "").split(",").map(Number);
const RUNS = Number(args.runs);
const KEYS_PER_PEER = 100;
const TABS = 10;
const TABLE = "aw_fleet";

/** The store as shipped before the peer index: the LIKE scan in id order, pages of 59 rows. */
class ShippedStore extends DataApiWatcherStore {
  override async selectCandidates(scope: NodeScope, criteria: WatcherCriteria): Promise<WatcherRow[]> {
    return this.executor.readPaged((after, limit) =>
      selectCandidatesStatement(this.dialect, scope, criteria, after, limit),
    );
  }
}

const node = nodeConfig("fleet-1", { socketInfo: [BLF_SOCKET], watchersTable: TABLE, contactStyle: "auto" });

const BOOT = "1795621085-9f3a61c2";
const AT = 1_795_621_085;
/** The node answers status with the events' boot and lists no connection. */
const deadNode = new FakeKamailio().serve(node.id, { status: { boot: BOOT } });

interface Row {
  engine: Engine;
  rows: number;
  path: "shipped" | "scan" | "indexed";
  /** The store's calls (select + delete): the DB work. */
  dbMsMedian: number;
  dbMsMax: number;
  /** The whole batch (parse, plan, DB, TS re-check, refreshes to the stand-in). */
  batchMsMedian: number;
  dataApiCalls: number;
  deleted: number;
}

/** Sums the wall time of the store's calls (the batch's DB work, Data API round trips included). */
function timed(store: DataApiWatcherStore): { store: WatcherStore; ms: () => number } {
  let ms = 0;
  const wrap =
    <A extends unknown[], R>(f: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      const t = performance.now();
      try {
        return await f(...a);
      } finally {
        ms += performance.now() - t;
      }
    };
  return {
    store: {
      selectCandidates: wrap(store.selectCandidates.bind(store)),
      selectByPresentity: wrap(store.selectByPresentity.bind(store)),
      deleteWatchers: wrap(store.deleteWatchers.bind(store)),
      findWatchingScopes: wrap(store.findWatchingScopes.bind(store)),
    },
    ms: () => ms,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function benchEngine(engine: Engine, out: Row[], builds: Record<string, number>) {
  const db = await createTestDb(engine, "fleet");
  const server = await startDataApiServer({ targets: defaultTargets(), statementTimeoutMs: 120_000 });
  const rds = localDataApiClient(server.endpoint);
  const fleet: FleetConfig = {
    version: 1,
    database: testDbConfig(db),
    notifyFailureCodes: [481],
    nodes: [node],
  };
  let nextPeer = 0;
  try {
    await db.createNodeTable(TABLE);
    let filled = 0;
    for (const size of SIZES) {
      const t0 = performance.now();
      await fillBlf(db, TABLE, { from: filled, count: size - filled, keysPerPeer: KEYS_PER_PEER });
      console.error(
        `${engine}: filled ${filled} -> ${size} rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
      filled = size;
      const peers = size / KEYS_PER_PEER;
      const batch = (path: Row["path"], inner: DataApiWatcherStore) => async () => {
        const store = timed(inner);
        // 10 tabs spread over the table, never used before (their rows are deleted by the run).
        const tabs = Array.from({ length: TABS }, (_, j) =>
          blfPeer((j * Math.floor(peers / TABS) + nextPeer) % peers),
        );
        nextPeer++;
        const worker = createWorker({
          fleet: async () => fleet,
          storeFor: () => store.store,
          kamailio: deadNode,
          dlq: new RecordingSink(),
          telemetry: memoryTelemetry().telemetry,
          // The events' own clock: the fixed `at` stays inside the worker's freshness window.
          now: () => AT * 1000 + 5000,
        });
        const events = tabs.map((peer) => ({
          type: "connection.closed",
          node: node.id,
          boot: BOOT,
          peer,
          transport: "ws",
          cause: "tcp:reset",
          at: AT,
        }));
        const before = server.stats.calls;
        const t = performance.now();
        const r = await worker([{ messageId: "m1", body: JSON.stringify({ v: 1, events }) }]);
        // A figure from a batch that deleted the wrong number of rows measures nothing.
        if (r.deleted !== TABS * KEYS_PER_PEER)
          throw new Error(
            `${path}: the batch deleted ${r.deleted} rows, not ${TABS * KEYS_PER_PEER} (--sizes too small for distinct tabs, or events ignored)`,
          );
        return {
          ms: performance.now() - t,
          db: store.ms(),
          calls: server.stats.calls - before,
          deleted: r.deleted,
          path,
        };
      };
      const measure = async (path: Row["path"], runs: number) => {
        const store =
          path === "shipped"
            ? new ShippedStore(rds, fleet.database)
            : new DataApiWatcherStore(rds, fleet.database);
        await store.peerIndex.hasValidIndex(TABLE); // a warm worker knows it already
        const results = [];
        for (let i = 0; i < runs; i++) results.push(await batch(path, store)());
        const row: Row = {
          engine,
          rows: size,
          path,
          dbMsMedian: Math.round(median(results.map((r) => r.db))),
          dbMsMax: Math.round(Math.max(...results.map((r) => r.db))),
          batchMsMedian: Math.round(median(results.map((r) => r.ms))),
          dataApiCalls: median(results.map((r) => r.calls)),
          deleted: median(results.map((r) => r.deleted)),
        };
        out.push(row);
        console.error(JSON.stringify(row));
      };
      if (!args["no-baseline"] && !args["indexed-only"]) await measure("shipped", 1);
      if (!args["indexed-only"]) await measure("scan", RUNS);
      const port = dataApiPeerIndexPort(rds, fleet.database, TABLE, (s) =>
        new DataApiWatcherStore(rds, fleet.database).executor.execute(s),
      );
      const tb = performance.now();
      await migratePeerIndex(port, engine, TABLE);
      builds[`${engine}@${size}`] = Math.round(performance.now() - tb);
      await db.query(engine === "postgres" ? `ANALYZE ${TABLE}` : `ANALYZE TABLE ${TABLE}`);
      await measure("indexed", RUNS);
      await unmigratePeerIndex(port, engine, TABLE);
    }
  } finally {
    rds.destroy();
    await server.close();
    await db.drop();
  }
}

const results: Row[] = [];
const builds: Record<string, number> = {};
for (const engine of ENGINES) await benchEngine(engine, results, builds);

console.log(
  "\nDB work per batch of 10 dead BLF tabs (1,000 rows deleted), median of runs; Data API calls per batch\n",
);
console.log(
  `${"engine".padEnd(9)}${"rows".padStart(8)}  ${"path".padEnd(8)}${"DB ms".padStart(8)}${"max".padStart(8)}${"batch ms".padStart(10)}${"calls".padStart(7)}${"deleted".padStart(9)}`,
);
for (const r of results)
  console.log(
    `${r.engine.padEnd(9)}${String(r.rows).padStart(8)}  ${r.path.padEnd(8)}${String(r.dbMsMedian).padStart(8)}${String(r.dbMsMax).padStart(8)}${String(r.batchMsMedian).padStart(10)}${String(r.dataApiCalls).padStart(7)}${String(r.deleted).padStart(9)}`,
  );
console.log("\nindex build (kwc db migrate), ms:", JSON.stringify(builds));
console.log(
  JSON.stringify({
    bench: "fleet-scale",
    runs: RUNS,
    tabs: TABS,
    keysPerPeer: KEYS_PER_PEER,
    results,
    indexBuildMs: builds,
  }),
);
