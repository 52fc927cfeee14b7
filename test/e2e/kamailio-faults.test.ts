// Fault tests with real Kamailio 5.6.3 through the local pipeline (issue 18), PostgreSQL, one node:
// the shipped cfg (fix_nated_contact(), notifier_processes=0, KWC_QUEUE_SIZE 3, re-posts every 1 s
// up to 1,000 times, WS keepalive 30 s) → the local HTTP ingest (per-node key) → the embedded SQS
// (fauxqs) with its redrive policy → the local poller (Lambda's SQS semantics) → the worker's real
// handler → the local Data API server → the test's database; the reconciler through its real
// handler (`reconcileNow`, the timer is off). One stack for the file:
//   visibility timeout 12 s (so the function timeout is 2 s: visibility / 6, Lambda's rule),
//   maxReceiveCount 3, the worker's JSON-RPC timeout 1 s (below the function timeout, as deployed:
//   5 s against 30 s).
// Scenarios:
//   - Kamailio restarts mid-stream (new boot): the old boot's events delete nothing by themselves;
//     the reconciler removes the rows whose peer is not connected and keeps the re-subscribed one.
//     It runs first: the worker instance has not read the node's status yet (see docs/reliability.md
//     on the 30 s status cache);
//   - the ingest down while watchers die: the cfg counts the refused POSTs and keeps the events; the
//     next sweep deletes the rows; the late events delete nothing more;
//   - the cfg's queue overflowing in a mass disconnect: evictions counted by the cfg, the events that
//     got through cleaned by the worker, the sweep deletes the rest;
//   - Kamailio's JSON-RPC hanging (every Kamailio process we started stopped with SIGSTOP: the kernel
//     accepts, nothing answers): the worker times out and reports the record, the poller returns it
//     to the queue, no invocation lasts past the function timeout; after SIGCONT the redelivery
//     (visibility) deletes; nothing is dead-lettered.
// Each "deleted" has its control (the rows are there before the service acts), each scenario ends
// with the exact row set: the table before it, minus the rows of its dead watchers.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KamailioEvent } from "#core/contract.ts";
import { parseMessage } from "#core/parse.ts";
import type { InvocationResult } from "../../local/poller.ts";
import { type LocalStack, startLocalStack } from "../../local/stack.ts";
import { createTestDb, type TestDb } from "../helpers/db.ts";
import { type KamailioNode, startKamailio } from "../helpers/kamailio.ts";
import { freePort, loopbackAddress } from "../helpers/ports.ts";
import { SipWsClient, type Subscription } from "../helpers/sip-ws-client.ts";
import { randomId, waitUntil } from "../helpers/wait.ts";

const QUEUE_SIZE = 3;
const VISIBILITY_S = 12;
const FUNCTION_TIMEOUT_MS = (VISIBILITY_S * 1000) / 6;
const MAX_RECEIVE_COUNT = 3;
const RPC_TIMEOUT_MS = 1_000;
const SETTINGS = `visibility ${VISIBILITY_S} s, maxReceiveCount ${MAX_RECEIVE_COUNT}`;

let db: TestDb;
let node: KamailioNode;
let stack: LocalStack;
let stateDir: string;
let ip: string;
const clients: SipWsClient[] = [];
/** Every event the ingest queued, in order. */
const accepted: KamailioEvent[] = [];
/** Every invocation of the worker by the events queue's poller, with when it ended. */
const invocations: (InvocationResult & { endedAt: number })[] = [];

beforeAll(async () => {
  db = await createTestDb("postgres", "e2ekamfaults");
  ip = loopbackAddress();
  const ingestPort = await freePort();
  const ingestKey = randomId(48);
  node = await startKamailio({
    nodeId: "kam-faults",
    db,
    listenIp: ip,
    ingestUrl: `http://127.0.0.1:${ingestPort}/events`,
    ingestKey,
    defines: { KWC_QUEUE_SIZE: QUEUE_SIZE, KWC_POST_RETRIES: 1000, KWC_RETRY_DELAY: 1 },
  });
  stateDir = mkdtempSync(join(tmpdir(), "kwc-e2ekamfaults-"));
  stack = await startLocalStack({
    engine: "postgres",
    database: db.name,
    stateDir,
    existing: {
      statusUrl: node.statusUrl,
      rpcUrl: node.rpcUrl,
      socketInfo: node.socketInfo,
      rpcToken: node.rpcToken,
      contactStyle: "nated",
      kamailioVersion: "5.6.3",
      notifierProcesses: 0,
    },
    ingestPort,
    ingestKey,
    visibilityTimeoutSeconds: VISIBILITY_S,
    maxReceiveCount: MAX_RECEIVE_COUNT,
    workerRpcTimeoutMs: RPC_TIMEOUT_MS,
    waitTimeSeconds: 1,
    reconcileEveryMs: 0,
    onWorkerInvocation: (r) => invocations.push({ ...r, endedAt: Date.now() }),
    log: () => {},
  });
  stack.ingest.onAccepted((body) => accepted.push(...parseMessage(body).events.map((e) => e.event)));
}, 60_000);

afterAll(async () => {
  resume();
  for (const c of clients) c.close();
  await stack?.stop();
  await node?.stop();
  await db?.drop();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

async function callIds(): Promise<string[]> {
  return (await db.query<{ callid: string }>("SELECT callid FROM active_watchers ORDER BY callid")).map(
    (r) => r.callid,
  );
}
const without = (rows: string[], gone: { sub: Subscription }[]) =>
  rows.filter((id) => !gone.some((g) => g.sub.callId === id));
const counters = async () => (await node.status()).counters;
const metric = (name: string) => stack.counters.metrics[name] ?? 0;

async function watch(user: string, presentity: string): Promise<{ c: SipWsClient; sub: Subscription }> {
  const c = await SipWsClient.connect(node.wsUrl, { user, localAddress: ip });
  clients.push(c);
  const sub = await c.subscribe(presentity);
  expect(sub.status).toBe(200);
  await c.waitForNotify((n) => n.callId === sub.callId);
  return { c, sub };
}
async function watchers(prefix: string, n: number, presentity: string) {
  const out: { c: SipWsClient; sub: Subscription }[] = [];
  for (let i = 0; i < n; i++) out.push(await watch(`${prefix}${i}`, presentity));
  return out;
}
const closedFor = (port: number) =>
  accepted.filter((e) => e.type === "connection.closed" && e.peer.port === port);

/** Until the events queue holds nothing visible, in flight or delayed and no batch runs. */
async function drained(what: string): Promise<void> {
  await waitUntil(
    async () => {
      const d = await stack.sqs.depth("queue");
      return d.visible + d.inFlight + d.delayed === 0 && (stack.poller()?.stats.inFlight ?? 0) === 0;
    },
    { timeoutMs: 30_000, intervalMs: 100, what },
  );
}
async function dlqDepth(): Promise<number> {
  const d = await stack.sqs.depth("dlq");
  return d.visible + d.inFlight + d.delayed;
}

/** The reconciler once, through its handler; returns the rows it deleted. */
async function sweep(): Promise<number> {
  const before = stack.counters.reconcileDeleted;
  const errors = stack.counters.reconcileErrors;
  await stack.reconcileNow();
  expect(stack.counters.reconcileErrors).toBe(errors);
  return stack.counters.reconcileDeleted - before;
}

/** Kamailio's main process and every process it forked (all started by this file). */
function kamailioPids(): number[] {
  const main = node.pid;
  const children = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return Number(readFileSync(`/proc/${d}/stat`, "utf8").split(") ")[1]?.split(" ")[1]) === main;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [main, ...children];
}
let stopped: number[] = [];
function resume() {
  for (const pid of stopped) process.kill(pid, "SIGCONT");
  stopped = [];
}

describe(`faults with real Kamailio 5.6.3 through the local pipeline (PostgreSQL; ${SETTINGS})`, () => {
  it(`Kamailio restarts mid-stream: old-boot events delete nothing by themselves; the reconciler removes rows whose peer is gone, keeps the re-subscribed one (${SETTINGS})`, async () => {
    const p = "sip:restart@example.com";
    await stack.pauseWorker();
    const a = await watchers("rs", 3, p);
    await a[0]?.c.die("rst");
    const oldBoot = node.bootId;
    await waitUntil(() => closedFor(a[0]?.c.localPort ?? 0).length > 0, {
      timeoutMs: 15_000,
      what: "the old boot's close event queued",
    });
    await node.restart();
    expect(node.bootId).not.toBe(oldBoot);
    const back = await watch("rsback", p); // a watcher back on a new connection of the new boot
    const before = await callIds();
    expect(before).toEqual([...a.map((x) => x.sub.callId), back.sub.callId].sort()); // control
    const deletedBefore = metric("RowsDeleted");
    // The worker instance has not run yet, so its 30 s status cache holds no boot (a warm one that
    // read the old boot less than 30 s ago would take the event for current: docs/reliability.md).
    expect(invocations).toEqual([]);
    stack.resumeWorker();
    const oldBootEvents = () => accepted.filter((e) => "boot" in e && e.boot === oldBoot).length;
    await waitUntil(() => metric("EventsIgnoredBoot") >= oldBootEvents() && metric("EventsIgnoredBoot") > 0, {
      timeoutMs: 20_000,
      what: "the old boot's events ignored",
    });
    await drained("the old boot's events handled");
    expect(metric("EventsIgnoredBoot")).toBe(oldBootEvents());
    expect(metric("RowsDeleted") - deletedBefore).toBe(0);
    expect(await callIds()).toEqual(before); // the old boot's events deleted nothing
    const swept = await sweep();
    expect(swept).toBe(a.length);
    expect(await callIds()).toEqual([back.sub.callId]); // every old-boot row gone, the new one kept
    expect(await dlqDepth()).toBe(0);
    console.log(
      `restart (${SETTINGS}): ${oldBootEvents()} old-boot event(s) ignored (EventsIgnoredBoot), worker deleted 0; reconciler deleted ${swept} rows of the old boot's connections, the re-subscribed row kept; DLQ 0`,
    );
  });

  it(`the ingest down while watchers die: the cfg counts and keeps the events, the next sweep deletes their rows, the late events delete nothing (${SETTINGS})`, async () => {
    const p = "sip:ingestdown@example.com";
    const live = await watchers("idl", 2, p);
    const dead = await watchers("idd", 2, p);
    const start = await counters();
    const refused = stack.ingest.stats.unavailable;
    const table = await callIds();
    stack.ingest.setAvailable(false);
    let late: number;
    try {
      for (const d of dead) await d.c.die("rst");
      await waitUntil(
        async () =>
          (await counters()).postFailures > start.postFailures && stack.ingest.stats.unavailable > refused,
        { timeoutMs: 10_000, what: "a refused POST" },
      );
      for (const d of dead) expect(closedFor(d.c.localPort)).toEqual([]); // nothing reached SQS
      expect(await callIds()).toEqual(table); // control: the dead watchers' rows are there
      expect(await sweep()).toBe(dead.length);
      expect(await callIds()).toEqual(without(table, dead));
      const mid = await counters();
      expect(mid.droppedEnvelopes).toBe(start.droppedEnvelopes); // kept for a re-post, not dropped
      late = mid.postFailures - start.postFailures;
    } finally {
      stack.ingest.setAvailable(true);
    }
    const deletedAfterSweep = metric("RowsDeleted");
    await waitUntil(() => dead.every((d) => closedFor(d.c.localPort).length > 0), {
      timeoutMs: 15_000,
      what: "the parked events delivered",
    });
    await drained("the late events handled");
    expect(metric("RowsDeleted")).toBe(deletedAfterSweep); // the late events deleted nothing more
    expect(await callIds()).toEqual(without(table, dead));
    for (const l of live) expect(await callIds()).toContain(l.sub.callId);
    expect(await dlqDepth()).toBe(0);
    console.log(
      `ingest down (${SETTINGS}): ${dead.length} deaths, ${late} refused POSTs counted by the cfg, 0 events queued while down, sweep deleted ${dead.length}, live kept ${live.length}; the late events delivered and handled: deleted 0 more; DLQ 0`,
    );
  });

  it(`a mass disconnect overflows the cfg's queue (KWC_QUEUE_SIZE ${QUEUE_SIZE}): evictions counted, the worker cleans what arrived, the sweep the rest (${SETTINGS})`, async () => {
    const p = "sip:mass@example.com";
    const live = await watchers("ml", 2, p);
    const primer = await watch("mprimer", p);
    // Each victim on its own presentity: the worker's bounded reconcile after a refresh 500 (sync
    // mode aborts at a dead watcher) would otherwise clean the evicted ones of a shared presentity.
    const victims: { c: SipWsClient; sub: Subscription }[] = [];
    for (let i = 0; i < 8; i++) victims.push(await watch(`mv${i}`, `sip:mass${i}@example.com`));
    const dead = [primer, ...victims];
    const table = await callIds();
    const start = await counters();
    const deletedBefore = metric("RowsDeleted");
    stack.ingest.setAvailable(false);
    try {
      await primer.c.die("rst");
      await waitUntil(
        async () => (await counters()).postFailures > start.postFailures && (await counters()).pending === -1,
        { timeoutMs: 10_000, what: "the primer's envelope parked for retry" },
      );
      for (const [i, v] of victims.entries()) {
        await v.c.die("rst");
        await waitUntil(async () => (await counters()).queued === start.queued + 2 + i, {
          timeoutMs: 10_000,
          what: `victim ${i} queued`,
        });
      }
      expect(await callIds()).toEqual(table); // control: every dead watcher's row is there
    } finally {
      stack.ingest.setAvailable(true);
    }
    const evicted = (await counters()).evicted - start.evicted;
    expect(evicted).toBe(victims.length - QUEUE_SIZE);
    const arrived = () => dead.filter((d) => closedFor(d.c.localPort).length > 0);
    await waitUntil(() => arrived().length >= 1 + QUEUE_SIZE, {
      timeoutMs: 15_000,
      what: "the surviving events",
    });
    await drained("the surviving events handled");
    const lost = dead.filter((d) => !arrived().includes(d));
    expect(lost).toHaveLength(evicted);
    expect(metric("RowsDeleted") - deletedBefore).toBe(1 + QUEUE_SIZE);
    // Control for the sweep: exactly the deaths whose events were evicted are left.
    expect(await callIds()).toEqual(without(table, arrived()));
    expect(await sweep()).toBe(evicted);
    expect(await callIds()).toEqual(without(table, dead));
    for (const l of live) expect(await callIds()).toContain(l.sub.callId);
    expect(await dlqDepth()).toBe(0);
    console.log(
      `mass disconnect (${SETTINGS}): ${dead.length} deaths, queue ${QUEUE_SIZE}, ${evicted} evicted (counted by the cfg), worker deleted ${1 + QUEUE_SIZE} through the pipeline, sweep deleted ${evicted}, rows left uncleaned 0, live kept ${live.length}; DLQ 0`,
    );
  });

  it(`Kamailio's JSON-RPC hangs (SIGSTOP): the worker times out (${RPC_TIMEOUT_MS} ms) and the record comes back by visibility; no invocation lasts past the function timeout (${FUNCTION_TIMEOUT_MS} ms; ${SETTINGS})`, async () => {
    const p = "sip:hang@example.com";
    const live = await watch("hangl", p);
    const dead = await watch("hangd", p);
    const table = await callIds();
    await stack.pauseWorker();
    await dead.c.die("rst");
    await waitUntil(() => closedFor(dead.c.localPort).length > 0, {
      timeoutMs: 15_000,
      what: "the close event queued",
    });
    const first = invocations.length;
    const deletedBefore = metric("RowsDeleted");
    stopped = kamailioPids();
    for (const pid of stopped) process.kill(pid, "SIGSTOP");
    const processes = stopped.length;
    stack.resumeWorker();
    const failed = await waitUntil(() => invocations.slice(first).find((r) => r.failed > 0), {
      timeoutMs: 10_000,
      what: "the invocation that reports the record",
    });
    resume();
    const resumedAt = Date.now();
    expect(failed.error).toBeUndefined(); // the worker answered batchItemFailures itself
    expect(failed.deleted).toBe(0);
    expect(failed.durationMs).toBeLessThan(FUNCTION_TIMEOUT_MS);
    expect(metric("RowsDeleted")).toBe(deletedBefore);
    expect(await callIds()).toEqual(table); // control: nothing deleted while it hung
    await waitUntil(async () => !(await callIds()).includes(dead.sub.callId), {
      timeoutMs: (VISIBILITY_S + 10) * 1000,
      what: "the redelivery to delete the dead row",
    });
    await drained("the redelivered record handled");
    const after = invocations.slice(first);
    const retry = after.find((r) => r.failed === 0 && r.deleted > 0);
    expect(retry).toBeDefined();
    // From the first receive to the redelivery: the visibility timeout (fauxqs checks every ~100 ms).
    const startOf = (r: { endedAt: number; durationMs: number }) => r.endedAt - r.durationMs;
    const redeliveredAfterMs = startOf(retry ?? failed) - startOf(failed);
    expect(redeliveredAfterMs).toBeGreaterThanOrEqual(VISIBILITY_S * 1000 - 500);
    for (const r of after) expect(r.durationMs).toBeLessThan(FUNCTION_TIMEOUT_MS);
    expect(await callIds()).toEqual(without(table, [dead]));
    expect(await callIds()).toContain(live.sub.callId);
    expect(await dlqDepth()).toBe(0);
    console.log(
      `RPC hang (${SETTINGS}, RPC timeout ${RPC_TIMEOUT_MS} ms, function timeout ${FUNCTION_TIMEOUT_MS} ms): ${processes} Kamailio processes stopped; the worker reported the record after ${failed.durationMs} ms; SIGCONT ${resumedAt - failed.endedAt} ms later; redelivered ${redeliveredAfterMs} ms after its first receive (visibility), which deleted 1; longest invocation ${Math.max(...after.map((r) => r.durationMs))} ms; live kept; DLQ 0; the file's events through the ingest: ${accepted.length}`,
    );
  });
});
