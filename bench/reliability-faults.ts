// Soak bench for the database-outage fault tests (issue 18, docs/reliability.md) on both engines:
// the CI test (test/integration/reliability/faults.test.ts) runs these on PostgreSQL only. Per
// engine: seeded Data API faults (visibility 1 s, maxReceiveCount 4, never armed on a record's
// last receive), a short outage (2.5 s; visibility 2 s, maxReceiveCount 3) and a 30 s outage
// (visibility 5 s, maxReceiveCount 5) with a redrive after recovery, through the local pipeline
// (test/helpers/fault-pipeline.ts). Prints events, faults, dead-lettered messages and rows left.
//   npm run bench:reliability-faults            (KWC_FAULT_PEERS=120, KWC_OUTAGE_MS=30000)
import { faultKinds } from "../local/dataapi/faults.ts";
import { createTestDb, type Engine, type TestDb } from "../test/helpers/db.ts";
import { startFaultPipeline } from "../test/helpers/fault-pipeline.ts";
import {
  buildWorld,
  expectedSurvivors,
  loadRows,
  messagesOf,
  rowIds,
  seededRandom,
} from "../test/helpers/watcher-world.ts";

const PEERS = Number(process.env.KWC_FAULT_PEERS ?? 120);
const OUTAGE_MS = Number(process.env.KWC_OUTAGE_MS ?? 30_000);
const TABLES = ["aw_rn", "aw_ra"];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let failures = 0;

async function rowsLeftUncleaned(db: TestDb, world: ReturnType<typeof buildWorld>): Promise<number> {
  const expected = expectedSurvivors(world);
  let extra = 0;
  for (const t of TABLES) {
    const want = new Set(expected.get(t));
    const got = await rowIds(db, t);
    extra += got.filter((id) => !want.has(id)).length + [...want].filter((id) => !got.includes(id)).length;
  }
  return extra;
}

async function dataApiFaults(db: TestDb, seed: number) {
  const world = buildWorld(seed, PEERS, Math.floor(Date.now() / 1000) - 60);
  const messages = messagesOf(world.events, 10, "b");
  await loadRows(db, TABLES, world.rows);
  const r = seededRandom(seed + 1);
  let server: Awaited<ReturnType<typeof startFaultPipeline>>["server"] | undefined;
  const p = await startFaultPipeline({
    db,
    world,
    visibilityTimeoutSeconds: 1,
    maxReceiveCount: 4,
    batchSize: 3,
    beforeInvoke: (rc) => {
      if (rc < 4 && r.next() < 0.5) server?.faults.failNext(1, r.pick(faultKinds));
    },
    afterInvoke: () => server?.faults.clear(),
  });
  server = p.server;
  try {
    await p.send(messages);
    await p.drained(300_000);
    const dlq = (await p.takeDlq()).length;
    const left = await rowsLeftUncleaned(db, world);
    failures += dlq + left;
    return `Data API faults: ${world.events.length} events, ${p.server.faults.injected.length} faults injected, highest receive count ${Math.max(...p.deliveries.map((d) => d.receiveCount))}/4, DLQ ${dlq}, rows off ${left}`;
  } finally {
    await p.close();
  }
}

async function outage(
  db: TestDb,
  seed: number,
  outageMs: number,
  visibility: number,
  maxReceiveCount: number,
) {
  const world = buildWorld(seed, PEERS, Math.floor(Date.now() / 1000) - 60);
  const messages = messagesOf(world.events, 10, "o");
  await loadRows(db, TABLES, world.rows);
  const p = await startFaultPipeline({ db, world, visibilityTimeoutSeconds: visibility, maxReceiveCount });
  try {
    const half = Math.floor(messages.length / 2);
    await p.send(messages.slice(0, half));
    p.proxy.cut();
    await p.send(messages.slice(half));
    await sleep(outageMs);
    p.proxy.restore();
    await p.drained(300_000);
    const dead = await p.takeDlq();
    await p.redrive(dead);
    await p.drained(300_000);
    const left = await rowsLeftUncleaned(db, world);
    const bound = visibility * (maxReceiveCount - 1) * 1000;
    if (outageMs < bound && dead.length > 0) failures++;
    if (outageMs > bound && dead.length === 0) failures++;
    failures += left + (await p.takeDlq()).length;
    return `outage ${outageMs} ms (visibility ${visibility} s × (${maxReceiveCount} − 1) = ${bound} ms): ${world.events.length} events in ${messages.length} messages, ${p.proxy.refused} connections reset, ${dead.length} dead-lettered and redriven, rows left uncleaned ${left}`;
  } finally {
    await p.close();
  }
}

for (const engine of ["postgres", "mysql"] as Engine[]) {
  const db = await createTestDb(engine, "benchfaults");
  try {
    for (const t of TABLES) await db.createNodeTable(t);
    console.log(`${engine}: ${await dataApiFaults(db, 5_001)}`);
    console.log(`${engine}: ${await outage(db, 5_101, 2_500, 2, 3)}`);
    console.log(`${engine}: ${await outage(db, 5_201, OUTAGE_MS, 5, 5)}`);
  } finally {
    await db.drop();
  }
}
process.exit(failures === 0 ? 0 : 1);
