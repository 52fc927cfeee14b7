// The migration is online: real Kamailio 5.6.3 (subs_db_mode=3, notifier_processes=0) keeps
// answering SUBSCRIBE (INSERT into the table) and PUBLISH (+ the NOTIFYs it sends) while
// `kwc db migrate` builds the peer index on a 60k-row BLF table, on both engines. Every transaction
// during the build completes within STALL_BOUND_MS. Control: the lock a blocking build takes
// (PostgreSQL SHARE as in a plain CREATE INDEX, MariaDB a table read lock as LOCK=SHARED),
// held for as long, stalls the same traffic past the bound, so the measurement can see a stall.
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataApiExecutor } from "#adapters/data-api-store.ts";
import { dataApiPeerIndexPort } from "#adapters/peer-index.ts";
import { migratePeerIndex } from "#core/peer-index-migration.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { fillBlf } from "../../helpers/blf.ts";
import { testDbConfig } from "../../helpers/dataapi.ts";
import { DB_HOST, type Engine, MY_PORT } from "../../helpers/db.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { startDataApi } from "../worker/harness.ts";

const ROWS = 60_000;

/** LOCK TABLES holds per connection: one connection of its own, closed afterwards. */
async function mysqlLockedFor(database: string, ms: number): Promise<void> {
  const c = await mysql.createConnection({ host: DB_HOST, port: MY_PORT, user: "root", database });
  try {
    await c.query("LOCK TABLES active_watchers READ");
    await c.query("DO SLEEP(?)", [ms / 1000]);
    await c.query("UNLOCK TABLES");
  } finally {
    await c.end();
  }
}
const STALL_BOUND_MS = 2_000;
const CONTROL_LOCK_MS = 4_000;

describe.each<{ engine: Engine; listenIp: string }>([
  { engine: "postgres", listenIp: "127.0.0.71" },
  { engine: "mysql", listenIp: "127.0.0.72" },
])("online peer-index build on $engine", ({ engine, listenIp }) => {
  let bed: NodeBed;
  let api: { server: DataApiServer };
  let executor: DataApiExecutor;

  beforeAll(async () => {
    bed = await startNodeBed(engine, "online", {
      nodeId: `online-${engine}`,
      listenIp,
      notifierProcesses: 0,
    });
    const started = await startDataApi();
    api = started;
    executor = new DataApiExecutor(started.client, testDbConfig(bed.db));
    await fillBlf(bed.db, "active_watchers", { count: ROWS });
    port = () =>
      dataApiPeerIndexPort(started.client, testDbConfig(bed.db), "active_watchers", (s) =>
        executor.execute(s),
      );
  }, 120_000);
  afterAll(async () => {
    await api?.server.close();
    await bed?.close();
  });
  let port: () => ReturnType<typeof dataApiPeerIndexPort>;

  /** SUBSCRIBE (+ its NOTIFY) and PUBLISH in a loop until `done`; the latency of each (∞: failed). */
  async function traffic(done: Promise<unknown>, tag: string): Promise<number[]> {
    const publisher = await bed.connect(`pub-${tag}`);
    const latencies: number[] = [];
    let finished = false;
    void done.finally(() => {
      finished = true;
    });
    for (let i = 0; !finished || i < 3; i++) {
      const t = performance.now();
      try {
        const w = await bed.watch(`w-${tag}-${i}`, `sip:key-${tag}@blf.example.com`);
        const published = await publisher.publish(`sip:key-${tag}@blf.example.com`);
        w.c.close();
        // A failed transaction (Kamailio answers 500 when its DB call times out) counts as a stall.
        latencies.push(published === 200 ? performance.now() - t : Number.POSITIVE_INFINITY);
      } catch {
        latencies.push(Number.POSITIVE_INFINITY);
      }
    }
    return latencies;
  }

  it("SUBSCRIBE and PUBLISH go on while the index is built", async () => {
    const build = migratePeerIndex(port(), engine, "active_watchers");
    const [latencies, result] = await Promise.all([traffic(build, "build"), build]);
    expect(result.after).toBe("valid");
    expect(latencies.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...latencies)).toBeLessThan(STALL_BOUND_MS);
  }, 120_000);

  it("control: a blocking build's lock stalls the same traffic past the bound", async () => {
    const lock =
      engine === "postgres"
        ? bed.db.query(
            `BEGIN; LOCK TABLE active_watchers IN SHARE MODE; SELECT pg_sleep(${CONTROL_LOCK_MS / 1000}); COMMIT`,
          )
        : mysqlLockedFor(bed.db.name, CONTROL_LOCK_MS);
    const latencies = await traffic(lock, "control");
    expect(Math.max(...latencies)).toBeGreaterThan(STALL_BOUND_MS);
  }, 60_000);
});
