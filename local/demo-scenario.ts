/**
 * The demo's scenario (`npm run demo`), on a running local stack with two Kamailio nodes
 * (per-node watchers tables, shared presentity table, notifier_processes 0):
 *
 *  1. one node: a publisher and several watchers (browser tabs); one tab dies abruptly (RST).
 *     - WITHOUT the service (worker paused): Kamailio 5.6.3's presence.refreshWatchers answers
 *       500 at the dead row, the row stays, and the survivors after it get no NOTIFY (GH #4118).
 *     - the worker starts again: the close event was waiting in SQS, the row goes, every
 *       survivor gets its NOTIFY.
 *     - WITH the service running: another tab dies; the row goes and every survivor is notified.
 *  2. two nodes: the publisher on node A, watchers on node B.
 *     - WITHOUT the service: a PUBLISH on A reaches none of B's watchers.
 *     - WITH it: the `presence.changed` fan-out refreshes B; then a tab on B dies while A publishes
 *       again: B's stale row goes and every survivor on B gets the new state.
 *
 * The dead watcher is made the FIRST one Kamailio notifies (presence prepends the rows of an
 * unordered SELECT, so the last row of the scan is notified first): it subscribes last (highest
 * id: last in MariaDB's scan) and, on PostgreSQL, its row is rewritten by a no-op UPDATE (a new
 * tuple goes to the end of the heap). The result says whether that order held.
 *
 * Returns values (counts, statuses, timings) for the table and for the e2e test.
 */
import { pidfBody, SipWsClient, type Subscription } from "../test/helpers/sip-ws-client.ts";
import type { Engine } from "./db.ts";
import type { LocalStack, NodeInfo } from "./stack.ts";

export type Query = <T>(sql: string, params?: unknown[]) => Promise<T[]>;

export interface DemoOptions {
  stack: LocalStack;
  engine: Engine;
  /** SQL on the stack's database ($1 placeholders on PostgreSQL, ? on MySQL). */
  query: Query;
  /** Survivors per node (default 3). */
  survivors?: number;
  /** How long to wait for anything that should happen (default 20 s). */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface DeathOutcome {
  survivors: number;
  /** Survivors that received a NOTIFY after the death (and after `since`). */
  survivorsNotified: number;
  /** The dead tab's row is gone from the node's watchers table. */
  rowGone: boolean;
  /** ms from the death (or from the worker's restart) until the row was gone. */
  rowGoneMs?: number;
  /** ms until the last survivor's NOTIFY arrived. */
  allNotifiedMs?: number;
}

export interface DemoResult {
  engine: Engine;
  oneNode: {
    /** The dead row was first in Kamailio's notify order (the precondition of the bug). */
    deadNotifiedFirst: boolean;
    withoutService: {
      /** The close event reached SQS (Kamailio reported the death; nobody processed it). */
      eventWaitingInSqs: boolean;
      /** HTTP status of presence.refreshWatchers (500 on 5.6.3 with the stale row first). */
      refreshStatus: number;
      refreshError?: string;
      survivors: number;
      survivorsNotified: number;
      staleRowKept: boolean;
    };
    /** The worker started again and processed the waiting event (timings from the restart). */
    catchUp: DeathOutcome;
    withService: DeathOutcome & { deadNotifiedFirst: boolean; refreshStatusAfter: number };
  };
  twoNodes: {
    withoutService: { publishStatus: number; watchersOnB: number; notifiedOnB: number };
    /** The worker started again: the waiting presence.changed was fanned out to B. */
    catchUp: { notifiedOnB: number; allNotifiedMs?: number };
    withService: DeathOutcome & { deadNotifiedFirst: boolean; publishStatus: number };
  };
}

const placeholder = (engine: Engine, n: number) => (engine === "postgres" ? `$${n}` : "?");

async function rpc(
  node: NodeInfo,
  token: string,
  method: string,
  params: unknown[],
): Promise<{ status: number; error?: string }> {
  const res = await fetch(node.rpcUrl, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", connection: "close" },
    body: JSON.stringify({ jsonrpc: "2.0", method, params, id: 1 }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
  return { status: res.status, ...(body.error?.message ? { error: body.error.message } : {}) };
}

/** Resolves true once `check` holds, false at the deadline (the demo reports, it does not throw). */
async function within(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Tab {
  client: SipWsClient;
  sub: Subscription;
}

export async function runDemoScenario(options: DemoOptions): Promise<DemoResult> {
  const { stack, engine, query } = options;
  const log = options.log ?? (() => {});
  const timeoutMs = options.timeoutMs ?? 20_000;
  const survivorCount = options.survivors ?? 3;
  const clients: SipWsClient[] = [];
  const [nodeA, nodeB] = stack.nodes;
  if (!nodeA?.wsUrl || !nodeB?.wsUrl) throw new Error("the demo needs a stack with two local nodes");
  const p = (n: number) => placeholder(engine, n);

  async function connect(node: NodeInfo, user: string): Promise<SipWsClient> {
    const ip = /^ws:\/\/([^:/]+):/.exec(node.wsUrl ?? "")?.[1];
    const client = await SipWsClient.connect(node.wsUrl ?? "", { user, ...(ip && { localAddress: ip }) });
    clients.push(client);
    return client;
  }
  async function watch(node: NodeInfo, user: string, presentity: string): Promise<Tab> {
    const client = await connect(node, user);
    const sub = await client.subscribe(presentity, { expires: 3600 });
    if (sub.status !== 200) throw new Error(`SUBSCRIBE of ${user} answered ${sub.status}`);
    await client.waitForNotify((n) => n.callId === sub.callId, timeoutMs);
    return { client, sub };
  }
  const rowCount = async (node: NodeInfo, callId: string) => {
    const rows = await query<{ n: number | string }>(
      `SELECT count(*) AS n FROM ${node.watchersTable} WHERE callid = ${p(1)}`,
      [callId],
    );
    return Number(rows[0]?.n ?? 0);
  };
  /** Make `dead` the first row Kamailio notifies, and say whether it is. */
  async function putFirstInNotifyOrder(node: NodeInfo, presentity: string, dead: Tab): Promise<boolean> {
    if (engine === "postgres")
      await query(`UPDATE ${node.watchersTable} SET flags = flags WHERE callid = $1`, [dead.sub.callId]);
    const order = await query<{ callid: string }>(
      `SELECT callid FROM ${node.watchersTable} WHERE presentity_uri = ${p(1)} AND event = 'presence'`,
      [presentity],
    );
    return order.at(-1)?.callid === dead.sub.callId;
  }
  const marks = (tabs: Tab[]) => tabs.map((t) => t.client.notifies.length);
  /** Survivors that got a NOTIFY of their dialog after `mark` (optionally with `text` in the body). */
  const notifiedSince = (tabs: Tab[], mark: number[], text?: string) =>
    tabs.filter((t, i) =>
      t.client.notifies
        .slice(mark[i] ?? 0)
        .some((n) => n.callId === t.sub.callId && (!text || n.body.includes(text))),
    ).length;
  /** Waits for the row to go and every survivor's NOTIFY; timings from `since`. */
  async function outcome(
    node: NodeInfo,
    dead: Tab,
    survivors: Tab[],
    mark: number[],
    since: number,
    text?: string,
  ): Promise<DeathOutcome> {
    let rowGoneMs: number | undefined;
    let allNotifiedMs: number | undefined;
    await Promise.all([
      within(async () => (await rowCount(node, dead.sub.callId)) === 0, timeoutMs).then((ok) => {
        if (ok) rowGoneMs = performance.now() - since;
      }),
      within(() => notifiedSince(survivors, mark, text) === survivors.length, timeoutMs).then((ok) => {
        if (ok) allNotifiedMs = performance.now() - since;
      }),
    ]);
    return {
      survivors: survivors.length,
      survivorsNotified: notifiedSince(survivors, mark, text),
      rowGone: rowGoneMs !== undefined,
      ...(rowGoneMs !== undefined && { rowGoneMs: Math.round(rowGoneMs) }),
      ...(allNotifiedMs !== undefined && { allNotifiedMs: Math.round(allNotifiedMs) }),
    };
  }
  const eventsQueued = async () => {
    const d = await stack.sqs.depth("queue");
    return d.visible + d.inFlight;
  };

  try {
    // ── 1. one node ───────────────────────────────────────────────────────────────────────────
    const alice = "sip:alice@example.com";
    log(`1. node ${nodeA.id}: alice publishes, ${survivorCount + 1} browser tabs watch her`);
    const publisherA = await connect(nodeA, "alice");
    if ((await publisherA.publish(alice)) !== 200) throw new Error("alice's PUBLISH failed");
    const survivorsA: Tab[] = [];
    for (let i = 1; i <= survivorCount; i++) survivorsA.push(await watch(nodeA, `bob${i}`, alice));
    const deadA = await watch(nodeA, "bob-tab-that-dies", alice);
    const deadFirstA = await putFirstInNotifyOrder(nodeA, alice, deadA);

    log(
      "   without the service (worker paused): the tab dies (TCP RST), then Kamailio refreshes alice's watchers",
    );
    await stack.pauseWorker();
    await deadA.client.die("rst");
    const eventWaitingInSqs = await within(async () => (await eventsQueued()) >= 1, timeoutMs);
    let mark = marks(survivorsA);
    const refresh = await rpc(nodeA, stack.rpcToken, "presence.refreshWatchers", [alice, "presence", 1]);
    // In sync mode every NOTIFY of the refresh is on the wire before the RPC returns: OPTIONS is a barrier.
    for (const s of survivorsA) await s.client.ping();
    const withoutServiceA = {
      eventWaitingInSqs,
      refreshStatus: refresh.status,
      ...(refresh.error && { refreshError: refresh.error }),
      survivors: survivorsA.length,
      survivorsNotified: notifiedSince(survivorsA, mark),
      staleRowKept: (await rowCount(nodeA, deadA.sub.callId)) === 1,
    };

    log("   the worker starts again: the close event waited in SQS");
    mark = marks(survivorsA);
    let since = performance.now();
    stack.resumeWorker();
    const catchUpA = await outcome(nodeA, deadA, survivorsA, mark, since);

    log("   with the service running: another tab dies");
    const deadA2 = await watch(nodeA, "bob-tab-that-dies-too", alice);
    const deadFirstA2 = await putFirstInNotifyOrder(nodeA, alice, deadA2);
    mark = marks(survivorsA);
    since = performance.now();
    await deadA2.client.die("rst");
    const withServiceA = await outcome(nodeA, deadA2, survivorsA, mark, since);
    const after = await rpc(nodeA, stack.rpcToken, "presence.refreshWatchers", [alice, "presence", 1]);

    // ── 2. two nodes ──────────────────────────────────────────────────────────────────────────
    const carol = "sip:carol@example.com";
    log(`2. two nodes: carol publishes on ${nodeA.id}, ${survivorCount + 1} tabs watch her on ${nodeB.id}`);
    const publisherC = await connect(nodeA, "carol");
    if ((await publisherC.publish(carol)) !== 200) throw new Error("carol's PUBLISH failed");
    const survivorsB: Tab[] = [];
    for (let i = 1; i <= survivorCount; i++) survivorsB.push(await watch(nodeB, `dave${i}`, carol));

    log(`   without the service (worker paused): carol changes her status on ${nodeA.id}`);
    await stack.pauseWorker();
    mark = marks(survivorsB);
    const busy = "in-a-meeting";
    const publishStatus = await publisherC.publish(carol, { body: pidfBody(carol, "closed", busy) });
    for (const s of survivorsB) await s.client.ping();
    const withoutServiceB = {
      publishStatus,
      watchersOnB: survivorsB.length,
      notifiedOnB: notifiedSince(survivorsB, mark, busy),
    };
    log("   the worker starts again: the presence.changed event waited in SQS");
    since = performance.now();
    stack.resumeWorker();
    const fannedOut = await within(
      () => notifiedSince(survivorsB, mark, busy) === survivorsB.length,
      timeoutMs,
    );
    const catchUpB = {
      notifiedOnB: notifiedSince(survivorsB, mark, busy),
      ...(fannedOut && { allNotifiedMs: Math.round(performance.now() - since) }),
    };

    log(`   with the service running: a tab on ${nodeB.id} dies while carol changes her status again`);
    const deadB = await watch(nodeB, "dave-tab-that-dies", carol);
    const deadFirstB = await putFirstInNotifyOrder(nodeB, carol, deadB);
    mark = marks(survivorsB);
    const back = "back-at-my-desk";
    since = performance.now();
    await deadB.client.die("rst");
    const publishAgain = await publisherC.publish(carol, { body: pidfBody(carol, "open", back) });
    const withServiceB = await outcome(nodeB, deadB, survivorsB, mark, since, back);

    return {
      engine,
      oneNode: {
        deadNotifiedFirst: deadFirstA,
        withoutService: withoutServiceA,
        catchUp: catchUpA,
        withService: { ...withServiceA, deadNotifiedFirst: deadFirstA2, refreshStatusAfter: after.status },
      },
      twoNodes: {
        withoutService: withoutServiceB,
        catchUp: catchUpB,
        withService: { ...withServiceB, deadNotifiedFirst: deadFirstB, publishStatus: publishAgain },
      },
    };
  } finally {
    stack.resumeWorker();
    for (const c of clients) c.close();
  }
}

const ms = (v: number | undefined) => (v === undefined ? "never" : `${v} ms`);

/** The before/after table a newcomer reads (cells may span several lines). */
export function formatDemoTable(r: DemoResult): string {
  const one = r.oneNode;
  const two = r.twoNodes;
  const off = one.withoutService;
  type Row = [string[], string[], string[]];
  const rows: Row[] = [
    [
      ["1 node: a tab dies (TCP RST)"],
      [
        `refreshWatchers → ${off.refreshStatus}${off.refreshError ? ` "${off.refreshError}"` : ""}`,
        `${off.survivorsNotified}/${off.survivors} survivors notified`,
        `stale row ${off.staleRowKept ? "kept" : "gone"}`,
      ],
      [
        `row gone in ${ms(one.withService.rowGoneMs)}`,
        `${one.withService.survivorsNotified}/${one.withService.survivors} survivors notified in ${ms(one.withService.allNotifiedMs)}`,
        `refreshWatchers → ${one.withService.refreshStatusAfter}`,
      ],
    ],
    [
      ["   then the worker starts again"],
      [`the close event waited in SQS: ${off.eventWaitingInSqs ? "yes" : "no"}`],
      [
        `row gone ${ms(one.catchUp.rowGoneMs)} after the restart`,
        `${one.catchUp.survivorsNotified}/${one.catchUp.survivors} survivors notified in ${ms(one.catchUp.allNotifiedMs)}`,
      ],
    ],
    [
      ["2 nodes: PUBLISH on A, watchers on B"],
      [
        `PUBLISH → ${two.withoutService.publishStatus}`,
        `${two.withoutService.notifiedOnB}/${two.withoutService.watchersOnB} watchers on B notified`,
      ],
      [
        `(worker started again: fan-out)`,
        `${two.catchUp.notifiedOnB}/${two.withoutService.watchersOnB} notified in ${ms(two.catchUp.allNotifiedMs)}`,
      ],
    ],
    [
      ["2 nodes: a tab on B dies", "  + PUBLISH on A"],
      ["(B's survivors starve as above)"],
      [
        `row gone in ${ms(two.withService.rowGoneMs)}`,
        `${two.withService.survivorsNotified}/${two.withService.survivors} on B got the new state in ${ms(two.withService.allNotifiedMs)}`,
      ],
    ],
  ];
  const header: Row = [["scenario"], ["without the service (worker paused)"], ["with the service"]];
  const widths = [0, 1, 2].map((i) =>
    Math.max(...[header, ...rows].flatMap((row) => (row[i] ?? []).map((cell) => cell.length))),
  );
  const render = (row: Row) => {
    const height = Math.max(...row.map((cells) => cells.length));
    const out: string[] = [];
    for (let k = 0; k < height; k++)
      out.push(
        row
          .map((cells, i) => (cells[k] ?? "").padEnd(widths[i] ?? 0))
          .join(" │ ")
          .trimEnd(),
      );
    return out.join("\n");
  };
  const rule = widths.map((w) => "─".repeat(w)).join("─┼─");
  const order = [one.deadNotifiedFirst, one.withService.deadNotifiedFirst, two.withService.deadNotifiedFirst];
  const notes = [
    order.every(Boolean)
      ? "The demo makes each dead tab the first row Kamailio notifies (in production that order is arbitrary):\nevery survivor after it starves."
      : "Note: a dead tab was not first in Kamailio's notify order this time, so fewer survivors may starve.",
    '"after the restart" includes up to one visibility timeout (2 s): the stopped poller\'s last long poll',
    "had already taken the message, and SQS hands it out again only after that timeout, as in AWS.",
  ];
  return [render(header), rule, ...rows.flatMap((row) => [render(row), rule]), "", ...notes].join("\n");
}
