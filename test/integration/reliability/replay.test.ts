// Replay and order (issue 18): seeded worlds (test/helpers/watcher-world.ts) through the worker
// in-process, against the project's PostgreSQL and MariaDB behind the local Data API server, with
// a fake Kamailio reporting the end-state connections (test/helpers/replay-run.ts). Each round
// runs its events once in order (each node's events, 25 per envelope, 10 envelopes per batch)
// and once with every message delivered twice (a retried POST: a new message id), shuffled across
// nodes and batches. Peers reconnect on the same ip:port (live at the end: their close events must
// delete nothing), flap, or die; events of a previous boot and notify.failed of live rows are mixed
// in. Both runs must end with exactly the row set the world's own rules give (independent of the
// service's parser): every WS row of a dead peer gone, every other row kept, 0 live rows deleted.
// Figures: 6 rounds on PostgreSQL and 4 on MariaDB, ≥ 10,000 events in all (about 1,060 per round); the
// full 10,000 on each engine is `npm run bench:reliability-replay` (the 2-core budget, docs/reliability.md).
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { createTestDb, type Engine, type TestDb } from "../../helpers/db.ts";
import { REPLAY_TABLES, type RoundResult, replayRound, replayTotals } from "../../helpers/replay-run.ts";
import { startDataApi } from "../worker/harness.ts";

const PEERS_PER_NODE = 220;
const ROUNDS: Record<Engine, number> = { postgres: 6, mysql: 4 };

describe.each<Engine>(["postgres", "mysql"])("replay and order on %s", (engine) => {
  let db: TestDb;
  let api: { server: DataApiServer; client: RDSDataClient };

  beforeAll(async () => {
    db = await createTestDb(engine, "replay");
    for (const t of REPLAY_TABLES) await db.createNodeTable(t);
    api = await startDataApi();
  });
  afterAll(async () => {
    await api?.server.close();
    await db?.drop();
  });

  it(`every message twice and shuffled, reconnects on the same peers: the in-order run's exact row sets, 0 live rows deleted (${ROUNDS[engine]} rounds)`, {
    timeout: 120_000,
  }, async () => {
    const rounds: RoundResult[] = [];
    for (let round = 0; round < ROUNDS[engine]; round++) {
      const r = await replayRound(db, api.client, 18_000 + round * 7, PEERS_PER_NODE);
      for (const t of REPLAY_TABLES) {
        expect(r.inOrder.left.get(t), `round ${round} ${t} in order`).toEqual(r.expected.get(t));
        expect(r.replay.left.get(t), `round ${round} ${t} replayed`).toEqual(r.inOrder.left.get(t));
      }
      expect(r.liveDeleted).toBe(0);
      for (const run of [r.inOrder, r.replay]) {
        expect(run.failed).toEqual([]);
        expect(run.dlq).toEqual([]);
        expect(run.deleted).toBe(r.mustGo);
        expect(run.audits).toBe(r.mustGo);
        expect(run.counts.EventsIgnoredBoot ?? 0).toBeGreaterThan(0);
      }
      rounds.push(r);
    }
    const totals = replayTotals(rounds);
    expect(totals.events).toBeGreaterThanOrEqual(ROUNDS[engine] * 1_000);
    console.log(`replay ${engine}: ${JSON.stringify(totals)}`);
  });
});
