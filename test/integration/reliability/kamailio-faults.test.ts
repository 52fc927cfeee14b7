// Fault tests with real Kamailio 5.6.3 and the shipped cfg (issue 18), PostgreSQL, one node
// (fix_nated_contact(), notifier_processes=0, KWC_QUEUE_SIZE 3), the worker and the reconcile
// sweep in-process on the local Data API server with the real JSON-RPC client:
//   - the ingest down while watchers die: nothing reaches the worker; the next sweep deletes them;
//   - the cfg's queue overflowing in a mass disconnect: evictions counted by the cfg, the events
//     that survived cleaned by the worker, the sweep deletes the rest;
//   - Kamailio's JSON-RPC hanging (every Kamailio process stopped with SIGSTOP: the kernel accepts
//     the connection, nothing answers): the worker times out (RPC timeout 1 s) and reports its
//     records for retry, no batch blocks past its timeout, the retry after SIGCONT deletes;
//   - Kamailio restarting mid-stream: events of the old boot delete nothing by themselves; the
//     sweep then removes the rows whose peer is not connected, and keeps the re-subscribed one.
// Each "deleted" has its control: the rows are there before the service acts; live rows stay.
import { readdirSync, readFileSync } from "node:fs";
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KamailioRpcClient } from "#adapters/kamailio-rpc.ts";
import { DataApiReconcileStore } from "#adapters/reconcile-store.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import { CleanupRequestSchema } from "#core/cleanup-request.ts";
import type { ConnectionClosed } from "#core/contract.ts";
import type { FleetConfig } from "#core/fleet.ts";
import { runCleanup } from "#core/reconcile-sweep.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { testDbConfig } from "../../helpers/dataapi.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { loopbackAddress } from "../../helpers/ports.ts";
import { SipWsClient, type Subscription } from "../../helpers/sip-ws-client.ts";
import { waitUntil } from "../../helpers/wait.ts";
import { nodeConfigOf, startDataApi, workerFor } from "../worker/harness.ts";

const QUEUE_SIZE = 3;
const RPC_TIMEOUT_MS = 1_000;
let bed: NodeBed;
let api: { server: DataApiServer; client: RDSDataClient };
let fleet: FleetConfig;
let tokens: Map<string, string>;

beforeAll(async () => {
  bed = await startNodeBed("postgres", "kamfaults", {
    nodeId: "kam-faults",
    listenIp: loopbackAddress(),
    defines: { KWC_QUEUE_SIZE: QUEUE_SIZE, KWC_POST_RETRIES: 1000, KWC_RETRY_DELAY: 1 },
  });
  api = await startDataApi();
  fleet = {
    version: 1,
    database: testDbConfig(bed.db),
    notifyFailureCodes: [408, 481],
    nodes: [nodeConfigOf(bed.node, "nated")],
  };
  tokens = new Map([[bed.node.nodeId, bed.node.rpcToken]]);
});
afterAll(async () => {
  resume();
  await api?.server.close();
  await bed?.close();
});

const table = () => bed.node.watchersTable;
async function callIds(): Promise<string[]> {
  return (await bed.db.query<{ callid: string }>(`SELECT callid FROM ${table()}`)).map((r) => r.callid);
}
const counters = async () => (await bed.node.status()).counters;

async function sweep() {
  const tel = memoryTelemetry();
  const report = await runCleanup(
    {
      store: new DataApiReconcileStore(api.client, fleet.database),
      kamailio: new KamailioRpcClient({ token: async () => bed.node.rpcToken, timeoutMs: 5_000 }),
      engine: "postgres",
      fleet: fleet.nodes,
      telemetry: tel.telemetry,
    },
    CleanupRequestSchema.parse({ scope: "reconcile" }),
  );
  expect(report.nodes.map((n) => n.outcome)).toEqual(["done"]);
  return tel.audits.length;
}

async function watchers(prefix: string, n: number, presentity: string) {
  const out: { c: SipWsClient; sub: Subscription }[] = [];
  for (let i = 0; i < n; i++) out.push(await bed.watch(`${prefix}${i}`, presentity));
  return out;
}

/** Kamailio's main process and every process it forked (all ours). */
function kamailioPids(): number[] {
  const main = bed.node.pid;
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

describe("faults with real Kamailio 5.6.3 (PostgreSQL)", () => {
  it("the ingest down while watchers die: no event reaches the worker, the next sweep deletes their rows", async () => {
    const p = "sip:ingestdown@example.com";
    const live = await watchers("idl", 2, p);
    const dead = await watchers("idd", 2, p);
    bed.rx.setAvailable(false);
    for (const d of dead) await d.c.die("rst");
    await waitUntil(async () => (await counters()).postFailures >= 1, {
      timeoutMs: 10_000,
      what: "a refused POST",
    });
    const ports = dead.map((d) => d.c.localPort);
    expect(
      bed.rx.events.filter((e) => e.type === "connection.closed" && ports.includes(e.peer.port)),
    ).toEqual([]);
    const before = await callIds();
    expect(before).toEqual(expect.arrayContaining(dead.map((d) => d.sub.callId))); // control
    expect(await sweep()).toBe(2);
    const after = await callIds();
    for (const d of dead) expect(after).not.toContain(d.sub.callId);
    for (const l of live) expect(after).toContain(l.sub.callId);
    // The ingest back: the parked events arrive late (and delete nothing more), the queue is empty again.
    bed.rx.setAvailable(true);
    await waitUntil(
      () =>
        ports.every((port) =>
          bed.rx.events.some((e) => e.type === "connection.closed" && e.peer.port === port),
        ),
      { timeoutMs: 15_000, what: "the parked events delivered" },
    );
  });

  it("a mass disconnect overflows the cfg's queue: evictions counted, the worker cleans what arrived, the sweep the rest", async () => {
    const p = "sip:mass@example.com";
    const live = await watchers("ml", 2, p);
    const primer = await bed.watch("mprimer", p);
    // Each victim on its own presentity: the worker's bounded reconcile after a refresh 500 (sync
    // mode aborts at a dead watcher) would otherwise clean the evicted ones of a shared presentity.
    const victims: { c: SipWsClient; sub: Subscription }[] = [];
    for (let i = 0; i < 8; i++) victims.push(await bed.watch(`mv${i}`, `sip:mass${i}@example.com`));
    const start = await counters();
    bed.rx.setAvailable(false);
    try {
      await massDisconnect();
    } finally {
      bed.rx.setAvailable(true);
    }
    async function massDisconnect() {
      await primer.c.die("rst");
      await waitUntil(
        async () => (await counters()).postFailures > start.postFailures && (await counters()).pending === -1,
        {
          timeoutMs: 10_000,
          what: "the primer's envelope parked for retry",
        },
      );
      for (const [i, v] of victims.entries()) {
        await v.c.die("rst");
        await waitUntil(async () => (await counters()).queued === start.queued + 2 + i, {
          timeoutMs: 10_000,
          what: `victim ${i} queued`,
        });
      }
    }
    const evicted = (await counters()).evicted - start.evicted;
    expect(evicted).toBe(victims.length - QUEUE_SIZE);
    const dead = [primer, ...victims];
    const delivered = () =>
      bed.rx.events.filter(
        (e): e is ConnectionClosed =>
          e.type === "connection.closed" && dead.some((d) => d.c.localPort === e.peer.port),
      );
    await waitUntil(() => delivered().length >= 1 + QUEUE_SIZE, {
      timeoutMs: 15_000,
      what: "the surviving events",
    });
    const events = delivered();
    const w = workerFor(fleet, api.client, tokens);
    const out = await w.run([{ messageId: "mass", body: JSON.stringify({ v: 1, events }) }]);
    expect(out.failedMessageIds).toEqual([]);
    expect(out.deleted).toBe(1 + QUEUE_SIZE);
    const mid = await callIds();
    const stale = dead.filter((d) => mid.includes(d.sub.callId));
    expect(stale).toHaveLength(evicted); // control: exactly the evicted deaths are left
    expect(await sweep()).toBe(evicted);
    const after = await callIds();
    for (const d of dead) expect(after).not.toContain(d.sub.callId);
    for (const l of live) expect(after).toContain(l.sub.callId);
    console.log(
      `mass disconnect: ${dead.length} deaths, queue ${QUEUE_SIZE}, ${evicted} evicted (counted), worker deleted ${out.deleted}, sweep deleted ${evicted}, rows left uncleaned 0, live kept ${live.length}`,
    );
  });

  it(`Kamailio's JSON-RPC hangs (SIGSTOP): the worker times out (${RPC_TIMEOUT_MS} ms) and retries, no batch blocks past its timeout`, async () => {
    const p = "sip:hang@example.com";
    const live = await bed.watch("hangl", p);
    const dead = await bed.watch("hangd", p);
    await dead.c.die("rst");
    const event = await bed.rx.waitFor(
      (e) => e.type === "connection.closed" && e.peer.port === dead.c.localPort,
    );
    const w = workerFor(fleet, api.client, tokens);
    // A fresh client with the short timeout (workerFor's is 3 s); status is read through it too.
    const hung = workerFor(fleet, api.client, tokens, {
      kamailio: new KamailioRpcClient({ token: async () => bed.node.rpcToken, timeoutMs: RPC_TIMEOUT_MS }),
    });
    stopped = kamailioPids();
    for (const pid of stopped) process.kill(pid, "SIGSTOP");
    const started = Date.now();
    const out = await hung.run([{ messageId: "hang", body: JSON.stringify({ v: 1, events: [event] }) }]);
    const blockedMs = Date.now() - started;
    resume();
    expect(out.failedMessageIds).toEqual(["hang"]);
    expect(out.deleted).toBe(0);
    expect(blockedMs).toBeLessThan(3 * RPC_TIMEOUT_MS + 1_000);
    expect(await callIds()).toContain(dead.sub.callId); // control: nothing deleted while it hung
    const retry = await w.run([{ messageId: "hang", body: JSON.stringify({ v: 1, events: [event] }) }]);
    expect(retry.failedMessageIds).toEqual([]);
    expect(retry.deleted).toBe(1);
    const after = await callIds();
    expect(after).not.toContain(dead.sub.callId);
    expect(after).toContain(live.sub.callId);
    console.log(
      `RPC hang: ${stopped.length || kamailioPids().length} Kamailio processes stopped, the batch returned for retry after ${blockedMs} ms (RPC timeout ${RPC_TIMEOUT_MS} ms), the retry deleted 1, live kept`,
    );
  });

  it("Kamailio restarts mid-stream: old-boot events delete nothing by themselves; the sweep removes rows whose peer is gone", async () => {
    const p = "sip:restart@example.com";
    const a = await watchers("rs", 3, p);
    await a[0]?.c.die("rst");
    const event = await bed.rx.waitFor(
      (e) => e.type === "connection.closed" && e.peer.port === a[0]?.c.localPort,
    );
    const oldBoot = bed.node.bootId;
    await bed.node.restart();
    expect(bed.node.bootId).not.toBe(oldBoot);
    // One watcher comes back on a new connection and subscribes again (a new row).
    const back = await SipWsClient.connect(bed.node.wsUrl, { user: "rsback" });
    bed.clients.push(back);
    const sub = await back.subscribe(p);
    expect(sub.status).toBe(200);
    const before = await callIds();
    const w = workerFor(fleet, api.client, tokens);
    const out = await w.run([{ messageId: "old", body: JSON.stringify({ v: 1, events: [event] }) }]);
    expect(out.failedMessageIds).toEqual([]);
    expect(out.deleted).toBe(0);
    expect(w.tel.counts.EventsIgnoredBoot).toBe(1);
    expect(await callIds()).toEqual(before); // control: the old boot's event deleted nothing
    const swept = await sweep();
    const after = await callIds();
    for (const x of a) expect(after).not.toContain(x.sub.callId); // their connections died with the old boot
    expect(after).toContain(sub.callId);
    console.log(
      `restart: old-boot event ignored (deleted 0), sweep deleted ${swept} rows of the old boot's connections, the re-subscribed row kept`,
    );
  });
});
