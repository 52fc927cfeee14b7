// Soak bench for replay and order (issue 18, docs/reliability.md): the CI test's rounds
// (test/helpers/replay-run.ts) at full size on each engine, 10 rounds (≥ 10,000 events) per engine
// by default. Each round: a seeded world on a nated and an alias node, run in order, then every
// message twice and shuffled; the exact row sets must match the world's rules and each other.
//   npm run bench:reliability-replay            (KWC_REPLAY_ROUNDS=10, KWC_REPLAY_PEERS=220)
import { defaultTargets } from "../local/dataapi/config.ts";
import { startDataApiServer } from "../local/dataapi/server.ts";
import { localDataApiClient } from "../test/helpers/dataapi.ts";
import { createTestDb, type Engine } from "../test/helpers/db.ts";
import { REPLAY_TABLES, type RoundResult, replayRound, replayTotals } from "../test/helpers/replay-run.ts";

const ROUNDS = Number(process.env.KWC_REPLAY_ROUNDS ?? 10);
const PEERS = Number(process.env.KWC_REPLAY_PEERS ?? 220);

const server = await startDataApiServer({ targets: defaultTargets(), statementTimeoutMs: 10_000 });
const client = localDataApiClient(server.endpoint);
let failures = 0;
try {
  for (const engine of ["postgres", "mysql"] as Engine[]) {
    const db = await createTestDb(engine, "benchreplay");
    try {
      for (const t of REPLAY_TABLES) await db.createNodeTable(t);
      const rounds: RoundResult[] = [];
      let mismatches = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const r = await replayRound(db, client, 18_000 + round * 7, PEERS);
        for (const table of REPLAY_TABLES) {
          const want = JSON.stringify(r.expected.get(table));
          if (
            JSON.stringify(r.inOrder.left.get(table)) !== want ||
            JSON.stringify(r.replay.left.get(table)) !== want
          )
            mismatches++;
        }
        rounds.push(r);
      }
      const t = { ...replayTotals(rounds), mismatches };
      failures += t.mismatches + t.liveDeleted + t.failedMessages;
      console.log(
        `${engine}: ${t.events} events (${t.delivered} deliveries: in order once, then twice shuffled), ${t.rows} rows, ${t.deleted} deleted per run, ${t.liveRows} live rows, live deleted ${t.liveDeleted}, row-set mismatches ${t.mismatches}, failed/dead-lettered ${t.failedMessages}, ${t.ms} ms (${((t.delivered / t.ms) * 1000).toFixed(0)} events/s)`,
      );
    } finally {
      await db.drop();
    }
  }
} finally {
  client.destroy();
  await server.close();
}
process.exit(failures === 0 ? 0 : 1);
