// Core scenarios on real Kamailio 5.6.3 (notifier_processes=0) through the local Data API server,
// as a matrix: PostgreSQL with fix_nated_contact() and MariaDB (aurora-mysql) with
// set_contact_alias(), for `presence` and `dialog` (BLF).
//   1. GH #4118 fixed: after the worker handles the connection.closed event the stale row is gone
//      and every survivor got its NOTIFY. Control: before the worker Kamailio keeps the row and a
//      refresh starves the survivors.
//   2. notify.failed deletes exactly its dialog; the same key in another letter case leaves it alone.
//      Control: Kamailio keeps the row on a 410.
// The tables of this matrix carry the peer index (kwc db migrate): Kamailio writes migrated tables
// and the worker reads through the index (the scan path is covered by scenarios.test.ts).
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataApiExecutor } from "#adapters/data-api-store.ts";
import { dataApiPeerIndexPort } from "#adapters/peer-index.ts";
import type { ConnectionClosed, NotifyFailed } from "#core/contract.ts";
import type { FleetConfig } from "#core/fleet.ts";
import { migratePeerIndex } from "#core/peer-index-migration.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { type Engine, makeNotifiedFirst, type TestDb } from "../../helpers/db.ts";
import type { KamailioNode } from "../../helpers/kamailio.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import type { EventReceiver } from "../../helpers/receiver.ts";
import type { Subscription } from "../../helpers/sip-ws-client.ts";
import { waitUntil } from "../../helpers/wait.ts";
import { envelopeOf, nodeConfigOf, startDataApi, testFleet, workerFor } from "./harness.ts";

const MATRIX: { engine: Engine; style: "nated" | "alias"; listenIp: string }[] = [
  { engine: "postgres", style: "nated", listenIp: "127.0.0.41" },
  { engine: "mysql", style: "alias", listenIp: "127.0.0.42" },
];

describe.each(MATRIX)(
  "worker on $engine with $style contacts, notifier_processes=0",
  ({ engine, style, listenIp }) => {
    let bed: NodeBed;
    let db: TestDb;
    let rx: EventReceiver;
    let node: KamailioNode;
    let api: { server: DataApiServer; client: RDSDataClient };
    let fleet: FleetConfig;
    const ph = (n: number) => bed.ph(n);
    const worker = () => workerFor(fleet, api.client, new Map([[node.nodeId, node.rpcToken]]));
    const watch = (user: string, presentity: string, event: string) => bed.watch(user, presentity, event);

    beforeAll(async () => {
      bed = await startNodeBed(engine, "wmatrix", {
        nodeId: `wm-${engine}`,
        listenIp,
        contactStyle: style,
        notifierProcesses: 0,
      });
      ({ db, rx, node } = bed);
      api = await startDataApi();
      fleet = testFleet(db, [nodeConfigOf(node, style)]);
      // The core scenarios run on a migrated table (kwc db migrate): Kamailio writes the rows, the
      // worker reads them through the peer index.
      const executor = new DataApiExecutor(api.client, fleet.database);
      const port = dataApiPeerIndexPort(api.client, fleet.database, "active_watchers", (st) =>
        executor.execute(st),
      );
      expect((await migratePeerIndex(port, engine, "active_watchers")).after).toBe("valid");
    });

    afterAll(async () => {
      await api?.server.close();
      await bed?.close();
    });

    const rowsOf = (sub: Subscription) =>
      db.query(`SELECT id, contact FROM active_watchers WHERE callid = ${ph(1)}`, [sub.callId]);

    it.each(["presence", "dialog"])(
      "%s: the stale row is deleted and every survivor is notified",
      async (event) => {
        const presentity = `sip:boss-${event}@example.com`;
        const publisher = await bed.connect(`boss-${event}`);
        expect(await publisher.publish(presentity, { event })).toBe(200);
        const s1 = await watch(`s1-${event}`, presentity, event);
        const s2 = await watch(`s2-${event}`, presentity, event);
        const dead = await watch(`dead-${event}`, presentity, event);
        await makeNotifiedFirst(db, dead.sub.callId);
        const [deadRow] = (await rowsOf(dead.sub)) as { contact: string }[];
        expect(deadRow?.contact).toContain(
          style === "alias" ? `;alias=${dead.c.localAddress}~${dead.c.localPort}~5` : `@${dead.c.peer};`,
        );

        await dead.c.die("terminate");
        const closedEvent = (await rx.waitFor(
          (e) =>
            e.type === "connection.closed" && e.peer.port === dead.c.localPort && e.cause === "tcp:closed",
        )) as ConnectionClosed;

        // Control: Kamailio alone keeps the stale row and a refresh starves the survivors.
        const mark = [s1.c.notifies.length, s2.c.notifies.length];
        const refresh = await node.rpc("presence.refreshWatchers", [presentity, event, 1]);
        expect(refresh.status).toBe(500);
        await s1.c.ping();
        await s2.c.ping();
        expect([s1.c.notifies.length, s2.c.notifies.length]).toEqual(mark);
        expect(await rowsOf(dead.sub)).toHaveLength(1);

        const w = worker();
        const result = await w.run([{ messageId: `closed-${event}`, body: envelopeOf(closedEvent) }]);
        expect(result.failedMessageIds).toEqual([]);
        expect(await rowsOf(dead.sub)).toHaveLength(0);
        expect(await rowsOf(s1.sub)).toHaveLength(1);
        expect(await rowsOf(s2.sub)).toHaveLength(1);
        await s1.c.ping();
        await s2.c.ping();
        for (const [i, s] of [s1, s2].entries()) {
          const fresh = s.c.notifiesFor(s.sub).slice(mark[i]);
          expect(fresh).toHaveLength(1);
          expect(fresh[0]?.event).toBe(event);
        }
        expect(result.refreshes).toEqual([
          { node: node.nodeId, presentityUri: presentity, event, outcome: "ok" },
        ]);
        expect(w.tel.audits).toEqual([
          expect.objectContaining({
            action: "watcher.deleted",
            node: node.nodeId,
            reason: "connection.closed",
            cause: "tcp:closed",
            presentity,
            event,
            watcher: `sip:dead-${event}@example.com`,
            dialog: { callId: dead.sub.callId, toTag: dead.sub.toTag, fromTag: dead.sub.fromTag },
            peer: `${dead.c.localAddress}:${dead.c.localPort}`,
            sourceMessageId: `closed-${event}`,
          }),
        ]);
      },
    );

    it("notify.failed deletes exactly its dialog (its peer gone, its version unchanged); the key in another letter case leaves it alone", async () => {
      const presentity = "sip:nf@example.com";
      const publisher = await bed.connect("nf");
      expect(await publisher.publish(presentity)).toBe(200);
      const gone = await bed.watch("gone", presentity);
      const keep = await bed.watch("keep", presentity);
      gone.c.answerNotifiesWith(410);
      expect(await publisher.publish(presentity)).toBe(200);
      const failures = () =>
        rx.events.filter(
          (e): e is NotifyFailed => e.type === "notify.failed" && e.dialog.callId === gone.sub.callId,
        );
      // the newest failure carries the row's version (presence may send more than one NOTIFY)
      const versionOf = async () =>
        (
          await db.query<{ version: number }>(`SELECT version FROM active_watchers WHERE callid = ${ph(1)}`, [
            gone.sub.callId,
          ])
        )[0]?.version;
      await waitUntil(
        async () =>
          failures().length > 0 &&
          Math.max(...failures().map((f) => f.version ?? -1)) === (await versionOf()),
        {
          what: "the newest failure's version to be the row's",
        },
      );
      const failed = failures().reduce((a, b) => ((b.version ?? -1) > (a.version ?? -1) ? b : a));
      expect(failed.code).toBe(410);
      expect(await rowsOf(gone.sub)).toHaveLength(1); // control: Kamailio keeps the row on a 410 (it deletes on 404, 481, 408 itself)

      const w = worker();
      // its peer is still connected: a dialog-key match never deletes a connected watcher's row
      const kept = await w.run([{ messageId: "nf-live", body: envelopeOf(failed) }]);
      expect(kept.guardKeeps).toBe(1);
      expect(await rowsOf(gone.sub)).toHaveLength(1);

      gone.c.close();
      await waitUntil(
        async () => {
          const list =
            ((await node.rpc("core.tcp_list")).body as { result?: { src_port: number }[] }).result ?? [];
          return !list.some((e) => e.src_port === gone.c.localPort);
        },
        { what: "the 410 watcher's connection to close" },
      );
      const upper = { ...failed, dialog: { ...failed.dialog, callId: failed.dialog.callId.toUpperCase() } };
      expect(upper.dialog.callId).not.toBe(failed.dialog.callId);
      const first = await w.run([{ messageId: "nf-upper", body: envelopeOf(upper) }]);
      expect(first.failedMessageIds).toEqual([]);
      expect(await rowsOf(gone.sub)).toHaveLength(1);

      const second = await w.run([{ messageId: "nf", body: envelopeOf(failed) }]);
      expect(second.failedMessageIds).toEqual([]);
      expect(await rowsOf(gone.sub)).toHaveLength(0);
      expect(await rowsOf(keep.sub)).toHaveLength(1);
      expect(w.tel.audits.map((a) => [a.reason, a.notifyCode, a.dialog.callId])).toEqual([
        ["notify.failed", 410, gone.sub.callId],
      ]);
    });
  },
);

// notifier_processes=1 where FINDINGS.md says it works on 5.6.x: MariaDB (db_table_lock_type=0,
// which the cfg sets for MySQL) and PostgreSQL with send_fast_notify=0 + waitn_time=1 (the
// KWC_NOTIFIER_MODE_PG_WORKAROUND define; without it every in-dialog re-SUBSCRIBE gets 500, GH #2739).
// From 5.7.0 on notifier mode on PostgreSQL is broken outright (FINDINGS "Kamailio 6.0.1"): not a
// combination to test, the reconciler refuses it. Kamailio's notifier deletes an undeliverable row
// itself, but only when it next tries to NOTIFY it; what only the worker does is delete it at once
// on the close event, with an audit record, and refresh the presentity so survivors hear of it.
const NOTIFIER_MATRIX: {
  engine: Engine;
  listenIp: string;
  defines: Record<string, true>;
}[] = [
  { engine: "mysql", listenIp: "127.0.0.43", defines: {} },
  { engine: "postgres", listenIp: "127.0.0.46", defines: { KWC_NOTIFIER_MODE_PG_WORKAROUND: true } },
];

describe.each(NOTIFIER_MATRIX)(
  "worker on $engine with nated contacts, notifier_processes=1 $defines",
  ({ engine, listenIp, defines }) => {
    let bed: NodeBed;
    let db: TestDb;
    let rx: EventReceiver;
    let node: KamailioNode;
    let api: { server: DataApiServer; client: RDSDataClient };

    beforeAll(async () => {
      bed = await startNodeBed(engine, "wnotif", {
        nodeId: `wm-notifier-${engine}`,
        listenIp,
        notifierProcesses: 1,
        defines,
      });
      ({ db, rx, node } = bed);
      api = await startDataApi();
    });

    afterAll(async () => {
      await api?.server.close();
      await bed?.close();
    });

    it("deletes the stale row on the close event, before Kamailio would, and the survivor is still notified", async () => {
      expect((await node.status()).notifierProcesses).toBe(1);
      const presentity = "sip:nm@example.com";
      const publisher = await bed.connect("nm");
      expect(await publisher.publish(presentity)).toBe(200);
      const survivor = await bed.watch("nm-s", presentity);
      // The mode works on this engine: an in-dialog re-SUBSCRIBE is accepted (GH #2739 answers 500).
      await survivor.c.resubscribe(survivor.sub);
      expect(survivor.sub.status).toBe(200);
      const dead = await bed.watch("nm-dead", presentity);
      await dead.c.die("terminate");
      const closedEvent = (await rx.waitFor(
        (e) => e.type === "connection.closed" && e.peer.port === dead.c.localPort && e.cause === "tcp:closed",
      )) as ConnectionClosed;
      const rowsOf = (sub: Subscription) =>
        db.query(`SELECT id FROM active_watchers WHERE callid = ${bed.ph(1)}`, [sub.callId]);
      // Control: with no NOTIFY due, Kamailio's notifier leaves the stale row alone.
      expect(await rowsOf(dead.sub)).toHaveLength(1);

      const fleet = {
        ...testFleet(db, [nodeConfigOf(node, "nated", 1)]),
        notifyFailureCodes: [481, 408, 404, 410],
      };
      const w = workerFor(fleet, api.client, new Map([[node.nodeId, node.rpcToken]]));
      const mark = survivor.c.notifiesFor(survivor.sub).length;
      const result = await w.run([{ messageId: "nm-1", body: envelopeOf(closedEvent) }]);
      expect(result.failedMessageIds).toEqual([]);
      expect(await rowsOf(dead.sub)).toHaveLength(0);
      expect(w.tel.audits).toEqual([
        expect.objectContaining({
          reason: "connection.closed",
          cause: "tcp:closed",
          node: node.nodeId,
          dialog: { callId: dead.sub.callId, toTag: dead.sub.toTag, fromTag: dead.sub.fromTag },
          sourceMessageId: "nm-1",
        }),
      ]);
      expect(result.refreshes.map((r) => r.outcome)).toEqual(["ok"]);
      // The notifier process sends the refresh's NOTIFY asynchronously (waitn_time=1 in tests).
      await survivor.c.waitForNotify(
        (n) => n.callId === survivor.sub.callId && survivor.c.notifiesFor(survivor.sub).length > mark,
        10_000,
      );
      expect(await rowsOf(survivor.sub)).toHaveLength(1);
    });
  },
);
