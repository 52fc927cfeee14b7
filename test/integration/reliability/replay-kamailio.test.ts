// Replay and order, a sample through real Kamailio 5.6.3 (issue 18; the 10,000-event runs are
// in-process, replay.test.ts), on PostgreSQL and on MariaDB: one node with the shipped cfg
// (fix_nated_contact(), notifier_processes=0, WS keepalive 30 s), 48 real WebSocket watchers on 6
// presentities (seeded fates, seed 18):
//   12 stay connected, 6 of which answer the NOTIFY of a PUBLISH with 410 (the cfg posts
//   notify.failed for their exact dialogs: the liveness guard must keep them);
//   8 die with RST and reconnect on the same ip:port (RST leaves no TIME_WAIT), then re-SUBSCRIBE;
//   4 die with FIN and come back on a new port (a new peer), then re-SUBSCRIBE;
//   24 die for good, 6 each with RST, FIN, a page kill (ws.terminate) and a WebSocket close frame.
// A PUBLISH per presentity before the deaths adds presence.changed events. The envelopes the cfg
// really posted go to the worker (real JSON-RPC liveness, local Data API) in
// order, 3 messages per batch; then, on the table restored to the same rows, every message twice
// (a second message id, as a retried POST gives), shuffled across batches. Both runs must leave
// exactly the rows the fates keep: every row of a peer dead at the end gone; the rows of live
// peers kept, the old rows of the same-port reconnects included (their peer is connected again),
// so no live watcher's row is ever deleted. Control: before the worker, Kamailio itself deleted
// none of them (5.6.3 in sync mode keeps a dead WS watcher's row).
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectionClosed } from "#core/contract.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { testDbConfig } from "../../helpers/dataapi.ts";
import type { Engine } from "../../helpers/db.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { freePort, loopbackAddress } from "../../helpers/ports.ts";
import type { DieMode, SipWsClient, Subscription } from "../../helpers/sip-ws-client.ts";
import { SipWsClient as Client } from "../../helpers/sip-ws-client.ts";
import { seededRandom } from "../../helpers/watcher-world.ts";
import { nodeConfigOf, startDataApi, workerFor } from "../worker/harness.ts";

type Fate =
  | { kind: "live"; refuses?: true }
  | { kind: "back-same-port" }
  | { kind: "back-new-port" }
  | { kind: "dead"; how: DieMode };
const FATES: [Fate, number][] = [
  [{ kind: "live" }, 6],
  [{ kind: "live", refuses: true }, 6],
  [{ kind: "back-same-port" }, 8],
  [{ kind: "back-new-port" }, 4],
  [{ kind: "dead", how: "rst" }, 6],
  [{ kind: "dead", how: "fin" }, 6],
  [{ kind: "dead", how: "terminate" }, 6],
  [{ kind: "dead", how: "close-frame" }, 6],
];
const PRESENTITIES = 6;
const BATCH = 3;

let api: { server: DataApiServer; client: RDSDataClient };
beforeAll(async () => {
  api = await startDataApi();
});
afterAll(async () => {
  await api?.server.close();
});

interface Watcher {
  user: string;
  presentity: string;
  fate: Fate;
  c: SipWsClient;
  sub: Subscription;
  /** The subscription made after coming back (back-* fates). */
  again?: Subscription;
}

describe.each(["postgres", "mysql"] as Engine[])(
  "replay and order through real Kamailio 5.6.3 (%s)",
  (engine) => {
    let bed: NodeBed;
    beforeAll(async () => {
      bed = await startNodeBed(engine, `replaykam${engine === "postgres" ? "pg" : "my"}`, {
        nodeId: `replay-${engine === "postgres" ? "pg" : "my"}`,
        notifierProcesses: 0,
        listenIp: loopbackAddress(),
        defines: { KWC_WS_KEEPALIVE: 30 },
      });
    });
    afterAll(async () => {
      await bed?.close();
    });

    it("48 real watchers, deaths of four kinds, reconnects: the cfg's envelopes in order and twice shuffled give the same exact rows, no live watcher deleted", async () => {
      const random = seededRandom(18);
      const fates = random.shuffle(FATES.flatMap(([fate, n]) => Array.from({ length: n }, () => fate)));
      // The clients bind a loopback address of their own: reusing a port after RST then never races
      // another process's ephemeral port.
      const clientAddress = loopbackAddress();
      const connect = async (user: string, localPort?: number) => {
        const c = await Client.connect(bed.node.wsUrl, {
          user,
          localAddress: clientAddress,
          ...(localPort && { localPort }),
        });
        bed.clients.push(c);
        return c;
      };
      const subscribe = async (c: SipWsClient, presentity: string) => {
        const sub = await c.subscribe(presentity);
        expect(sub.status).toBe(200);
        await c.waitForNotify((n) => n.callId === sub.callId);
        return sub;
      };
      const watchers: Watcher[] = [];
      for (const [i, fate] of fates.entries()) {
        const presentity = `sip:replayk${i % PRESENTITIES}@example.com`;
        const c = await connect(`rk${i}`);
        watchers.push({ user: `rk${i}`, presentity, fate, c, sub: await subscribe(c, presentity) });
      }
      const used = new Set(watchers.map((w) => w.c.localPort));
      const unusedPort = async () => {
        let port = await freePort(clientAddress);
        while (used.has(port)) port = await freePort(clientAddress);
        used.add(port);
        return port;
      };
      // Before any death (5.6.3's NOTIFY loop stops at a dead watcher): one PUBLISH per presentity;
      // the refusing watchers answer its NOTIFY with 410, which presence leaves alone.
      const refusing = watchers.filter((w) => w.fate.kind === "live" && w.fate.refuses);
      for (const w of refusing) w.c.answerNotifiesWith(410);
      const publisher = await connect("rkpub");
      for (let i = 0; i < PRESENTITIES; i++)
        expect(await publisher.publish(`sip:replayk${i}@example.com`)).toBe(200);
      for (const w of refusing)
        await bed.rx.waitFor((e) => e.type === "notify.failed" && e.dialog.callId === w.sub.callId, 10_000);
      for (const w of refusing) w.c.answerNotifiesWith(200);
      const closedEvent = (port: number) =>
        bed.rx.events.find(
          (e): e is ConnectionClosed => e.type === "connection.closed" && e.peer.port === port,
        );
      for (const w of watchers) {
        if (w.fate.kind === "live") continue;
        await w.c.die(w.fate.kind === "dead" ? w.fate.how : w.fate.kind === "back-same-port" ? "rst" : "fin");
        await bed.rx.waitFor((e) => e.type === "connection.closed" && e.peer.port === w.c.localPort, 10_000);
      }
      for (const w of watchers) {
        if (w.fate.kind !== "back-same-port" && w.fate.kind !== "back-new-port") continue;
        // A new port that no watcher had: the kernel could otherwise hand out a dead peer's port again.
        const port = w.fate.kind === "back-same-port" ? w.c.localPort : await unusedPort();
        const back = await connect(w.user, port);
        if (w.fate.kind === "back-same-port") expect(back.localPort).toBe(w.c.localPort);
        else expect(back.localPort).not.toBe(w.c.localPort);
        w.again = await subscribe(back, w.presentity);
      }
      await bed.node.rpc("core.uptime"); // the node answers; every close event was posted above
      for (const w of watchers) if (w.fate.kind !== "live") expect(closedEvent(w.c.localPort)).toBeDefined();

      const table = bed.node.watchersTable;
      const ids = async () =>
        (await bed.db.query<{ callid: string }>(`SELECT callid FROM ${table} ORDER BY callid`)).map(
          (r) => r.callid,
        );
      const before = await ids();
      const all = [
        ...watchers.map((w) => w.sub.callId),
        ...watchers.flatMap((w) => (w.again ? [w.again.callId] : [])),
      ];
      expect(before).toEqual([...all].sort()); // control: Kamailio deleted none of the dead watchers' rows
      // The fates' rules: a row goes when its peer is dead at the end, every other row stays.
      const peerDead = (w: Watcher) => w.fate.kind === "dead" || w.fate.kind === "back-new-port";
      const gone = watchers.filter(peerDead).map((w) => w.sub.callId);
      const expected = before.filter((id) => !gone.includes(id));

      const snapshot = await bed.db.query<Record<string, unknown>>(`SELECT * FROM ${table}`);
      const restore = async () => {
        await bed.db.query(`DELETE FROM ${table}`);
        for (const row of snapshot) {
          const cols = Object.keys(row);
          await bed.db.query(
            `INSERT INTO ${table} (${cols.join(", ")}) VALUES (${cols.map((_, i) => bed.ph(i + 1)).join(", ")})`,
            cols.map((c) => row[c]),
          );
        }
        expect(await ids()).toEqual(before);
      };
      const fleet = {
        version: 1 as const,
        database: testDbConfig(bed.db),
        notifyFailureCodes: [408, 410, 481],
        nodes: [nodeConfigOf(bed.node, "nated")],
      };
      const tokens = new Map([[bed.node.nodeId, bed.node.rpcToken]]);
      const messages = bed.rx.envelopes.map((e, i) => ({ messageId: `k${i}`, body: JSON.stringify(e) }));
      const run = async (list: typeof messages) => {
        const worker = workerFor(fleet, api.client, tokens);
        const results = [];
        for (let i = 0; i < list.length; i += BATCH) results.push(await worker.run(list.slice(i, i + BATCH)));
        return {
          failed: results.flatMap((r) => r.failedMessageIds),
          deleted: results.reduce((s, r) => s + r.deleted, 0),
          guardKeeps: results.reduce((s, r) => s + r.guardKeeps, 0),
          dlq: worker.dlq.items,
          audits: worker.tel.audits.length,
        };
      };

      const inOrder = await run(messages);
      const afterInOrder = await ids();
      await restore();
      const twice = random.shuffle([
        ...messages,
        ...messages.map((m) => ({ ...m, messageId: `${m.messageId}b` })),
      ]);
      const replayed = await run(twice);
      const afterReplay = await ids();

      expect(afterInOrder).toEqual(expected);
      expect(afterReplay).toEqual(expected);
      for (const r of [inOrder, replayed]) {
        expect(r.failed).toEqual([]);
        expect(r.dlq).toEqual([]);
        expect(r.deleted).toBe(gone.length);
        expect(r.audits).toBe(gone.length);
        // At least each same-port reconnect's old row and each refusing watcher's row.
        expect(r.guardKeeps).toBeGreaterThanOrEqual(
          watchers.filter((w) => w.fate.kind === "back-same-port").length + refusing.length,
        );
      }
      const events = bed.rx.events.length;
      const byType = (t: string) => bed.rx.events.filter((e) => e.type === t).length;
      const deathKinds = FATES.flatMap(([f, n]) => (f.kind === "dead" ? [n] : [])).join("/");
      console.log(
        `replay through Kamailio 5.6.3 (${engine}): ${watchers.length} watchers, ${events} real events (connection.closed ${byType("connection.closed")}, notify.failed ${byType("notify.failed")}, presence.changed ${byType("presence.changed")}) in ${messages.length} envelopes (${twice.length} deliveries replayed); deaths rst/fin/terminate/close-frame ${deathKinds}, ${watchers.filter((w) => w.fate.kind === "back-same-port").length} back on the same ip:port, ${watchers.filter((w) => w.fate.kind === "back-new-port").length} on a new port; rows ${before.length}, deleted ${inOrder.deleted} in order and ${replayed.deleted} replayed (expected ${gone.length}), live rows ${expected.length} (deleted 0), guard keeps ${inOrder.guardKeeps}/${replayed.guardKeeps}`,
      );
    });
  },
);
