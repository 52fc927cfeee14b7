// Fault tests through the local pipeline (issue 18), on PostgreSQL: the embedded SQS with its
// redrive policy, the local poller (Lambda's semantics, one invocation at a time), the worker's
// real handler, the local Data API server reaching the project's database through a TCP proxy
// (test/helpers/fault-pipeline.ts), and a seeded world's events (test/helpers/watcher-world.ts).
// Every run ends with the exact row set of the world's rules, which replay.test.ts shows is the
// fault-free in-order run's; 0 live rows deleted.
//   - Data API faults: visibility 1 s, maxReceiveCount 4, 3 records per invocation; before each invocation a seeded draw arms
//     one fault (Aurora resuming, statement timeout, unavailable, dropped connection) unless a
//     record of the batch is on its last receive, so no message fails maxReceiveCount times.
//   - Database unreachable, short: visibility 2 s, maxReceiveCount 3 (redrive after 2 × 2 = 4 s);
//     the link is cut for 2.5 s while events flow: nothing lost, nothing dead-lettered.
//   - Database unreachable, 30 s: visibility 5 s, maxReceiveCount 5 (4 × 5 = 20 s < 30 s): every
//     message is dead-lettered with its reason (the transient fault logged for its id), and a
//     redrive after recovery cleans everything. Both engines: npm run bench:reliability-faults.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { faultKinds } from "../../../local/dataapi/faults.ts";
import { createTestDb, type TestDb } from "../../helpers/db.ts";
import { type FaultPipeline, startFaultPipeline } from "../../helpers/fault-pipeline.ts";
import {
  buildWorld,
  expectedSurvivors,
  loadRows,
  messagesOf,
  rowIds,
  seededRandom,
  type World,
} from "../../helpers/watcher-world.ts";

const TABLES = ["aw_rn", "aw_ra"];
let db: TestDb;
let pipe: FaultPipeline | undefined;

beforeAll(async () => {
  db = await createTestDb("postgres", "faults");
  for (const t of TABLES) await db.createNodeTable(t);
});
afterEach(async () => {
  await pipe?.close();
  pipe = undefined;
});
afterAll(async () => {
  await db?.drop();
});

async function leftRows() {
  const out = new Map<string, number[]>();
  for (const t of TABLES) out.set(t, await rowIds(db, t));
  return out;
}

function worldOf(seed: number, peers: number): World {
  return buildWorld(seed, peers, Math.floor(Date.now() / 1000) - 60);
}

/** Messages whose transient fault was logged with a detail: the reason a dead-lettered one failed. */
function transientReasons(p: FaultPipeline): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of p.tel.logs)
    if (/transient fault/.test(l.message))
      for (const id of (l.data?.messageIds as string[] | undefined) ?? [])
        out.set(id, String(l.data?.detail));
  return out;
}

describe("fault tests through the local pipeline (PostgreSQL)", () => {
  it("Data API faults, seeded, never maxReceiveCount in a row (visibility 1 s, maxReceiveCount 4): the fault-free run's rows", {
    timeout: 90_000,
  }, async () => {
    const world = worldOf(4_001, 60);
    const messages = messagesOf(world.events, 10, "df");
    const expected = expectedSurvivors(world);
    // The fault-free run through the same pipeline first.
    await loadRows(db, TABLES, world.rows);
    pipe = await startFaultPipeline({
      db,
      world,
      visibilityTimeoutSeconds: 1,
      maxReceiveCount: 4,
      batchSize: 3,
    });
    await pipe.send(messages);
    await pipe.drained(30_000);
    const faultFree = await leftRows();
    expect(faultFree).toEqual(expected);
    await pipe.close();

    await loadRows(db, TABLES, world.rows);
    const r = seededRandom(4_002);
    let armed = 0;
    pipe = await startFaultPipeline({
      db,
      world,
      visibilityTimeoutSeconds: 1,
      maxReceiveCount: 4,
      batchSize: 3,
      beforeInvoke: (maxRc) => {
        if (maxRc < 4 && r.next() < 0.5) {
          armed++;
          pipe?.server.faults.failNext(1, r.pick(faultKinds));
        }
      },
      afterInvoke: () => pipe?.server.faults.clear(),
    });
    const p = pipe;
    await p.send(messages);
    await p.drained(60_000);
    const injected = p.server.faults.injected.length;
    expect(injected).toBeGreaterThan(0);
    expect(await p.takeDlq()).toEqual([]);
    expect(p.rejected).toEqual([]);
    expect(await leftRows()).toEqual(faultFree);
    const maxRc = Math.max(...p.deliveries.map((d) => d.receiveCount));
    expect(maxRc).toBeLessThanOrEqual(4); // a 4th receive happens, and it is never armed
    const kinds = Object.fromEntries(
      faultKinds.map((k) => [k, p.server.faults.injected.filter((f) => f.kind === k).length]),
    );
    console.log(
      `Data API faults: ${world.events.length} events in ${messages.length} messages, ${armed} armed, ${injected} injected ${JSON.stringify(kinds)}, ${p.deliveries.length} deliveries, highest receive count ${maxRc}, DLQ 0, rows = fault-free run`,
    );
  });

  it("database unreachable for 2.5 s while events flow (visibility 2 s, maxReceiveCount 3): nothing lost, nothing dead-lettered", {
    timeout: 90_000,
  }, async () => {
    const world = worldOf(4_101, 60);
    const messages = messagesOf(world.events, 10, "short");
    await loadRows(db, TABLES, world.rows);
    pipe = await startFaultPipeline({ db, world, visibilityTimeoutSeconds: 2, maxReceiveCount: 3 });
    const p = pipe;
    const half = Math.floor(messages.length / 2);
    await p.send(messages.slice(0, half));
    p.proxy.cut();
    const cutAt = Date.now();
    await p.send(messages.slice(half));
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // the outage itself
    p.proxy.restore();
    const outageMs = Date.now() - cutAt;
    await p.drained(60_000);
    expect(await p.takeDlq()).toEqual([]);
    expect(await leftRows()).toEqual(expectedSurvivors(world));
    const failedDuringOutage = transientReasons(p).size;
    expect(failedDuringOutage).toBeGreaterThan(0); // control: the outage did fail batches
    console.log(
      `short outage: ${world.events.length} events in ${messages.length} messages, link cut ${outageMs} ms (< 2 s × (3 − 1) = 4 s), ${failedDuringOutage} messages failed transiently and were retried, ${p.proxy.refused} connections reset, DLQ 0, rows as expected`,
    );
  });

  it("database unreachable for 30 s (visibility 5 s, maxReceiveCount 5): dead-lettered with a reason, a redrive after recovery cleans everything", {
    timeout: 120_000,
  }, async () => {
    const world = worldOf(4_201, 40);
    const messages = messagesOf(world.events, 10, "long");
    await loadRows(db, TABLES, world.rows);
    pipe = await startFaultPipeline({ db, world, visibilityTimeoutSeconds: 5, maxReceiveCount: 5 });
    const p = pipe;
    p.proxy.cut();
    const cutAt = Date.now();
    await p.send(messages);
    await new Promise((resolve) => setTimeout(resolve, 30_000)); // the outage itself
    p.proxy.restore();
    const outageMs = Date.now() - cutAt;
    await p.drained(30_000);
    const dead = await p.takeDlq();
    expect(dead).toHaveLength(messages.length);
    const reasons = transientReasons(p);
    for (const m of dead) expect(reasons.get(m.messageId), m.messageId).toMatch(/\S/);
    expect(await leftRows()).not.toEqual(expectedSurvivors(world)); // control: nothing was cleaned yet
    await p.redrive(dead);
    await p.drained(30_000);
    expect(await p.takeDlq()).toEqual([]);
    expect(await leftRows()).toEqual(expectedSurvivors(world));
    console.log(
      `long outage: ${world.events.length} events in ${messages.length} messages, link cut ${outageMs} ms (> 5 s × (5 − 1) = 20 s), ${dead.length} dead-lettered, each with its reason (e.g. ${JSON.stringify([...reasons.values()][0])}), redrive after recovery: DLQ 0, rows as expected`,
    );
  });
});
