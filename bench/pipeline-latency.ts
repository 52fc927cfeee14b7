/**
 * How long the surviving watchers live on a stale state after a tab dies, measured LOCALLY with
 * the settings the stack ships (infra/event-source-settings.ts) and the shipped cfg. Three paths,
 * interleaved death by death in one run:
 *   (a) the full local pipeline: Kamailio → ingest → SQS (fauxqs) → poller → worker → Data API
 *       → JSON-RPC refresh;
 *   (b) the baseline: the same worker module called in-process on the ingest's POST (no SQS, no
 *       poll);
 *   (c) Kamailio alone (the ingest drops the events): the survivors starve, reported as such.
 * Two figures per death:
 *   - death → stale row deleted: from the RST to the row's DELETE arriving on this process's
 *     PostgreSQL LISTEN socket (an AFTER DELETE trigger's pg_notify, delivered at commit);
 *   - PUBLISH → every survivor holds the new state: a PUBLISH sent while the dead row exists, the
 *     dead row first in Kamailio's scan order (5.6.3's NOTIFY loop stops there, GH #4118), until
 *     the last survivor's NOTIFY carrying the new state arrives on its socket.
 * Times are taken when the packet arrives (socket callbacks, no polling). Deaths happen at random
 * times (0-200 ms after the previous one settled). Kamailio alone is judged with an OPTIONS
 * barrier (everything Kamailio sent before the reply has arrived), not a timeout.
 * Also measures Kamailio's CPU (idle, and per death while loaded) and the POSTs a mass disconnect
 * costs. Prints p50/p95/max and the ratios; no assertion (figures, not a test).
 *
 *   npx tsx bench/pipeline-latency.ts [deaths=200] [--survivors 3] [--mass 500]
 *        [--batching-window SECONDS] [--trace]
 *
 * --batching-window overrides the deployed window (0) to show what one costs; --trace (or
 * KWC_TRACE=1) prints where path (a)'s time goes, stage by stage (local/trace.ts).
 * PostgreSQL only (LISTEN/NOTIFY timestamps the delete). Uses a throwaway database
 * (kwc_bench_*); needs the project's DB instances (`bash scripts/db.sh start all`).
 */
import { randomUUID } from "node:crypto";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { SipWsClient as Client, Notify } from "../test/helpers/sip-ws-client.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    survivors: { type: "string", default: "3" },
    mass: { type: "string", default: "500" },
    "batching-window": { type: "string" },
    trace: { type: "boolean", default: false },
  },
});
// The trace switch is read when the local modules load: set it before importing them.
if (values.trace) process.env.KWC_TRACE = "1";

const pg = (await import("pg")).default;
const { WORKER_EVENT_SOURCE } = await import("../infra/event-source-settings.ts");
const { INGEST_NODE_ATTRIBUTE } = await import("#core/ingest-identity.ts");
const { toRecord } = await import("../local/poller.ts");
const { LOCAL_REGION } = await import("../local/sqs.ts");
const { startLocalStack } = await import("../local/stack.ts");
const { preciseNow, takeMarks, TRACE_ENABLED } = await import("../local/trace.ts");
const { createTestDb, DB_HOST, KAMAILIO_PASSWORD, KAMAILIO_USER, makeNotifiedFirst, PG_PORT } = await import(
  "../test/helpers/db.ts"
);
const { pidfBody, SipWsClient } = await import("../test/helpers/sip-ws-client.ts");

const deathsPerPath = Number(positionals[0] ?? 200);
const survivorCount = Number(values.survivors);
const massSize = Number(values.mass);
const windowSeconds =
  values["batching-window"] === undefined
    ? WORKER_EVENT_SOURCE.maxBatchingWindowSeconds
    : Number(values["batching-window"]);
/** Only a hang guard: a figure that never comes is counted as missing, never waited for twice. */
const HANG_GUARD_MS = 30_000;
/** (c) only: how long a NOTIFY that lost the race with the OPTIONS reply is still waited for. */
const LATE_NOTIFY_MS = 1_000;
const PRESENTITY = "sip:bench@example.com";
/** How the tab dies: a page kill (the TCP connection is closed under the WebSocket, no close frame). */
const DEATH = "terminate" as const;

type PathId = "a" | "b" | "c";
const PATHS: Record<PathId, string> = {
  a: "(a) local pipeline, deployed settings",
  b: "(b) worker in-process on the event",
  c: "(c) Kamailio alone",
};

interface Trial {
  path: PathId;
  diedAt: number;
  publishedAt: number;
  /** (a)/(b): death → DELETE committed; undefined when it never came. */
  deleteMs?: number;
  /** (a)/(b): PUBLISH → last survivor holding the new state. */
  stateMs?: number;
  /** The row was already gone when the PUBLISH left (the figure then is a plain NOTIFY). */
  rowGoneBeforePublish: boolean;
  /** (c): survivors without the new state after the barrier, and whether the dead row stayed. */
  starved: number;
  /** (c): survivors whose NOTIFY came after the OPTIONS barrier. */
  afterBarrier?: number;
  rowKept: boolean;
  endedAt: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the first NOTIFY matching `pred` (already arrived or arriving), or undefined on the guard. */
function nextNotify(
  client: Client,
  pred: (n: Notify) => boolean,
  guardMs = HANG_GUARD_MS,
): Promise<Notify | undefined> {
  const seen = client.notifies.find(pred);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve) => {
    const guard = setTimeout(() => {
      off();
      resolve(undefined);
    }, guardMs);
    const off = client.onNotify((n) => {
      if (!pred(n)) return;
      clearTimeout(guard);
      off();
      resolve(n);
    });
  });
}

/** Row deletions as they arrive on a LISTEN socket (callid → arrival time). */
async function listenForDeletes(database: string) {
  const arrived = new Map<string, number>();
  const waiters = new Map<string, (at: number) => void>();
  const client = new pg.Client({
    host: DB_HOST,
    port: PG_PORT,
    user: KAMAILIO_USER,
    password: KAMAILIO_PASSWORD,
    database,
  });
  await client.connect();
  client.on("notification", (msg) => {
    const at = preciseNow();
    const callId = msg.payload ?? "";
    arrived.set(callId, at);
    waiters.get(callId)?.(at);
  });
  await client.query("LISTEN kwc_bench_deleted");
  return {
    deleted(callId: string): Promise<number | undefined> {
      const at = arrived.get(callId);
      if (at !== undefined) return Promise.resolve(at);
      return new Promise((resolve) => {
        const guard = setTimeout(() => resolve(undefined), HANG_GUARD_MS);
        waiters.set(callId, (t) => {
          clearTimeout(guard);
          waiters.delete(callId);
          resolve(t);
        });
      });
    },
    close: () => client.end(),
  };
}

const TRIGGER_SQL = [
  `CREATE FUNCTION kwc_bench_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN PERFORM pg_notify('kwc_bench_deleted', OLD.callid); RETURN OLD; END $$`,
  `CREATE TRIGGER kwc_bench_deleted AFTER DELETE ON active_watchers
   FOR EACH ROW EXECUTE FUNCTION kwc_bench_deleted()`,
];

/** CPU seconds (user + system) of every process in Kamailio's process group. */
function kamailioCpuSeconds(pid: number): number {
  const ticksPerSecond = 100; // USER_HZ on Linux
  let ticks = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) !== pid) continue; // field 5: process group
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      /* the process ended meanwhile */
    }
  }
  return ticks / ticksPerSecond;
}

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)] ?? Number.NaN;
}

interface Summary {
  n: number;
  p50: number;
  p95: number;
  max: number;
}
function summarize(values: (number | undefined)[]): Summary {
  const sorted = values.filter((v): v is number => v !== undefined).sort((x, y) => x - y);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    max: sorted.at(-1) ?? Number.NaN,
  };
}
const ms = (v: number) => (Number.isNaN(v) ? "-" : `${v.toFixed(1)} ms`);

const loadAtStart = loadavg();
const stateDir = mkdtempSync(join(tmpdir(), "kwc-bench-"));
const db = await createTestDb("postgres", "bench");
for (const sql of TRIGGER_SQL) await db.query(sql);
const deletes = await listenForDeletes(db.name);
const stack = await startLocalStack({
  engine: "postgres",
  database: db.name,
  stateDir,
  nodes: 1,
  listenIps: ["127.0.0.1"],
  reconcileEveryMs: 0,
  // Production timers (WS keepalive 30 s), not the tests' 2 s.
  testTimers: false,
  batchingWindowMs: windowSeconds * 1000,
  log: () => {},
});
const node = stack.nodes[0];
const kamailio = stack.kamailios[0];
if (!node?.wsUrl || !kamailio) throw new Error("the local stack started no Kamailio node");
const wsUrl = node.wsUrl;
const kamailioPid = kamailio.pid;

/** Which path the ingest's POSTs take: the queue, the worker in-process, or nowhere. */
function route(path: PathId): void {
  if (path === "a") stack.ingest.divertTo(undefined);
  else if (path === "c") stack.ingest.divertTo(async () => {});
  else
    stack.ingest.divertTo(async (body, node) => {
      // The SQS record the queue would have made: same body, same kwc-node attribute.
      const record = toRecord(
        {
          MessageId: randomUUID(),
          ReceiptHandle: "in-process",
          Body: body,
          Attributes: { ApproximateReceiveCount: "1", SentTimestamp: String(Date.now()) },
          MessageAttributes: { [INGEST_NODE_ATTRIBUTE]: { DataType: "String", StringValue: node } },
        },
        stack.sqs.queueArn,
        LOCAL_REGION,
      );
      try {
        await stack.worker({ Records: [record] });
      } catch (error) {
        console.error(`in-process worker failed: ${(error as Error).message}`);
      }
    });
}

/** Resolves true when the ingest accepts the connection.closed of this peer port (no polling), false on the hang guard. */
function closeReported(port: number): Promise<boolean> {
  const pattern = new RegExp(`"type":"connection\\.closed"[^}]*"port":${port}[,}]`);
  return new Promise((resolve) => {
    const guard = setTimeout(() => {
      off();
      resolve(false);
    }, HANG_GUARD_MS);
    const off = stack.ingest.onAccepted((body) => {
      if (!pattern.test(body)) return;
      clearTimeout(guard);
      off();
      resolve(true);
    });
  });
}

/**
 * Makes `callId` the row Kamailio notifies first (scanned last), and checks it is. Hundreds of
 * deaths leave free slots in the heap that a no-op UPDATE may reuse, so the table is compacted
 * first (VACUUM FULL on a table of a few rows): the new tuple then lands at the end.
 */
async function putFirst(callId: string): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt > 0) await db.query("VACUUM FULL active_watchers");
    await makeNotifiedFirst(db, callId);
    const rows = await db.query<{ callid: string }>(
      "SELECT callid FROM active_watchers WHERE presentity_uri = $1 AND event = 'presence'",
      [PRESENTITY],
    );
    if (rows.at(-1)?.callid === callId) return true;
  }
  return false;
}

const trials: Trial[] = [];
let orderMisses = 0;
/** Deaths whose close never reached the ingest within the hang guard. */
let unreported = 0;
const publisher = await SipWsClient.connect(wsUrl, { user: "bench-publisher" });
if ((await publisher.publish(PRESENTITY, { body: pidfBody(PRESENTITY, "open", "initial") })) !== 200)
  throw new Error("the initial PUBLISH failed");
const survivors: Client[] = [];
for (let i = 0; i < survivorCount; i++) {
  const survivor = await SipWsClient.connect(wsUrl, { user: `survivor${i}` });
  const sub = await survivor.subscribe(PRESENTITY, { expires: 3600 });
  await nextNotify(survivor, (n) => n.callId === sub.callId);
  survivors.push(survivor);
}

/** Where the current trial is, for the stall report. */
let step = "";

async function runTrial(path: PathId, i: number): Promise<Trial> {
  step = `${path}-${i}: set-up`;
  route(path);
  // Each trial's PUBLISH is an initial one (a new publication). presence_xml puts every live
  // publication into each NOTIFY, so keep only the newest: the NOTIFY stays one tuple, as in
  // the first trial, and never grows toward Kamailio's 64 KiB message buffer.
  await db.query("DELETE FROM presentity WHERE id < (SELECT max(id) FROM presentity)");
  const tag = `state-${path}-${i}-${randomUUID().slice(0, 8)}`;
  const dying = await SipWsClient.connect(wsUrl, { user: `dying-${path}-${i}` });
  step = `${path}-${i}: subscribe`;
  const sub = await dying.subscribe(PRESENTITY, { expires: 3600 });
  await nextNotify(dying, (n) => n.callId === sub.callId);
  step = `${path}-${i}: scan order`;
  if (!(await putFirst(sub.callId))) orderMisses++;
  step = `${path}-${i}: barrier`;
  // Everything Kamailio sent so far has arrived; then a random moment.
  await Promise.all([publisher, ...survivors].map((c) => c.ping()));
  await sleep(Math.random() * 200);
  const hasState = (n: Notify) => n.body.includes(tag);
  const deleted = path === "c" ? undefined : deletes.deleted(sub.callId);
  const notified = path === "c" ? [] : survivors.map((s) => nextNotify(s, hasState));
  // (c) reads the survivors' NOTIFYs after a barrier instead (nothing to wait for there).

  step = `${path}-${i}: death`;
  const reported = closeReported(dying.localPort);
  const diedAt = preciseNow();
  await dying.die(DEATH);
  // The PUBLISH leaves once Kamailio has reported the close (its connection is gone), so its
  // NOTIFY loop meets the dead row first; the service may already be at work on the event.
  if (!(await reported)) unreported++;
  const publishedAt = preciseNow();
  const status = await publisher.publish(PRESENTITY, { body: pidfBody(PRESENTITY, "open", tag) });
  if (status !== 200) throw new Error(`PUBLISH answered ${status}`);

  step = `${path}-${i}: outcome`;
  if (path === "c") {
    // Kamailio alone: after the PUBLISH's 200 and an OPTIONS round trip per survivor, Kamailio has
    // sent what it was going to send. Its writes from different processes are not ordered on the
    // wire, though, so a NOTIFY may still follow the OPTIONS reply: those are counted, and waited
    // for up to LATE_NOTIFY_MS more.
    await Promise.all(survivors.map((s) => s.ping()));
    const afterBarrier = survivors.filter((s) => !s.notifies.some(hasState)).length;
    const arrivals = await Promise.all(survivors.map((s) => nextNotify(s, hasState, LATE_NOTIFY_MS)));
    const rows = await db.query<{ n: string }>(
      "SELECT count(*) AS n FROM active_watchers WHERE callid = $1",
      [sub.callId],
    );
    await db.query("DELETE FROM active_watchers WHERE callid = $1", [sub.callId]);
    dying.close();
    return {
      path,
      diedAt,
      publishedAt,
      ...(arrivals.every((n) => n !== undefined) && {
        stateMs: Math.max(...arrivals.map((n) => n?.receivedAt ?? Number.NaN)) - publishedAt,
      }),
      starved: arrivals.filter((n) => n === undefined).length,
      afterBarrier,
      rowKept: Number(rows[0]?.n) === 1,
      rowGoneBeforePublish: false,
      endedAt: preciseNow(),
    };
  }
  const deletedAt = await deleted;
  const arrivals = await Promise.all(notified);
  const complete = arrivals.every((n) => n !== undefined);
  const last = Math.max(...arrivals.map((n) => n?.receivedAt ?? Number.NaN));
  dying.close();
  return {
    path,
    diedAt,
    publishedAt,
    ...(deletedAt !== undefined && { deleteMs: deletedAt - diedAt }),
    ...(complete && { stateMs: last - publishedAt }),
    rowGoneBeforePublish: deletedAt !== undefined && deletedAt < publishedAt,
    starved: arrivals.filter((n) => n === undefined).length,
    rowKept: deletedAt === undefined,
    endedAt: preciseNow(),
  };
}

/** A trial that takes over a minute is stuck somewhere the hang guards do not cover: say where. */
async function withWatchdog<T>(trial: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`trial stuck for 60 s at ${step}`)), 60_000);
  });
  try {
    return await Promise.race([trial, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

/** Mass disconnect through path (a): POSTs, events per POST, POSTs per second, Kamailio CPU. */
async function massDisconnect(size: number) {
  route("a");
  const clients: Client[] = [];
  for (let i = 0; i < size; i++) clients.push(await SipWsClient.connect(wsUrl, { user: `mass${i}` }));
  const ports = new Set(clients.map((c) => String(c.localPort)));
  let posts = 0;
  let lastPostAt = 0;
  let reported = 0;
  const allReported = new Promise<void>((resolve) => {
    const off = stack.ingest.onAccepted((body) => {
      const mine = [...body.matchAll(/"type":"connection\.closed"[^}]*"port":(\d+)/g)].filter((m) =>
        ports.has(m[1] ?? ""),
      );
      if (mine.length === 0) return;
      posts++;
      lastPostAt = preciseNow();
      reported += mine.length;
      if (reported < size) return;
      off();
      resolve();
    });
  });
  const cpuBefore = kamailioCpuSeconds(kamailioPid);
  const started = preciseNow();
  for (const c of clients) await c.die("rst");
  await Promise.race([allReported, sleep(HANG_GUARD_MS)]);
  const drainedMs = lastPostAt - started;
  for (const c of clients) c.close();
  return { posts, reported, drainedMs, cpu: kamailioCpuSeconds(kamailioPid) - cpuBefore };
}

let exitCode = 0;
try {
  // Idle CPU first: nothing connected but the bench's own clients.
  await sleep(1000);
  const idleSeconds = 20;
  const idleBefore = kamailioCpuSeconds(kamailioPid);
  await sleep(idleSeconds * 1000);
  const idleCpu = (kamailioCpuSeconds(kamailioPid) - idleBefore) / idleSeconds;

  takeMarks();
  const loadedBefore = kamailioCpuSeconds(kamailioPid);
  const loadStarted = preciseNow();
  const order: PathId[] = ["a", "b", "c"];
  for (let i = 0; i < deathsPerPath; i++) {
    for (const path of order.sort(() => Math.random() - 0.5))
      trials.push(await withWatchdog(runTrial(path, i)));
    if ((i + 1) % 25 === 0) console.error(`  … ${i + 1}/${deathsPerPath} deaths per path`);
  }
  const loadedCpu = kamailioCpuSeconds(kamailioPid) - loadedBefore;
  const loadedSeconds = (preciseNow() - loadStarted) / 1000;
  const marks = takeMarks();
  const mass = await massDisconnect(massSize);
  report({ idleCpu, loadedCpu, loadedSeconds, mass });
  if (TRACE_ENABLED) printTrace(marks, kamailio.logFile);
} catch (error) {
  console.error(error);
  for (const c of [publisher, ...survivors])
    if (c.closedWith) console.error(`${c.user}: WebSocket closed ${JSON.stringify(c.closedWith)}`);
  if (kamailio.logFile) {
    const kept = join(tmpdir(), "kwc-bench-failed-kamailio.log");
    copyFileSync(kamailio.logFile, kept);
    console.error(`Kamailio's log: ${kept}`);
  }
  exitCode = 1;
} finally {
  publisher.close();
  for (const s of survivors) s.close();
  route("a");
  await stack.stop();
  await deletes.close();
  await db.drop();
  rmSync(stateDir, { recursive: true, force: true });
}
process.exit(exitCode);

function report(cpu: {
  idleCpu: number;
  loadedCpu: number;
  loadedSeconds: number;
  mass: { posts: number; reported: number; drainedMs: number; cpu: number };
}) {
  const cpuModel = cpus()[0]?.model.trim() ?? "unknown CPU";
  console.log(
    `load average at the start ${loadAtStart.map((l) => l.toFixed(1)).join(" ")}, at the end ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} (other work on this machine slows every path)`,
  );
  console.log(
    `pipeline latency, LOCAL (${cpuModel}, ${cpus().length} cores; Kamailio 5.6.3, PostgreSQL, loopback), ` +
      `event source: batch ${WORKER_EVENT_SOURCE.batchSize}, window ${windowSeconds} s${windowSeconds === WORKER_EVENT_SOURCE.maxBatchingWindowSeconds ? " (deployed)" : " (NOT the deployed setting)"}, ` +
      `concurrency ${WORKER_EVENT_SOURCE.maxConcurrency}; ${deathsPerPath} deaths per path at random times, ${survivorCount} survivors, dead row notified first` +
      (orderMisses ? ` (${orderMisses} deaths where it could not be made first)` : "") +
      (unreported ? `; ${unreported} closes never reported within ${HANG_GUARD_MS / 1000} s` : ""),
  );
  const figures: Partial<Record<PathId, { del: Summary; state: Summary }>> = {};
  console.log(
    `  ${"path".padEnd(40)}${"death → stale row deleted".padEnd(40)}PUBLISH → every survivor has the new state`,
  );
  console.log(`  ${"".padEnd(40)}${"p50 / p95 / max".padEnd(40)}p50 / p95 / max`);
  for (const path of ["a", "b"] as const) {
    const mine = trials.filter((t) => t.path === path);
    const del = summarize(mine.map((t) => t.deleteMs));
    const state = summarize(mine.map((t) => t.stateMs));
    figures[path] = { del, state };
    const missing = (s: Summary) => (s.n < mine.length ? ` (${mine.length - s.n} missing)` : "");
    console.log(
      `  ${PATHS[path].padEnd(40)}${`${ms(del.p50)} / ${ms(del.p95)} / ${ms(del.max)}${missing(del)}`.padEnd(40)}` +
        `${ms(state.p50)} / ${ms(state.p95)} / ${ms(state.max)}${missing(state)}`,
    );
    const raced = mine.filter((t) => t.rowGoneBeforePublish).length;
    if (raced) console.log(`  ${"".padEnd(40)}(${raced} PUBLISHes left after the row was already deleted)`);
  }
  const alone = trials.filter((t) => t.path === "c");
  const kept = alone.filter((t) => t.rowKept).length;
  const starved = alone.reduce((n, t) => n + t.starved, 0);
  const aloneState = summarize(alone.map((t) => t.stateMs));
  const late = alone.reduce((n, t) => n + (t.afterBarrier ?? 0), 0);
  console.log(
    `  ${PATHS.c.padEnd(40)}${`never: ${kept}/${alone.length} dead rows kept`.padEnd(40)}` +
      `${ms(aloneState.p50)} / ${ms(aloneState.p95)} / ${ms(aloneState.max)}`,
  );
  console.log(
    `  ${"".padEnd(40)}(5.6.3's PUBLISH loop goes on past the dead row; of ${alone.length * survivorCount} survivor NOTIFYs ` +
      `${late} came after the OPTIONS barrier, ${starved} not within ${LATE_NOTIFY_MS} ms more: starved)`,
  );
  const a = figures.a;
  const b = figures.b;
  if (a && b) {
    const ratio = (x: number, y: number) => `${(x / y).toFixed(2)}×`;
    console.log(
      `  ratios (a)/(b): deleted p50 ${ratio(a.del.p50, b.del.p50)}, p95 ${ratio(a.del.p95, b.del.p95)}; ` +
        `new state p50 ${ratio(a.state.p50, b.state.p50)}, p95 ${ratio(a.state.p95, b.state.p95)}; ` +
        `new state (a)/(c): p50 ${ratio(a.state.p50, aloneState.p50)}, p95 ${ratio(a.state.p95, aloneState.p95)}`,
    );
    const goal = (ok: boolean) => (ok ? "met" : "MISSED");
    console.log(
      `  goals: (a) p50 ≤ 1.5× (b): deleted ${goal(a.del.p50 <= 1.5 * b.del.p50)}, new state ${goal(a.state.p50 <= 1.5 * b.state.p50)}; ` +
        `(a) p95 ≤ 60 ms: deleted ${goal(a.del.p95 <= 60)}, new state ${goal(a.state.p95 <= 60)}`,
    );
  }
  console.log(
    `  Kamailio CPU: idle ${(cpu.idleCpu * 100).toFixed(2)} % of one core; during the deaths ${((cpu.loadedCpu / cpu.loadedSeconds) * 100).toFixed(2)} % ` +
      `(${((cpu.loadedCpu * 1000) / trials.length).toFixed(2)} ms CPU per death, all processes)`,
  );
  console.log(
    `  mass disconnect of ${massSize} (RST, path a)${cpu.mass.reported < massSize ? ` (only ${cpu.mass.reported} reported!)` : ""}: ${cpu.mass.posts} POSTs (${(massSize / Math.max(1, cpu.mass.posts)).toFixed(1)} events per POST), ` +
      `${((cpu.mass.posts * 1000) / cpu.mass.drainedMs).toFixed(0)} POSTs/s, drained in ${cpu.mass.drainedMs.toFixed(0)} ms, Kamailio CPU ${(cpu.mass.cpu * 1000).toFixed(0)} ms`,
  );
}

/**
 * Path (a)'s time, stage by stage: for each death, the first mark of each stage between the death
 * and the trial's end, as an offset from the death; printed as medians in pipeline order.
 */
function printTrace(marks: { at: number; stage: string; detail?: string }[], logFile: string | undefined) {
  const all = [...marks, ...kamailioMarks(logFile)].sort((x, y) => x.at - y.at);
  const offsets = new Map<string, number[]>();
  for (const t of trials.filter((x) => x.path === "a")) {
    const firsts = new Map<string, number>();
    const seen = new Map<string, number>();
    for (const m of all) {
      if (m.at < t.diedAt || m.at > t.endedAt) continue;
      const base = m.detail ? `${m.stage} (${m.detail})` : m.stage;
      const k = (seen.get(base) ?? 0) + 1;
      seen.set(base, k);
      if (k <= 3) firsts.set(k === 1 ? base : `${base} #${k}`, m.at - t.diedAt);
    }
    if (t.deleteMs !== undefined) firsts.set("row deleted (LISTEN socket)", t.deleteMs);
    firsts.set("PUBLISH sent", t.publishedAt - t.diedAt);
    if (t.stateMs !== undefined)
      firsts.set("last survivor NOTIFY on the wire", t.publishedAt - t.diedAt + t.stateMs);
    for (const [key, offset] of firsts) offsets.set(key, [...(offsets.get(key) ?? []), offset]);
  }
  const rows = [...offsets.entries()]
    .map(([key, list]) => ({
      key,
      n: list.length,
      p50: percentile(
        list.sort((x, y) => x - y),
        50,
      ),
    }))
    .filter((r) => r.n >= trials.length / 6)
    .sort((x, y) => x.p50 - y.p50);
  console.log(
    "trace, path (a): median offset from the death of each stage's 1st (2nd, 3rd: #2, #3) mark in the death's window",
  );
  let previous = 0;
  for (const r of rows) {
    console.log(
      `  ${r.key.padEnd(58)} +${r.p50.toFixed(2).padStart(8)} ms  (Δ ${(r.p50 - previous).toFixed(2)} ms, n=${r.n})`,
    );
    previous = r.p50;
  }
}

/** The cfg's KWC_TRACE lines: enqueue, POST start and end (Kamailio's wall clock, µs). */
function kamailioMarks(logFile: string | undefined): { at: number; stage: string; detail?: string }[] {
  if (!logFile) return [];
  const out: { at: number; stage: string; detail?: string }[] = [];
  for (const line of readFileSync(logFile, "utf8").split("\n")) {
    const enq = /kwc-trace: enqueued (\S+) .* at=(\d+\.\d+)/.exec(line);
    if (enq) out.push({ at: Number(enq[2]) * 1000, stage: "kamailio enqueued", detail: enq[1] });
    const post = /kwc-trace: posted rc=\d+ start=(\d+\.\d+) end=(\d+\.\d+) body=(.*)/.exec(line);
    if (post) {
      const types = [...new Set([...(post[3] ?? "").matchAll(/"type":"([^"]+)"/g)].map((m) => m[1]))].join(
        "+",
      );
      out.push({ at: Number(post[1]) * 1000, stage: "kamailio POST start", detail: types });
      out.push({ at: Number(post[2]) * 1000, stage: "kamailio POST answered", detail: types });
    }
  }
  return out;
}
