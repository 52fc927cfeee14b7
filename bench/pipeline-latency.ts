/**
 * WS death → survivor NOTIFY latency through the local pipeline (Kamailio tcp:reset event →
 * ingest → SQS → poller → worker → Data API → DELETE → JSON-RPC refreshWatchers → NOTIFY on the
 * survivor's WebSocket). Prints p50/p95/max; no assertion (figures, not a test).
 *
 *   npx tsx bench/pipeline-latency.ts [runs=200] [postgres|mysql]
 *
 * Uses a throwaway database (kwc_bench_*), never `kamailio`; needs the project's DB instances
 * (`bash scripts/db.sh start all`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalStack } from "../local/stack.ts";
import { createTestDb, type Engine } from "../test/helpers/db.ts";
import { SipWsClient } from "../test/helpers/sip-ws-client.ts";

const runs = Number(process.argv[2] ?? 200);
const engine = (process.argv[3] ?? "postgres") as Engine;

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)] ?? Number.NaN;
}

const db = await createTestDb(engine, "bench");
const stateDir = mkdtempSync(join(tmpdir(), "kwc-bench-"));
const stack = await startLocalStack({
  engine,
  database: db.name,
  stateDir,
  nodes: 1,
  listenIps: ["127.0.0.1"],
  visibilityTimeoutSeconds: 5,
  waitTimeSeconds: 1,
  reconcileEveryMs: 0,
  log: () => {},
});
const wsUrl = stack.nodes[0]?.wsUrl ?? "";
const latencies: number[] = [];
let failures = 0;
try {
  const presentity = "sip:bench@example.com";
  const publisher = await SipWsClient.connect(wsUrl, { user: "bench" });
  if ((await publisher.publish(presentity)) !== 200) throw new Error("PUBLISH failed");
  const survivor = await SipWsClient.connect(wsUrl, { user: "survivor" });
  const survivorSub = await survivor.subscribe(presentity, { expires: 3600 });
  await survivor.waitForNotify((n) => n.callId === survivorSub.callId);
  for (let i = 0; i < runs; i++) {
    const dying = await SipWsClient.connect(wsUrl, { user: `dying${i}` });
    const sub = await dying.subscribe(presentity);
    await dying.waitForNotify((n) => n.callId === sub.callId);
    // Everything Kamailio sent the survivor so far has arrived (the SUBSCRIBE triggered none, but be sure).
    await survivor.ping();
    const diedAt = performance.now();
    const seen = survivor.notifies.length;
    await dying.die("rst");
    try {
      await survivor.waitForNotify(
        (n) => n.callId === survivorSub.callId && survivor.notifies.indexOf(n) >= seen,
        15_000,
      );
      latencies.push(performance.now() - diedAt);
    } catch {
      failures++;
    }
  }
  publisher.close();
  survivor.close();
} finally {
  await stack.stop();
  await db.drop();
  rmSync(stateDir, { recursive: true, force: true });
}

const sorted = [...latencies].sort((a, b) => a - b);
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
console.log(
  `pipeline latency (${engine}, WS death by RST → survivor NOTIFY), ${sorted.length} runs, ${failures} without NOTIFY in 15 s:`,
);
console.log(
  `  p50 ${fmt(percentile(sorted, 50))}  p95 ${fmt(percentile(sorted, 95))}  max ${fmt(sorted.at(-1) ?? Number.NaN)}  min ${fmt(sorted[0] ?? Number.NaN)}`,
);
process.exit(0);
