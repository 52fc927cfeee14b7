// Replay and order, as one reusable run (issue 18): the CI test (test/integration/reliability/
// replay.test.ts) and the soak bench (bench/reliability-replay.ts) both call replayRound(). A round
// is one seeded world (test/helpers/watcher-world.ts) loaded into the node tables, run once in
// order and once with every message delivered twice and shuffled, each on a fresh worker.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import type { DlqItem } from "#core/ports.ts";
import type { InputRecord } from "#core/worker/types.ts";
import { createWorker } from "#core/worker.ts";
import { testDbConfig } from "./dataapi.ts";
import type { TestDb } from "./db.ts";
import { RecordingSink } from "./fakes.ts";
import {
  buildWorld,
  expectedSurvivors,
  fleetFor,
  kamailioOf,
  keyOf,
  liveAtEnd,
  loadRows,
  messagesOf,
  rowIds,
  runInBatches,
  seededRandom,
  type World,
} from "./watcher-world.ts";

export const REPLAY_TABLES = ["aw_rn", "aw_ra"];

async function runOnce(db: TestDb, client: RDSDataClient, world: World, records: InputRecord[]) {
  await loadRows(db, REPLAY_TABLES, world.rows);
  const fleet = fleetFor(world, testDbConfig(db));
  const tel = memoryTelemetry();
  const dlq = new RecordingSink<DlqItem>();
  const worker = createWorker({
    fleet: async () => fleet,
    storeFor: () => new DataApiWatcherStore(client, fleet.database),
    kamailio: kamailioOf(world),
    dlq,
    telemetry: tel.telemetry,
  });
  const out = await runInBatches(worker, records);
  const left = new Map<string, number[]>();
  for (const t of REPLAY_TABLES) left.set(t, await rowIds(db, t));
  return { ...out, left, counts: tel.counts, audits: tel.audits.length, dlq: dlq.items };
}

export interface RoundResult {
  events: number;
  rows: number;
  expected: Map<string, number[]>;
  inOrder: Awaited<ReturnType<typeof runOnce>>;
  replay: Awaited<ReturnType<typeof runOnce>>;
  mustGo: number;
  liveRows: number;
  liveDeleted: number;
  ms: number;
}

/** One round: `peersPerNode` peers on each of a nated and an alias node; 25 events per envelope. */
export async function replayRound(
  db: TestDb,
  client: RDSDataClient,
  seed: number,
  peersPerNode: number,
): Promise<RoundResult> {
  const started = Date.now();
  const world = buildWorld(seed, peersPerNode, Math.floor(Date.now() / 1000) - 60);
  const messages = messagesOf(world.events, 25, `r${seed}`);
  const inOrder = await runOnce(db, client, world, messages);
  const twice = seededRandom(seed + 1).shuffle([
    ...messages,
    ...messages.map((m) => ({ ...m, messageId: `${m.messageId}-again` })),
  ]);
  const replay = await runOnce(db, client, world, twice);
  const expected = expectedSurvivors(world);
  const liveKeys = new Set(
    world.nodes.flatMap((n) =>
      n.peers.filter((p) => liveAtEnd(p.fate)).map((p) => `${n.config.id} ${keyOf(p)}`),
    ),
  );
  const live = world.rows.filter(
    (w) => w.kind === "ws" && w.peer && liveKeys.has(`${w.node} ${keyOf(w.peer)}`),
  );
  const kept = (run: typeof inOrder) => new Set([...run.left.values()].flat());
  const [a, b] = [kept(inOrder), kept(replay)];
  return {
    events: world.events.length,
    rows: world.rows.length,
    expected,
    inOrder,
    replay,
    mustGo: world.rows.length - [...expected.values()].flat().length,
    liveRows: live.length,
    liveDeleted: live.filter((w) => !a.has(w.id) || !b.has(w.id)).length,
    ms: Date.now() - started,
  };
}

/** What the rounds of a replay add up to (the CI test and the soak bench print the same totals). */
export interface ReplayTotals {
  events: number;
  /** Every event once in order, then every message twice shuffled. */
  delivered: number;
  rows: number;
  /** Rows that must go, per run. */
  deleted: number;
  liveRows: number;
  liveDeleted: number;
  ignoredBoot: number;
  /** Records retried or dead-lettered, both runs. */
  failedMessages: number;
  ms: number;
}

export function replayTotals(rounds: readonly RoundResult[]): ReplayTotals {
  const t: ReplayTotals = {
    events: 0,
    delivered: 0,
    rows: 0,
    deleted: 0,
    liveRows: 0,
    liveDeleted: 0,
    ignoredBoot: 0,
    failedMessages: 0,
    ms: 0,
  };
  for (const r of rounds) {
    t.events += r.events;
    t.delivered += 3 * r.events;
    t.rows += r.rows;
    t.deleted += r.mustGo;
    t.liveRows += r.liveRows;
    t.liveDeleted += r.liveDeleted;
    t.ignoredBoot += r.replay.counts.EventsIgnoredBoot ?? 0;
    for (const run of [r.inOrder, r.replay]) t.failedMessages += run.failed.length + run.dlq.length;
    t.ms += r.ms;
  }
  return t;
}
