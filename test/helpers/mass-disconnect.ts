// The mass-disconnect scenario (issue 15) as one function, for bench/mass-disconnect.ts (scale 1:
// 5,000 BLF tabs × 100 subscriptions = 500k rows, 1,000 tabs die at once) and its tiny-scale e2e
// test. Everything a user has is real: one Kamailio 5.6.3 node with the shipped cfg (shm and
// tcp_max_connections as kamailio/README.md recommends for the tab count), its events through the
// local pipeline (ingest → embedded SQS → poller → the worker handler, with the deployed event-source
// settings of infra/event-source-settings.ts → local Data API → PostgreSQL), the peer index
// (`kwc db migrate`), and one real WebSocket connection per tab.
//
// The world (a BLF site): tabs come in offices of 50; every tab of an office watches the office's 100
// keys (presentities), so each presentity has 50 watchers. One surviving tab per sampled office
// SUBSCRIBEs for real to its 100 keys (its NOTIFY bodies are checked); the other tabs' rows are
// written by SQL, cloned from one of those real rows with the contact pointing at the tab's own
// live connection (ip:port), so every NOTIFY Kamailio sends for them really goes out on a socket.
// Presentity rows are cloned the same way from one real PUBLISH, received 10 minutes ago and not
// expiring, so the refresh policy has every trace it can read. Every 5th tab of each office dies
// (RST); its rows are last in the heap, so Kamailio's NOTIFY loop meets them first. Then
// PUBLISHes go to a share of the sampled offices' keys, paced, while the dead rows are still there.
//
// Observed, never inferred from the service's own code: row deletions (a statement-level trigger's
// pg_notify, counted per dead / live row), every JSON-RPC call the service makes to the node (an
// HTTP tap in front of the node's RPC port: method, presentity, status), the sampled watchers'
// NOTIFY bodies, the queues' depths, Kamailio's shm and its log.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { GetQueueAttributesCommand, type QueueAttributeName } from "@aws-sdk/client-sqs";
import pg from "pg";
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import { dataApiPeerIndexPort } from "#adapters/peer-index.ts";
import type { DatabaseConfig } from "#core/fleet.ts";
import { migratePeerIndex } from "#core/peer-index-migration.ts";
import { traceInstallStatements } from "#core/sql/presentity-trace.ts";
import { dialectFor } from "#core/sql.ts";
import { WORKER_EVENT_SOURCE } from "../../infra/event-source-settings.ts";
import { type LocalStack, startLocalStack } from "../../local/stack.ts";
import { localDataApiClient } from "./dataapi.ts";
import { createTestDb, DB_HOST, KAMAILIO_PASSWORD, KAMAILIO_USER, PG_PORT, type TestDb } from "./db.ts";
import { type KamailioNode, startKamailio } from "./kamailio.ts";
import { allocationFailures, shmUsedMb, topErrors } from "./kamailio-health.ts";
import { freePort, loopbackAddress } from "./ports.ts";
import { SipWsClient, type Subscription } from "./sip-ws-client.ts";

const run = promisify(execFile);

export const TABS_AT_SCALE_1 = 5000;
export const KEYS_PER_TAB = 100;
/** Tabs per office: every tab of an office watches its keys, so a presentity has this many watchers. */
export const TABS_PER_OFFICE = 50;
/** Every DEATH_EVERY-th tab of each office dies: 1,000 of 5,000. */
const DEATH_EVERY = 5;
const DOMAIN = "example.com";
const EVENT = "dialog";

/** kwc.cfg's default refresh budget (KWC_REFRESH_RATE), read from the shipped file. */
export const SHIPPED_REFRESH_RATE = Number(
  readFileSync(new URL("../../kamailio/kwc.cfg", import.meta.url), "utf8").match(
    /#!define KWC_REFRESH_RATE (\d+)/,
  )?.[1],
);

/**
 * The `-m` kamailio/README.md recommends for a BLF node of `tabs` WebSocket connections: its
 * "Shared memory for a BLF node" table, read from the file (the smallest row that covers them).
 */
export function recommendedShmMb(tabs: number): number {
  const text = readFileSync(new URL("../../kamailio/README.md", import.meta.url), "utf8");
  const section = text.slice(text.indexOf("**Shared memory for a BLF node.**"));
  const rows = [...section.matchAll(/^\| ([\d,]+) \| [^|]+\| [^|]+\| (\d+) \|$/gm)].map((m) => ({
    tabs: Number((m[1] ?? "").replace(/,/g, "")),
    shmMb: Number(m[2]),
  }));
  if (rows.length === 0) throw new Error("kamailio/README.md: the BLF shm table was not found");
  return (rows.find((r) => r.tabs >= tabs) ?? rows[rows.length - 1])?.shmMb ?? 64;
}

export interface MassDisconnectOptions {
  /** 1 = 5,000 tabs (500k rows), 1,000 of them dying; 0.01 = 50 tabs (5,000 rows), 10 dying. */
  scale: number;
  /** Share of all presentities that get a PUBLISH between the deaths and the deletes; default 1 %. */
  publishShare?: number;
  /** PUBLISHes per second (paced, as phones publish, not a storm); default 50. */
  publishRate?: number;
  /** How long to watch after the deaths at most (everything settled ends it sooner). */
  windowMs: number;
  /**
   * Control: the worker is paused before the deaths and resumed once the ingest has accepted every
   * close and the PUBLISHes were answered; the dead rows are counted in between.
   */
  holdWorker?: boolean;
  /**
   * When watching may stop before the window ends: "state" once every dead row is gone and every
   * sampled watcher is current; "queues" also waits for the events and follow-up queues to drain
   * (every refresh owed has been sent).
   */
  settle: "state" | "queues";
  /** Kamailio's children and tcp_children (KWC_CHILDREN); default: the shipped cfg's. */
  children?: number;
  /**
   * The presentity deletion trace (`kwc db trace`), installed before the set-up, so the refresh
   * policy can skip presentities with no trigger on 5.6.3; default true (false: the policy refreshes
   * every presentity of a dead tab, the comparison).
   */
  trace?: boolean;
  log?: (line: string) => void;
}

export interface RpcCall {
  at: number;
  method: string;
  presentity?: string;
  status: number;
}

export interface MassDisconnectResult {
  world: {
    tabs: number;
    deadTabs: number;
    rows: number;
    deadRows: number;
    presentities: number;
    published: number;
    sampledSubscriptions: number;
    shmMb: number;
    tcpMaxConnections: number;
    /** KWC_CHILDREN (children and tcp_children) when not the shipped cfg's. */
    children?: number;
    refreshRate: number;
    eventSource: typeof WORKER_EVENT_SOURCE;
    setupSeconds: number;
  };
  /** Dead rows found right after the deaths (holdWorker: before the worker ran). */
  deadRowsBeforePipeline?: number;
  /** Death (first RST) → ingest accepted the last close; → last dead row deleted (undefined: never). */
  closesReportedMs?: number;
  deadRowsGoneMs?: number;
  deadRowsLeft: number;
  /** Rows deleted of surviving tabs still connected at the end: must be 0. */
  liveRowsDeleted: number;
  /**
   * Those tabs, how many of them still answer an OPTIONS over their connection (the node holds it:
   * a deletion of their rows was wrong), and a few deleted rows (callid, contact).
   */
  liveRowsDeletedDetail: {
    tabs: number;
    tabsAnsweringOptions: number;
    /** Who deleted the rows of the tabs that still answer: Kamailio's own DB sessions, or others (the service). */
    deletedBy: { kamailio: number; others: number };
    examples: string[];
  };
  /** The handlers' error logs by message. */
  handlerErrors: Record<string, number>;
  /**
   * Rows deleted during the run: by the worker (its RowsDeleted), by anyone else (Kamailio itself:
   * a NOTIFY answered 481 or timed out), and by kind (dying tabs' rows, the others').
   */
  deletedBy: { worker: number; others: number; dead: number; live: number };
  /** Surviving tabs whose connection the node closed during the run (their rows are stale then). */
  lostConnections: { tabs: number; inSetup: number; rowsDeleted: number; closedBy: Record<string, number> };
  /** Dying tabs whose connection.closed the ingest accepted. */
  closesReported: number;
  /** PUBLISHes answered 200, and how many of them before the last dead row was gone. */
  publishes: { sent: number; ok: number; beforeDeletesDone: number; firstMs?: number; lastMs?: number };
  dlq: { events: number; followUps: number };
  followUpsQueued: number;
  refreshes: {
    /** presence.refreshWatchers calls that reached the node, by HTTP status. */
    calls: Record<string, number>;
    /** Calls for presentities that got a PUBLISH / that had no trigger at all. */
    callsTriggered: number;
    callsUntriggered: number;
    distinctUntriggered: number;
    skippedByReason: Record<string, number>;
    metrics: Record<string, number>;
  };
  /** Sampled real subscriptions whose last NOTIFY holds their presentity's newest state. */
  /**
   * The sampled real subscriptions on tabs still connected at the end (`lost`: on tabs the node
   * disconnected), how many hold the newest state, and when all of them did.
   */
  survivors: { sampled: number; lost: number; current: number; currentMs?: number; stale: string[] };
  kamailio: { shmMbBefore: number; shmMbPeak: number; allocationFailures: number; topErrors: string[] };
  /**
   * The events poller's invocations; `timedOut`: batches over the function timeout (Lambda kills
   * those and retries their records after the visibility timeout; the local poller returns their
   * records too, but the handler runs on to its end, so deletions still land).
   */
  poller: { invocations: number; failedInvocations: number; timedOut: number };
  windowSeconds: number;
}

interface Tab {
  t: number;
  office: number;
  dies: boolean;
  sampled: boolean;
  client: SipWsClient;
}

const presentityOf = (office: number, key: number) => `sip:o${office}k${key}@${DOMAIN}`;
const dialogBody = (presentity: string, tag: string) => `<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="${presentity}">
  <dialog id="${tag}" direction="recipient"><state>confirmed</state></dialog>
</dialog-info>`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runMassDisconnect(options: MassDisconnectOptions): Promise<MassDisconnectResult> {
  let timedOut = 0;
  const log = (line: string) => {
    if (line.includes("Task timed out")) timedOut++;
    options.log?.(line);
  };
  const t0 = performance.now();
  const tabCount = Math.max(10, Math.round(TABS_AT_SCALE_1 * options.scale));
  const perOffice = Math.min(TABS_PER_OFFICE, tabCount);
  const offices = Math.ceil(tabCount / perOffice);
  const shmMb = recommendedShmMb(tabCount);
  const tcpMaxConnections = tabCount + 512;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (error) {
        log(`cleanup: ${(error as Error).message}`);
      }
    }
  };
  try {
    const db = await createTestDb("postgres", "massdisc");
    cleanups.push(() => db.drop());
    const deletions = await watchDeletions(db);
    cleanups.push(() => deletions.close());
    // As `kwc db trace` installs it, long before the deaths (the set-up takes its time).
    if (options.trace ?? true)
      for (const sql of traceInstallStatements(dialectFor("postgres"), db.name)) await db.query(sql);
    const ingestPort = await freePort();
    const ingestKey = randomBytes(24).toString("hex");
    const node = await startKamailio({
      nodeId: "mass-a",
      db,
      listenIp: loopbackAddress(),
      ingestUrl: `http://127.0.0.1:${ingestPort}/events`,
      ingestKey,
      // Production timers; kwc.cfg's default refresh budget (not overridden).
      testTimers: false,
      shmMb,
      defines: {
        KWC_TCP_MAX_CONNECTIONS: tcpMaxConnections,
        ...(options.children ? { KWC_CHILDREN: options.children } : {}),
      },
    });
    cleanups.push(async () => {
      await node.stop();
      killLeftovers(node.runDir);
    });
    const tap = await startRpcTap(node);
    cleanups.push(() => tap.close());
    const status = await node.status();
    const stateDir = mkdtempSync(join(tmpdir(), "kwc-massdisc-"));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const stack = await startLocalStack({
      engine: "postgres",
      database: db.name,
      stateDir,
      existing: {
        statusUrl: node.statusUrl,
        rpcUrl: tap.url,
        socketInfo: node.socketInfo,
        rpcToken: node.rpcToken,
        contactStyle: status.contactStyle ?? "nated",
        kamailioVersion: status.version,
        notifierProcesses: status.notifierProcesses,
      },
      ingestHost: "127.0.0.1",
      ingestPort,
      ingestKey,
      reconcileEveryMs: 0,
      log,
    });
    cleanups.push(() => stack.stop());

    // The tabs: one real WS connection each, from an address other than the RPC callers' 127.0.0.1.
    const clientIp = loopbackAddress();
    const tabs: Tab[] = [];
    const sampledOffices = Math.max(1, Math.round(offices / 10));
    for (let t = 0; t < tabCount; t += 20) {
      const group = Array.from({ length: Math.min(20, tabCount - t) }, (_, j) => t + j);
      const clients = await Promise.all(
        group.map((i) => SipWsClient.connect(node.wsUrl, { user: `t${i}`, localAddress: clientIp })),
      );
      for (const [j, client] of clients.entries()) {
        const i = t + j;
        const office = Math.floor(i / perOffice);
        const inOffice = i % perOffice;
        tabs.push({
          t: i,
          office,
          dies: inOffice % DEATH_EVERY === DEATH_EVERY - 1,
          sampled: inOffice === 0 && office < sampledOffices,
          client,
        });
      }
    }
    cleanups.push(() => {
      for (const tab of tabs) tab.client.close();
    });
    log(`${tabs.length} tabs connected (${((performance.now() - t0) / 1000).toFixed(1)} s)`);

    const sampled = tabs.filter((t) => t.sampled);
    const publisher = sampled[0]?.client;
    if (!publisher) throw new Error("no sampled tab");
    const at = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    await seedPresentities(db, publisher, offices);
    log(`${offices * KEYS_PER_TAB} presentity rows (${at()})`);
    const subs = await subscribeSampled(sampled);
    log(`${subs.length} real subscriptions, initial NOTIFYs in (${at()})`);
    await fillRows(db, tabs, subs[0]?.sub.callId ?? "");
    // Built once the rows are in (faster than maintaining it row by row during the fill).
    await migrate(stack);
    log(`peer index built (${at()})`);

    // PUBLISH targets: a share of all presentities, from the sampled offices (their real watchers
    // show the new state), spread over their keys.
    const presentities = offices * KEYS_PER_TAB;
    const publishCount = Math.min(
      sampledOffices * KEYS_PER_TAB,
      Math.max(2, Math.round(presentities * (options.publishShare ?? 0.01))),
    );
    const newest = new Map<string, string>();
    for (const s of subs) newest.set(s.sub.presentity, initialTag(s.sub.presentity));
    const targets: string[] = [];
    for (let i = 0; i < publishCount; i++) {
      const office = i % sampledOffices;
      const key = Math.floor(i / sampledOffices) * 7 + (i % 7);
      targets.push(presentityOf(office, key % KEYS_PER_TAB));
    }

    const shm = shmSampler(node);
    cleanups.push(() => shm.stop());
    const logBefore = node.log().length;
    const metricsBefore = { ...stack.counters.metrics };
    const dying = tabs.filter((t) => t.dies);
    const closes = closesAccepted(stack, new Set(dying.map((t) => t.client.localPort)));
    const closesReported = closes.all;
    if (options.holdWorker) {
      await stack.pauseWorker();
      // pauseWorker() aborts the poller's long poll on the client side only: the SQS server keeps
      // it open for its WaitTimeSeconds (1 s) and would hand the first closes to nobody (invisible
      // for the visibility timeout). Nothing signals its end, so let it lapse.
      await sleep(1500);
    }
    deletions.reset();
    // The world as it is at the deaths (under load the node may have dropped a tab already).
    const rows = await countRows(db);
    const deadRows = rows.dead;
    const setupLost = tabs.filter((t) => !t.client.isOpen).length;
    log(`${rows.total} rows (${rows.dead} of dying tabs), ${setupLost} tabs lost in the set-up (${at()})`);

    // The deaths: every dying tab's connection reset at once.
    const diedAt = performance.now();
    for (const tab of dying) await tab.client.die("rst");
    // PUBLISHes while the dead rows are there, paced.
    const rate = options.publishRate ?? 50;
    const published: { at: number; status: number }[] = [];
    const publishing = (async () => {
      for (const [i, presentity] of targets.entries()) {
        const due = diedAt + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const tag = `new-${i}-${randomBytes(3).toString("hex")}`;
        const before = newest.get(presentity) ?? "";
        // The node may drop the publisher's connection too (0: no answer, counted as not 200).
        const s = await publisher
          .publish(presentity, { event: EVENT, body: dialogBody(presentity, tag), expires: 3600 })
          .catch(() => 0);
        published.push({ at: performance.now(), status: s });
        // Unanswered, it may or may not have been taken: either state is current then.
        newest.set(presentity, s === 200 ? tag : `${before}|${tag}`);
      }
    })();
    const reportedAt = await Promise.race([closesReported, sleep(options.windowMs).then(() => undefined)]);
    let deadRowsBeforePipeline: number | undefined;
    if (options.holdWorker) {
      await publishing;
      deadRowsBeforePipeline = (await countRows(db)).dead;
      stack.resumeWorker();
    }

    // Watch until everything settled: dead rows gone, sampled watchers current, queues empty.
    const currentNow = () => subs.filter((s) => !s.client.isOpen || isCurrent(s, newest)).length;
    let currentAt: number | undefined;
    const deadline = diedAt + options.windowMs;
    for (;;) {
      await sleep(250);
      if (published.length === targets.length && currentAt === undefined && currentNow() === subs.length)
        currentAt = performance.now();
      const settled =
        deletions.deadGoneAt(deadRows) !== undefined &&
        currentAt !== undefined &&
        (options.settle === "state" || ((await queuesEmpty(stack)) && tap.inFlight() === 0));
      if (settled || performance.now() > deadline) break;
    }
    await publishing;
    const pollerStats = { ...(stack.poller()?.stats ?? { invocations: 0, failedInvocations: 0 }) };
    await quiesce(stack, () => `${deletions.statements()} ${tap.calls.length}`);
    await Promise.all(sampled.map((t) => t.client.ping().catch(() => undefined)));
    const final = await countRows(db);
    const lost = tabs.filter((t) => !t.dies && !t.client.isOpen);
    const liveLeft = await liveRowsPerTab(db, tabs, subs);
    const robbed = tabs.filter((t) => !t.dies && t.client.isOpen && (liveLeft.get(t.t) ?? 0) < KEYS_PER_TAB);
    // Does the node still hold their connection? An OPTIONS round trip over it says.
    const answered = await Promise.all(
      robbed.map((t) =>
        Promise.race([
          t.client.ping().then(
            () => true,
            () => false,
          ),
          sleep(3000).then(() => false),
        ]),
      ),
    );
    const wrong = robbed.filter((_, i) => answered[i]);
    const wrongBy = await deletedByWhom(db, wrong, subs);
    const gone = await db.query<{ callid: string; contact: string }>(
      "SELECT callid, contact FROM md_gone WHERE split_part(callid, '-', 2) = ANY($1) LIMIT 5",
      [wrong.map((t) => String(t.t))],
    );
    const depth = await queueDepths(stack);
    const goneAt = deletions.deadGoneAt(deadRows);
    const refreshCalls = tap.calls.filter((c) => c.method === "presence.refreshWatchers" && c.at >= diedAt);
    const triggered = new Set(targets);
    const untriggered = refreshCalls.filter((c) => !triggered.has(c.presentity ?? ""));
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(stack.counters.metrics))
      if (v - (metricsBefore[k] ?? 0) !== 0) metrics[k] = v - (metricsBefore[k] ?? 0);
    const newLog = node.log().slice(logBefore);
    const kept = subs.filter((s) => s.client.isOpen);
    const stale = kept.filter((s) => !isCurrent(s, newest)).map((s) => s.sub.presentity);
    const poller = pollerStats;
    const deleted = deletions.deleted();
    return {
      world: {
        tabs: tabs.length,
        deadTabs: dying.length,
        rows: rows.total,
        deadRows,
        presentities,
        published: targets.length,
        sampledSubscriptions: subs.length,
        shmMb,
        tcpMaxConnections,
        ...(options.children ? { children: options.children } : {}),
        refreshRate: SHIPPED_REFRESH_RATE,
        eventSource: WORKER_EVENT_SOURCE,
        setupSeconds: Number(((diedAt - t0) / 1000).toFixed(1)),
      },
      ...(deadRowsBeforePipeline === undefined ? {} : { deadRowsBeforePipeline }),
      ...(reportedAt === undefined ? {} : { closesReportedMs: Math.round(reportedAt - diedAt) }),
      ...(goneAt === undefined ? {} : { deadRowsGoneMs: Math.round(goneAt - diedAt) }),
      deadRowsLeft: final.dead,
      liveRowsDeleted: rowsDeleted(
        tabs.filter((t) => !t.dies && t.client.isOpen),
        liveLeft,
      ),
      liveRowsDeletedDetail: {
        tabs: robbed.length,
        tabsAnsweringOptions: wrong.length,
        deletedBy: wrongBy,
        examples: gone.map((g) => `${g.callid} ${g.contact}`),
      },
      handlerErrors: { ...stack.counters.errors },
      deletedBy: {
        worker: metrics.RowsDeleted ?? 0,
        others: deleted.dead + deleted.live - (metrics.RowsDeleted ?? 0),
        dead: deleted.dead,
        live: deleted.live,
      },
      lostConnections: {
        tabs: lost.length,
        inSetup: setupLost,
        rowsDeleted: rowsDeleted(lost, liveLeft),
        closedBy: tally(lost.map((t) => `ws ${t.client.closedWith?.code ?? "?"}`)),
      },
      closesReported: closes.reported(),
      publishes: {
        sent: published.length,
        ok: published.filter((p) => p.status === 200).length,
        beforeDeletesDone: published.filter((p) => goneAt === undefined || p.at < goneAt).length,
        ...(published.length > 0
          ? {
              firstMs: Math.round((published[0]?.at ?? 0) - diedAt),
              lastMs: Math.round((published.at(-1)?.at ?? 0) - diedAt),
            }
          : {}),
      },
      dlq: { events: depth.eventsDlq, followUps: depth.followUpsDlq },
      followUpsQueued: depth.followUps,
      refreshes: {
        calls: tally(refreshCalls.map((c) => String(c.status))),
        callsTriggered: refreshCalls.length - untriggered.length,
        callsUntriggered: untriggered.length,
        distinctUntriggered: new Set(untriggered.map((c) => c.presentity)).size,
        skippedByReason: { ...stack.counters.refreshSkipReasons },
        metrics,
      },
      survivors: {
        sampled: kept.length,
        lost: subs.length - kept.length,
        current: kept.length - stale.length,
        ...(currentAt === undefined ? {} : { currentMs: Math.round(currentAt - diedAt) }),
        stale: stale.slice(0, 10),
      },
      kamailio: {
        shmMbBefore: shm.before,
        shmMbPeak: shm.peak(),
        allocationFailures: allocationFailures(newLog),
        topErrors: topErrors(newLog),
      },
      poller: {
        invocations: poller?.invocations ?? 0,
        failedInvocations: poller?.failedInvocations ?? 0,
        timedOut,
      },
      windowSeconds: Number(((performance.now() - diedAt) / 1000).toFixed(1)),
    };
  } finally {
    await cleanup();
  }
}

const initialTag = (presentity: string) => `init-${presentity.slice(4, presentity.indexOf("@"))}`;

interface SampledSub {
  client: SipWsClient;
  sub: Subscription;
}

/** The last NOTIFY of the subscription carries its presentity's newest state. */
function isCurrent(s: SampledSub, newest: Map<string, string>): boolean {
  const tags = newest.get(s.sub.presentity)?.split("|") ?? [];
  const last = s.client.notifies.findLast((n) => n.callId === s.sub.callId);
  return tags.some((tag) => last?.body.includes(`id="${tag}"`) === true);
}

/** The sampled tabs SUBSCRIBE for real to their office's keys (10 in flight per tab). */
async function subscribeSampled(sampled: Tab[]): Promise<SampledSub[]> {
  const out: SampledSub[] = [];
  for (const tab of sampled) {
    for (let k = 0; k < KEYS_PER_TAB; k += 10) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(10, KEYS_PER_TAB - k) }, async (_, j) => {
          const sub = await tab.client.subscribe(presentityOf(tab.office, k + j), {
            event: EVENT,
            expires: 3600,
          });
          if (sub.status !== 200) throw new Error(`SUBSCRIBE answered ${sub.status}`);
          await tab.client.waitForNotify((n) => n.callId === sub.callId && n.body.includes("init-"));
          return { client: tab.client, sub };
        }),
      );
      out.push(...batch);
    }
  }
  return out;
}

/**
 * One real PUBLISH gives the presentity row's shape; every key of every office gets a clone of it
 * (received 10 minutes ago, expiring in an hour), then the template is removed.
 */
async function seedPresentities(db: TestDb, publisher: SipWsClient, offices: number): Promise<void> {
  const template = `sip:template@${DOMAIN}`;
  const s = await publisher.publish(template, {
    event: EVENT,
    body: dialogBody(template, "t"),
    expires: 3600,
  });
  if (s !== 200) throw new Error(`template PUBLISH answered ${s}`);
  const columns = await columnsOf(db, "presentity");
  const now = Math.floor(Date.now() / 1000);
  const name = "'o' || o || 'k' || k";
  const overrides: Record<string, string> = {
    username: name,
    etag: `'seed-' || o || '-' || k`,
    ruid: `'seed-' || o || '-' || k`,
    received_time: String(now - 600),
    expires: String(now + 3600),
    body: `convert_to(replace(replace(convert_from(tpl.body, 'UTF8'), 'sip:template@', 'sip:' || ${name} || '@'), 'id="t"', 'id="init-' || ${name} || '"'), 'UTF8')`,
  };
  await db.query(
    `INSERT INTO presentity (${columns.join(", ")})
     SELECT ${columns.map((c) => overrides[c] ?? `tpl.${c}`).join(", ")}
     FROM generate_series(0, ${offices - 1}) o CROSS JOIN generate_series(0, ${KEYS_PER_TAB - 1}) k
     CROSS JOIN (SELECT * FROM presentity WHERE username = 'template') tpl`,
  );
  await db.query("DELETE FROM presentity WHERE username = 'template'");
}

/**
 * Every non-sampled tab's 100 rows, cloned from a real row with the contact pointing at the tab's
 * live connection; the dying tabs' rows last, so Kamailio's NOTIFY loop meets them first.
 */
async function fillRows(db: TestDb, tabs: Tab[], templateCallId: string): Promise<void> {
  await db.query("CREATE TABLE md_tabs (t int, office int, peer text, dies boolean)");
  const filled = tabs.filter((t) => !t.sampled);
  await db.query(
    "INSERT INTO md_tabs SELECT * FROM unnest($1::int[], $2::int[], $3::text[], $4::boolean[])",
    [
      filled.map((t) => t.t),
      filled.map((t) => t.office),
      filled.map((t) => `${t.client.localAddress}:${t.client.localPort}`),
      filled.map((t) => t.dies),
    ],
  );
  const columns = await columnsOf(db, "active_watchers");
  const key = "'o' || tb.office || 'k' || k";
  const overrides: Record<string, string> = {
    presentity_uri: `'sip:' || ${key} || '@${DOMAIN}'`,
    to_user: key,
    watcher_username: "'t' || tb.t",
    from_user: "'t' || tb.t",
    callid: "CASE WHEN tb.dies THEN 'mdd-' ELSE 'mdl-' END || tb.t || '-' || k",
    to_tag: "'tt-' || tb.t || '-' || k",
    from_tag: "'ft-' || tb.t || '-' || k",
    contact: "regexp_replace(tpl.contact, '@[^;>]*', '@' || tb.peer)",
  };
  // Two statements, the surviving tabs' rows first: the dying tabs' rows end up last in the heap.
  for (const dies of [false, true])
    await db.query(
      `INSERT INTO active_watchers (${columns.join(", ")})
       SELECT ${columns.map((c) => overrides[c] ?? `tpl.${c}`).join(", ")}
       FROM md_tabs tb CROSS JOIN generate_series(0, ${KEYS_PER_TAB - 1}) k
       CROSS JOIN (SELECT * FROM active_watchers WHERE callid = $1) tpl
       WHERE tb.dies = $2`,
      [templateCallId, dies],
    );
  await db.query("ANALYZE active_watchers");
}

async function columnsOf(db: TestDb, table: string): Promise<string[]> {
  const rows = await db.query<{ column_name: string }>(
    "SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND column_name <> 'id' ORDER BY ordinal_position",
    [table],
  );
  return rows.map((r) => r.column_name);
}

async function countRows(db: TestDb): Promise<{ total: number; dead: number }> {
  const [r] = await db.query<{ total: string; dead: string }>(
    "SELECT count(*) AS total, count(*) FILTER (WHERE callid LIKE 'mdd-%') AS dead FROM active_watchers",
  );
  return { total: Number(r?.total), dead: Number(r?.dead) };
}

/** The peer index, as `kwc db migrate` builds it (a BLF node of this size runs with it, docs/peer-index.md). */
async function migrate(stack: LocalStack): Promise<void> {
  const fleet = JSON.parse(readFileSync(stack.fleetConfigPath, "utf8")) as { database: DatabaseConfig };
  const rds = localDataApiClient(stack.dataApiEndpoint);
  try {
    const port = dataApiPeerIndexPort(rds, fleet.database, "active_watchers", (s) =>
      new DataApiWatcherStore(rds, fleet.database).executor.execute(s),
    );
    await migratePeerIndex(port, "postgres", "active_watchers");
  } finally {
    rds.destroy();
  }
}

/**
 * Row deletions as PostgreSQL commits them: a statement-level AFTER DELETE trigger posts how many
 * dead (callid mdd-*) and live rows each statement removed; arrival times are this process's.
 */
async function watchDeletions(db: TestDb) {
  // Which live rows went (few, if any): their callid and contact, to say whose they were.
  await db.query("CREATE TABLE md_gone (callid text, contact text, backend int)");
  await db.query(`CREATE FUNCTION md_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE d bigint; l bigint;
    BEGIN
      SELECT count(*) FILTER (WHERE callid LIKE 'mdd-%'), count(*) FILTER (WHERE callid NOT LIKE 'mdd-%')
        INTO d, l FROM gone;
      PERFORM pg_notify('md_deleted', d || ' ' || l);
      IF l > 0 THEN
        INSERT INTO md_gone SELECT callid, contact, pg_backend_pid() FROM gone WHERE callid NOT LIKE 'mdd-%';
      END IF;
      RETURN NULL;
    END $$`);
  await db.query(`CREATE TRIGGER md_deleted AFTER DELETE ON active_watchers
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION md_deleted()`);
  const client = new pg.Client({
    host: DB_HOST,
    port: PG_PORT,
    user: KAMAILIO_USER,
    password: KAMAILIO_PASSWORD,
    database: db.name,
  });
  await client.connect();
  let dead = 0;
  let live = 0;
  let statements = 0;
  let goneAt: number | undefined;
  client.on("notification", (msg) => {
    statements++;
    const [d, l] = (msg.payload ?? "0 0").split(" ").map(Number);
    dead += d ?? 0;
    live += l ?? 0;
    if (d) goneAt = performance.now();
  });
  await client.query("LISTEN md_deleted");
  return {
    reset: () => {
      dead = 0;
      live = 0;
      goneAt = undefined;
    },
    /** When the last of `total` dead rows was deleted (undefined while some remain). */
    deadGoneAt: (total: number) => (dead >= total ? goneAt : undefined),
    /** Rows deleted since the reset: of dying tabs, of the others. */
    deleted: () => ({ dead, live }),
    /** Delete statements seen so far. */
    statements: () => statements,
    close: () => client.end(),
  };
}

/** `all` resolves with the time the ingest accepted the connection.closed of the last of these peer ports. */
function closesAccepted(stack: LocalStack, ports: Set<number>) {
  const left = new Set(ports);
  let off = () => {};
  const all = new Promise<number>((resolve) => {
    off = stack.ingest.onAccepted((body) => {
      for (const m of body.matchAll(/"type":"connection\.closed"[^}]*"port":(\d+)/g))
        left.delete(Number(m[1]));
      if (left.size > 0) return;
      off();
      resolve(performance.now());
    });
  });
  return {
    all,
    reported: () => {
      off();
      return ports.size - left.size;
    },
  };
}

/** Rows left per surviving tab (by tab number): SQL rows by their callid, the sampled tabs' real rows by theirs. */
async function liveRowsPerTab(db: TestDb, tabs: Tab[], subs: SampledSub[]): Promise<Map<number, number>> {
  const rows = await db.query<{ t: number; n: string }>(
    "SELECT split_part(callid, '-', 2)::int AS t, count(*) AS n FROM active_watchers WHERE callid LIKE 'mdl-%' GROUP BY 1",
  );
  const left = new Map(rows.map((r) => [Number(r.t), Number(r.n)]));
  const real = await db.query<{ callid: string }>(
    "SELECT callid FROM active_watchers WHERE callid = ANY($1)",
    [subs.map((s) => s.sub.callId)],
  );
  const present = new Set(real.map((r) => r.callid));
  const tabOf = new Map(tabs.map((t) => [t.client, t.t]));
  for (const s of subs) {
    const t = tabOf.get(s.client);
    if (t !== undefined && present.has(s.sub.callId)) left.set(t, (left.get(t) ?? 0) + 1);
  }
  return left;
}

/**
 * Who deleted these tabs' rows: a deletion made by one of Kamailio's own database sessions (its
 * processes keep theirs; `ss` names the process behind each client port) or by anyone else (the
 * service's Data API sessions).
 */
async function deletedByWhom(
  db: TestDb,
  tabs: Tab[],
  subs: SampledSub[],
): Promise<{ kamailio: number; others: number }> {
  if (tabs.length === 0) return { kamailio: 0, others: 0 };
  const { stdout } = await run("ss", ["-tnpH", `dport = :${PG_PORT}`]);
  const kamailioPorts = new Set(
    stdout
      .split("\n")
      .filter((l) => l.includes('"kamailio"'))
      .map((l) => Number(l.trim().split(/\s+/)[3]?.split(":").at(-1))),
  );
  const sessions = await db.query<{ pid: number; client_port: number }>(
    "SELECT pid, client_port FROM pg_stat_activity WHERE datname = current_database()",
  );
  const kamailioPids = sessions.filter((x) => kamailioPorts.has(Number(x.client_port))).map((x) => x.pid);
  const mine = new Set(tabs.map((t) => t.client));
  const realCallIds = subs.filter((x) => mine.has(x.client)).map((x) => x.sub.callId);
  const [r] = await db.query<{ k: string; o: string }>(
    `SELECT count(*) FILTER (WHERE backend = ANY($1)) AS k, count(*) FILTER (WHERE NOT backend = ANY($1)) AS o
     FROM md_gone WHERE (split_part(callid, '-', 2) = ANY($2) AND callid LIKE 'mdl-%') OR callid = ANY($3)`,
    [kamailioPids, tabs.map((t) => String(t.t)), realCallIds],
  );
  return { kamailio: Number(r?.k), others: Number(r?.o) };
}

/** Rows these surviving tabs lost (each had KEYS_PER_TAB). */
function rowsDeleted(tabs: Tab[], left: Map<number, number>): number {
  return tabs.reduce((n, t) => n + KEYS_PER_TAB - (left.get(t.t) ?? 0), 0);
}

/**
 * An HTTP tap in front of the node's JSON-RPC port: forwards every request as is (from 127.0.0.1,
 * which the node allows) and records each call's method, first parameter and HTTP status.
 */
async function startRpcTap(node: KamailioNode) {
  const target = new URL(node.rpcUrl);
  const calls: RpcCall[] = [];
  let inFlight = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      inFlight++;
      const body = Buffer.concat(chunks);
      let method = "";
      let presentity: string | undefined;
      try {
        const parsed = JSON.parse(body.toString()) as { method?: string; params?: unknown[] };
        method = parsed.method ?? "";
        if (typeof parsed.params?.[0] === "string") presentity = parsed.params[0];
      } catch {
        method = "(not JSON)";
      }
      const out = request(
        {
          host: target.hostname,
          port: Number(target.port),
          path: req.url,
          method: req.method,
          agent: false,
          localAddress: "127.0.0.1",
          headers: { ...req.headers, host: target.host, connection: "close" },
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          answer.on("end", () => {
            inFlight--;
            calls.push({
              at: performance.now(),
              method,
              ...(presentity ? { presentity } : {}),
              status: answer.statusCode ?? 0,
            });
          });
        },
      );
      out.on("error", () => {
        inFlight--;
        calls.push({ at: performance.now(), method, ...(presentity ? { presentity } : {}), status: 0 });
        res.destroy();
      });
      out.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}${target.pathname}`,
    calls,
    inFlight: () => inFlight,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function queueDepths(stack: LocalStack) {
  const client = stack.sqs.createClient();
  try {
    const count = async (url: string) => {
      const out = await client.send(
        new GetQueueAttributesCommand({
          QueueUrl: url,
          AttributeNames: [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
          ],
        }),
      );
      const attr = (n: QueueAttributeName) => Number(out.Attributes?.[n] ?? 0);
      return (
        attr("ApproximateNumberOfMessages") +
        attr("ApproximateNumberOfMessagesNotVisible") +
        attr("ApproximateNumberOfMessagesDelayed")
      );
    };
    return {
      events: await count(stack.sqs.queueUrl),
      followUps: await count(stack.sqs.followUpQueueUrl),
      eventsDlq: await count(stack.sqs.dlqUrl),
      followUpsDlq: await count(stack.sqs.followUpDlqUrl),
    };
  } finally {
    client.destroy();
  }
}

/**
 * Stops the worker and lets what it was doing end: the poller waits for its batches in flight,
 * but an invocation over its timeout runs on unobserved (local mode cannot kill it, Lambda would),
 * and its deletions and DLQ sends must land before the figures are read. Nothing signals its end,
 * so wait until the handlers' metrics, the row deletions and the RPC calls stop moving for 3 s
 * (at most 90 s).
 */
async function quiesce(stack: LocalStack, activity: () => string): Promise<void> {
  await stack.pauseWorker();
  const snapshot = () => JSON.stringify(stack.counters.metrics) + activity();
  let last = snapshot();
  let stableSince = performance.now();
  const deadline = performance.now() + 90_000;
  while (performance.now() - stableSince < 3000 && performance.now() < deadline) {
    await sleep(250);
    const now = snapshot();
    if (now !== last) {
      last = now;
      stableSince = performance.now();
    }
  }
}

async function queuesEmpty(stack: LocalStack): Promise<boolean> {
  const d = await queueDepths(stack);
  return d.events === 0 && d.followUps === 0;
}

function shmSampler(node: KamailioNode) {
  let peak = 0;
  const state = { before: 0 };
  const take = () =>
    shmUsedMb(node).then(
      (mb) => {
        peak = Math.max(peak, mb);
        return mb;
      },
      () => Number.NaN,
    );
  void take().then((mb) => {
    state.before = Number(mb.toFixed(1));
  });
  const timer = setInterval(() => void take(), 500);
  return {
    get before() {
      return state.before;
    },
    peak: () => Number(peak.toFixed(1)),
    stop: () => clearInterval(timer),
  };
}

/**
 * stop() signals Kamailio's main process only; one that needed its SIGKILL (a node this loaded may
 * not finish shutting down within 5 s) leaves its children running. They carry the node's own run
 * dir on their command line: end those, by pid.
 */
function killLeftovers(runDir: string): void {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(runDir))
        process.kill(Number(entry), "SIGKILL");
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
}

/** Kamailio's shm (and pkg) allocation failures, as refresh-capacity counts them. */

function tally(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}
