// The problem the project solves, kept as a test (GH #4118, Kamailio 5.6.3, notifier_processes=0):
// a dead WebSocket watcher notified first makes presence.refreshWatchers answer 500, its row stays,
// and the survivors after it get no NOTIFY. Deleting the row and refreshing again reaches every
// survivor. Run on PostgreSQL and MariaDB, for `presence` and `dialog`.
//
// Order is made deterministic: presence prepends the rows of an un-ordered SELECT, so the row that
// comes LAST in the scan is notified FIRST. The dead watcher subscribes last (highest id: last in
// MariaDB's index order) and, on PostgreSQL, its row is touched with a no-op UPDATE after every
// initial NOTIFY (a new tuple goes to the end of the heap). The test checks that order first.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Engine, makeNotifiedFirst, type TestDb } from "../../helpers/db.ts";
import type { KamailioNode } from "../../helpers/kamailio.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import type { EventReceiver } from "../../helpers/receiver.ts";
import type { Subscription } from "../../helpers/sip-ws-client.ts";
import { waitUntil } from "../../helpers/wait.ts";

// A matrix, not a cross-product: the bug on both engines (nated contacts), once with alias
// contacts, and notifier mode on MariaDB, where Kamailio deletes the undeliverable row itself.

/** Kamailio's ERROR lines, for the message of an assertion about what Kamailio did. */
function kamailioErrors(node: KamailioNode): string {
  const errors = node
    .log()
    .split("\n")
    .filter((line) => line.includes("ERROR"));
  return `Kamailio errors (${node.logFile}):\n${errors.slice(-20).join("\n")}`;
}

const MATRIX: {
  engine: Engine;
  listenIp: string;
  notifierProcesses: 0 | 1;
  contactStyle: "nated" | "alias";
}[] = [
  { engine: "postgres", listenIp: "127.0.0.4", notifierProcesses: 0, contactStyle: "nated" },
  { engine: "mysql", listenIp: "127.0.0.5", notifierProcesses: 0, contactStyle: "nated" },
  { engine: "postgres", listenIp: "127.0.0.15", notifierProcesses: 0, contactStyle: "alias" },
  { engine: "mysql", listenIp: "127.0.0.16", notifierProcesses: 1, contactStyle: "nated" },
];

describe.each(MATRIX)(
  "GH #4118 on 5.6.3: $engine, notifier_processes=$notifierProcesses, $contactStyle contacts",
  ({ engine, listenIp, notifierProcesses, contactStyle }) => {
    let bed: NodeBed;
    let db: TestDb;
    let rx: EventReceiver;
    let node: KamailioNode;
    const ph = (n: number) => bed.ph(n);
    const watch = (user: string, presentity: string, event: string) => bed.watch(user, presentity, event);

    beforeAll(async () => {
      bed = await startNodeBed(engine, "kambug", {
        nodeId: `bug-${engine}`,
        listenIp,
        notifierProcesses,
        contactStyle,
      });
      ({ db, rx, node } = bed);
    });

    afterAll(() => bed?.close());

    /** callids in the order Kamailio's SELECT returns them (no ORDER BY, as presence does). */
    async function scanOrder(presentity: string, event: string): Promise<string[]> {
      const rows = await db.query<{ callid: string }>(
        `SELECT callid FROM active_watchers WHERE presentity_uri = ${ph(1)} AND event = ${ph(2)}`,
        [presentity, event],
      );
      return rows.map((r) => r.callid);
    }

    const rowsOf = async (sub: Subscription) =>
      db.query<{ contact: string }>(`SELECT contact FROM active_watchers WHERE callid = ${ph(1)}`, [
        sub.callId,
      ]);

    it.each(["presence", "dialog"])(
      "%s: a dead watcher notified first (sync: 500, row stays, survivors starve until it is deleted; notifier: Kamailio deletes it)",
      async (event) => {
        const presentity = `sip:boss-${event}@example.com`;
        const publisher = await bed.connect(`boss-${event}`);
        expect(await publisher.publish(presentity, { event })).toBe(200);

        const s1 = await watch(`s1-${event}`, presentity, event);
        const s2 = await watch(`s2-${event}`, presentity, event);
        const dead = await watch(`dead-${event}`, presentity, event);
        await makeNotifiedFirst(db, dead.sub.callId);
        const order = await scanOrder(presentity, event);
        expect(order).toHaveLength(3);
        expect(order.at(-1)).toBe(dead.sub.callId); // last in the scan = notified first

        // the row names the connection only through its contact
        const [deadRow] = await rowsOf(dead.sub);
        const { localAddress: ip, localPort: port } = dead.c;
        expect(deadRow?.contact).toContain(
          contactStyle === "alias" ? `;alias=${ip}~${port}~5` : `@${ip}:${port};`,
        );

        await dead.c.die("terminate");
        await rx.waitFor(
          (e) =>
            e.type === "connection.closed" && e.peer.port === dead.c.localPort && e.cause === "tcp:closed",
        );

        if (notifierProcesses === 1) {
          // notifier mode: the RPC only marks rows; the notifier fails on the dead row, deletes it and
          // goes on, so survivors are notified within waitn_time (1 s) and nothing is left to clean
          const marked = { s1: s1.c.notifies.length, s2: s2.c.notifies.length };
          const refresh = await node.rpc("presence.refreshWatchers", [presentity, event, 1]);
          expect(refresh.status).toBe(200);
          await s1.c.waitForNotify(
            (n) => n.callId === s1.sub.callId && s1.c.notifies.indexOf(n) >= marked.s1,
          );
          await s2.c.waitForNotify(
            (n) => n.callId === s2.sub.callId && s2.c.notifies.indexOf(n) >= marked.s2,
          );
          await waitUntil(async () => (await rowsOf(dead.sub)).length === 0, {
            what: "Kamailio deleting the dead row",
          });
          return;
        }

        const mark = { s1: s1.c.notifies.length, s2: s2.c.notifies.length };
        const first = await node.rpc("presence.refreshWatchers", [presentity, event, 1]);
        expect(first.status).toBe(500);
        expect(first.body.error).toEqual({ code: 500, message: "Execution failed" });
        // sync mode: every NOTIFY of the refresh is on the wire before the RPC returns; ping = barrier
        await s1.c.ping();
        await s2.c.ping();
        expect(s1.c.notifies.length - mark.s1).toBe(0);
        expect(s2.c.notifies.length - mark.s2).toBe(0);
        expect(await rowsOf(dead.sub)).toHaveLength(1); // the stale row stays

        // what the service does: delete the stale row, refresh again -> every survivor is notified
        await db.query(`DELETE FROM active_watchers WHERE callid = ${ph(1)}`, [dead.sub.callId]);
        const second = await node.rpc("presence.refreshWatchers", [presentity, event, 1]);
        // (seen once in ~20 full-suite runs on a loaded machine: a 500 here; the log says why)
        expect(second.status, kamailioErrors(node)).toBe(200);
        await s1.c.ping();
        await s2.c.ping();
        for (const s of [s1, s2]) {
          const fresh = s.c.notifiesFor(s.sub).slice(s === s1 ? mark.s1 : mark.s2);
          expect(fresh).toHaveLength(1);
          expect(fresh[0]?.event).toBe(event);
          expect(fresh[0]?.subscriptionState).toMatch(/^active/);
        }
      },
    );
  },
);
