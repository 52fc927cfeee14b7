// Real browsers die the ways users make them die: a tab reloads, a tab is closed, the browser
// crashes, the whole browser goes silent (a laptop lid), one of a user's two tabs goes. Each
// scenario runs headless Chromium tabs with JsSIP subscribed to `presence` and `dialog` on real
// Kamailio 5.6.3, and runs first as its own control, without the service (worker paused):
//   - the dead tab's rows stay (5.6.3 never deletes them in sync mode), and a refresh with them
//     notified first answers 500 and reaches no survivor (GH #4118);
// then with the service (worker resumed, the queued close event processed):
//   - the dead rows are gone, the survivors' rows stay, every survivor is notified again and
//     holds the current state, and no live connection was reported closed.
// The connection.closed events each death produced, and how late, are printed per scenario
// (docs/browsers.md has the table).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEAD_CONNECTION_STATES } from "#core/kernel/liveness.ts";
import { SipWsClient } from "../helpers/sip-ws-client.ts";
import { waitUntil } from "../helpers/wait.ts";
import { type BrowserBed, startBrowserBed, startPageServer } from "./bed.ts";
import { launchChromium, type Tab, type TestBrowser } from "./chromium.ts";
import type { SoftphoneApi, Watch } from "./page/softphone.ts";

export type Transport = "ws" | "wss";

const pidf = (presentity: string, mark: string) => `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${presentity}">
  <tuple id="t1"><status><basic>open</basic></status><note>${mark}</note></tuple>
</presence>`;
const dialogInfo = (presentity: string, mark: string) => `<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="${presentity}">
  <dialog id="${mark}" direction="initiator"><state>confirmed</state></dialog>
</dialog-info>`;

/** What a scenario sets up: the tab whose subscriptions die, and the tabs that must survive it. */
interface Cast {
  victim: Tab;
  survivors: Tab[];
  /** Makes the victim's connection die, the way the scenario says. */
  die(): Promise<void>;
  /** Tabs that come back after the death (a reload): they must hold the current state too. */
  comeback?(): Promise<Tab[]>;
}

/** The browsers a scenario can use: `steady` lives for the whole file, `fresh()` launches another. */
interface Stage {
  steady: TestBrowser;
  fresh(): Promise<TestBrowser>;
  rows(callIds: string[]): Promise<unknown[]>;
}

const watches = (presentity: string): Watch[] => [
  { presentity, event: "presence" },
  { presentity, event: "dialog" },
];

type Cause = "tcp:closed" | "tcp:reset" | "tcp:timeout" | "websocket:closed";
/** The connection.closed causes a death may produce: the first one, and any of them (docs/browsers.md). */
interface Causes {
  first: Cause[];
  any: Cause[];
}
/** Reload and close: Chromium sends Close 1001 and FIN at once; 5.6.3 reports tcp:closed, then websocket:closed. */
const CLOSE_FRAME: Causes = { first: ["tcp:closed"], any: ["tcp:closed", "websocket:closed"] };

const SCENARIOS = {
  reload: {
    title:
      "reload: the new subscription is kept, the old rows go, survivors in other tabs hold the current state",
    causes: CLOSE_FRAME,
    async cast({ steady, rows }: Stage, presentity: string): Promise<Cast> {
      const victim = await steady.openTab("reloader", watches(presentity));
      const other = await steady.openTab("colleague", watches(presentity));
      return {
        victim: { ...victim, callIds: [...victim.callIds] },
        survivors: [other],
        die: async () => {
          await victim.page.reload();
        },
        comeback: async () => {
          await victim.start();
          expect(await rows(victim.callIds)).toHaveLength(2);
          return [victim];
        },
      };
    },
  },
  close: {
    title: "close: the tab is closed",
    causes: CLOSE_FRAME,
    async cast({ steady }: Stage, presentity: string): Promise<Cast> {
      const victim = await steady.openTab("closer", watches(presentity));
      const other = await steady.openTab("colleague", watches(presentity));
      return { victim, survivors: [other], die: () => victim.page.close() };
    },
  },
  crash: {
    title: "crash: the browser's process tree is killed",
    causes: { first: ["tcp:closed"], any: ["tcp:closed"] },
    async cast({ steady, fresh }: Stage, presentity: string): Promise<Cast> {
      const doomed = await fresh();
      const victim = await doomed.openTab("crasher", watches(presentity));
      const other = await steady.openTab("colleague", watches(presentity));
      return {
        victim,
        survivors: [other],
        die: async () => {
          doomed.kill();
        },
      };
    },
  },
  silent: {
    title:
      "silent browser: the keepalive gives up (websocket:closed), Kamailio keeps listing the connection as CONN_BAD, the service deletes the rows",
    causes: { first: ["websocket:closed"], any: ["websocket:closed"] },
    async cast({ steady, fresh }: Stage, presentity: string): Promise<Cast> {
      const frozen = await fresh();
      const victim = await frozen.openTab("sleeper", watches(presentity));
      const other = await steady.openTab("colleague", watches(presentity));
      return {
        victim,
        survivors: [other],
        die: async () => {
          frozen.freeze();
        },
      };
    },
  },
  twoTabs: {
    title: "two tabs of one user: one dies, the other keeps its rows",
    causes: CLOSE_FRAME,
    async cast({ steady }: Stage, presentity: string): Promise<Cast> {
      const victim = await steady.openTab("same-user", watches(presentity));
      const twin = await steady.openTab("same-user", watches(presentity));
      return { victim, survivors: [twin], die: () => victim.page.close() };
    },
  },
} satisfies Record<
  string,
  { title: string; causes: Causes; cast(stage: Stage, presentity: string): Promise<Cast> }
>;

export type ScenarioName = keyof typeof SCENARIOS;

/**
 * `keepaliveSeconds`: long where no scenario needs the keepalive (Kamailio's keepalive race
 * would otherwise close idle live peers: bed.ts); 5 for the silent browser, whose live peers are
 * then kept busy (an OPTIONS every 500 ms: Kamailio pings only connections idle for that long).
 */
export function browserScenarios(
  transport: Transport,
  names: ScenarioName[],
  opts: { keepaliveSeconds: number; keepBusy?: boolean },
): void {
  describe(`Chromium + JsSIP over ${transport} on Kamailio 5.6.3 through the local pipeline`, () => {
    let bed: BrowserBed;
    let pageUrl: string;
    let closePages: () => Promise<void>;
    let publisher: SipWsClient;
    /** Survivors' browser: stays for the whole file. */
    let steady: TestBrowser;
    const browsers: TestBrowser[] = [];
    let busy: NodeJS.Timeout | undefined;

    beforeAll(async () => {
      bed = await startBrowserBed({ tls: transport === "wss", keepaliveSeconds: opts.keepaliveSeconds });
      ({ url: pageUrl, close: closePages } = await startPageServer());
      publisher = await SipWsClient.connect(bed.plainWsUrl, { user: "publisher" });
      steady = await browser();
      if (opts.keepBusy)
        busy = setInterval(() => {
          publisher.ping().catch(() => {});
          for (const page of steady.browser.contexts().flatMap((c) => c.pages()))
            page.evaluate(() => (globalThis as unknown as { kwc: SoftphoneApi }).kwc.ping()).catch(() => {});
        }, 500);
    });

    afterAll(async () => {
      clearInterval(busy);
      for (const b of browsers) await b.close();
      publisher?.close();
      await closePages?.();
      await bed?.close();
    });

    async function browser(): Promise<TestBrowser> {
      const b = await launchChromium({ pageUrl, wsUrl: bed.wsUrl, ...(bed.caPem && { caPem: bed.caPem }) });
      browsers.push(b);
      return b;
    }

    async function publish(presentity: string, mark: string): Promise<void> {
      expect(await publisher.publish(presentity, { body: pidf(presentity, mark) })).toBe(200);
      expect(
        await publisher.publish(presentity, { event: "dialog", body: dialogInfo(presentity, mark) }),
      ).toBe(200);
    }

    async function rows(callIds: string[]): Promise<{ callid: string; contact: string }[]> {
      return bed.db.query(`SELECT callid, contact FROM active_watchers WHERE callid = ANY($1)`, [callIds]);
    }

    /** The peer port of a tab's WebSocket, as Kamailio saw it (fix_nated_contact put it in the contact). */
    async function peerPort(tab: Tab): Promise<number> {
      const [row] = await rows(tab.callIds.slice(0, 1));
      const port = Number(/@[^:;>]+:(\d+)/.exec(row?.contact ?? "")?.[1]);
      if (!port) throw new Error(`no peer port in contact ${row?.contact}`);
      return port;
    }

    /** Does every subscription of the tab hold `mark` in the last NOTIFY it got? */
    async function holds(tab: Tab, mark: string): Promise<boolean> {
      await tab.ping(); // barrier: every NOTIFY Kamailio sent before is in the state now
      const { notifies } = await tab.state();
      return tab.callIds.every((id) =>
        notifies
          .filter((n) => n.callId === id)
          .at(-1)
          ?.body.includes(mark),
      );
    }

    /**
     * Waits until the tab holds `mark`. The OPTIONS barrier in holds() is only approximate under
     * load: a NOTIFY queued to Kamailio's tcp main process can be overtaken by an OPTIONS reply
     * another worker writes directly; so what must arrive is awaited, not read once.
     */
    async function eventually(tab: Tab, mark: string, what: string): Promise<void> {
      await waitUntil(() => holds(tab, mark), {
        timeoutMs: 10_000,
        what: `${tab.user} to hold ${what} (${mark})`,
      });
    }

    /**
     * Makes these rows the first Kamailio notifies. Presence prepends the rows of its unordered
     * SELECT, so the row scanned last goes first. makeNotifiedFirst()'s no-op UPDATE is a HOT
     * update: the index entry keeps pointing at the old slot, and PostgreSQL picks an index scan
     * here once the table has a few rows. So compact the table (no free slot left to reuse), then
     * delete and re-insert the rows: they take the highest TIDs, last in a heap scan and last among
     * equal keys in the index. scanOrder() checks the result.
     */
    async function notifiedFirst(callIds: string[]): Promise<void> {
      await bed.db.query("VACUUM FULL active_watchers");
      await bed.db.query(
        "WITH moved AS (DELETE FROM active_watchers WHERE callid = ANY($1) RETURNING *) INSERT INTO active_watchers SELECT * FROM moved",
        [callIds],
      );
    }

    /** The connection from this peer port in Kamailio's core.tcp_list, if any. */
    async function connection(port: number): Promise<{ state: string } | undefined> {
      const { status, body } = await bed.node.rpc("core.tcp_list");
      if (status !== 200) throw new Error(`core.tcp_list: ${status}`);
      return (body.result as { src_port: number; state: string }[]).find((c) => c.src_port === port);
    }
    /** Kamailio can still send on the connection: listed, and not given up on (CONN_BAD/CONN_ERROR). */
    const usable = async (port: number) => {
      const c = await connection(port);
      return c !== undefined && !DEAD_CONNECTION_STATES.has(c.state);
    };

    /** The tab's subscriptions that got a NOTIFY after `since` (ms). */
    async function notifiedSince(tab: Tab, since: number): Promise<string[]> {
      await tab.ping();
      const { notifies } = await tab.state();
      return tab.callIds.filter((id) => notifies.some((n) => n.callId === id && n.receivedAt > since));
    }

    /** Call-IDs in the order of presence's unordered SELECT: the last is notified first. */
    async function scanOrder(presentity: string, event: string): Promise<string[]> {
      const r = await bed.db.query<{ callid: string }>(
        "SELECT callid FROM active_watchers WHERE presentity_uri = $1 AND event = $2",
        [presentity, event],
      );
      return r.map((x) => x.callid);
    }

    async function run(name: ScenarioName) {
      const { cast, causes } = SCENARIOS[name];
      const presentity = `sip:${name}-${transport}@example.com`;
      await publish(presentity, "v1");
      const stage: Stage = { steady, fresh: browser, rows };
      const { victim, survivors, die, comeback } = await cast(stage, presentity);
      const dead = [...victim.callIds];
      const survivorIds = survivors.flatMap((t) => t.callIds);
      expect(await rows([...dead, ...survivorIds])).toHaveLength(dead.length + survivorIds.length);
      for (const t of [victim, ...survivors]) await eventually(t, "v1", "the first state");
      const port = await peerPort(victim);
      const livePorts = await Promise.all(survivors.map(peerPort));
      expect(await usable(port)).toBe(true);

      // Control: the same death without the service.
      await bed.stack.pauseWorker();
      const diedAt = Date.now();
      await die();
      const first = await bed.waitForClose(port, name === "silent" ? 30_000 : undefined);
      // The control is about rows whose connection is gone. After the silent browser's keepalive
      // give-up, 5.6.3 keeps listing the connection as CONN_BAD for an hour (docs/browsers.md):
      // gone for Kamailio, which sends nothing on it, and for the service's liveness check.
      await waitUntil(async () => !(await usable(port)), {
        timeoutMs: 10_000,
        what: `Kamailio to drop or give up the connection from peer port ${port}`,
      });
      if (name === "silent") expect(await connection(port)).toMatchObject({ state: "CONN_BAD" });
      await waitUntil(
        async () => {
          const depth = await bed.stack.sqs.depth("queue");
          return depth.visible + depth.inFlight >= 1;
        },
        { timeoutMs: 10_000, what: "the close event waiting in SQS" },
      );
      const back = (await comeback?.()) ?? [];
      const alive = [...survivors, ...back];
      expect(await rows(dead), "without the service the dead tab's rows stay").toHaveLength(dead.length);
      // On one node a PUBLISH's own NOTIFY loop goes on past the dead rows (5.6.3 logs an error
      // for each): everyone alive gets v2.
      await publish(presentity, "v2");
      for (const t of alive) await eventually(t, "v2", "the PUBLISH");
      // A refresh does not (GH #4118): the one that carries another node's PUBLISH, or an operator's,
      // stops at the first dead row and answers 500; the survivors after it get nothing.
      await notifiedFirst(dead);
      const refreshedAt = Date.now();
      for (const event of ["presence", "dialog"]) {
        expect(dead).toContain((await scanOrder(presentity, event)).at(-1));
        const refresh = await bed.node.rpc("presence.refreshWatchers", [presentity, event, 1]);
        expect(refresh.status, `refreshWatchers ${event} with the dead rows first`).toBe(500);
      }
      for (const t of alive) expect(await notifiedSince(t, refreshedAt), `${t.user} starves`).toEqual([]);

      // With the service: the queued close event is processed (delete, then refresh).
      const resumedAt = Date.now();
      bed.stack.resumeWorker();
      await waitUntil(async () => (await rows(dead)).length === 0, {
        timeoutMs: 20_000,
        what: "the dead tab's rows to be deleted",
      });
      for (const t of alive)
        await waitUntil(async () => (await notifiedSince(t, resumedAt)).length === t.callIds.length, {
          timeoutMs: 20_000,
          what: `${t.user} to be notified by the service's refresh`,
        });
      for (const t of alive) await eventually(t, "v2", "the current state");
      const aliveIds = alive.flatMap((t) => t.callIds);
      expect(await rows(aliveIds)).toHaveLength(aliveIds.length);

      // Events: the death's closes (none for a live connection), and nothing the contract refused.
      for (const p of livePorts) expect(bed.closesOf(p)).toEqual([]);
      expect(bed.stack.counters.rejects).toBe(0);
      const closes = bed.closesOf(port).map(({ event, receivedAt }) => ({
        cause: event.type === "connection.closed" ? event.cause : event.type,
        ms: receivedAt - diedAt,
      }));
      expect(causes.first).toContain(closes[0]?.cause);
      for (const c of closes) expect(causes.any).toContain(c.cause);
      console.log(
        `[browser] ${transport} ${name}: ${closes.map((c) => `${c.cause} +${c.ms} ms`).join(", ")} (first +${first.receivedAt - diedAt} ms)`,
      );
    }

    for (const name of names) it(SCENARIOS[name].title, () => run(name));
  });
}
