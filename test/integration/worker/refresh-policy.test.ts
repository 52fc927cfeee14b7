// The refresh policy on real Kamailio 5.6.3 (sync mode, MariaDB, the presentity deletion trace
// installed as `kwc db trace` does), the dead row first in Kamailio's scan order. On MariaDB that
// order is fixed: presence reads a presentity's watchers through the (presentity_uri, event) index,
// whose entries end in the primary key, and prepends each row, so the watcher subscribed last is
// NOTIFYed first; publ_notify() (PUBLISH, expiry, Expires: 0) and query_db_notify()
// (refreshWatchers) read the same list (get_subs_dialog). Each case proves the order: a
// refreshWatchers answers 500 and reaches no survivor.
//
// What 5.6.3 does (presence/notify.c): publ_notify() logs a failed NOTIFY and goes on; only
// query_db_notify() (refreshWatchers, updateWatchers, winfo) stops at it (GH #4118). So:
// - a PUBLISH, refresh PUBLISH, Expires: 0 or expiry on THIS node reaches every survivor even with
//   the dead row first (asserted); the worker still refreshes (the trace cannot tell which node
//   took it) and the survivors end on the current state;
// - the same change on ANOTHER node (shared presentity table) reaches this node's watchers only
//   through the service's refreshWatchers (presence.changed fan-out), which stops at the dead row:
//   CONTROL, the survivors starve; the worker's refresh after the delete (reason from the trace)
//   puts them on the new state. The other node's write is made here as its Kamailio makes it
//   (received_time = its time(); a DELETE by etag), then the fan-out's refreshWatchers is sent;
// - an operator's refreshWatchers alone stops at the dead row but carries the state the survivors
//   hold: skipped; with no trigger no refresh is sent and the survivors hold the current state;
// - CONTROL: without the trace the quiet death is refreshed (untraced-deletion).
// deadFirst() moves the first publication's received_time 10 s back (what publishing 10 s before
// the death gives) instead of waiting out the 3 s skew allowance.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectionClosed } from "#core/contract.ts";
import type { FleetConfig } from "#core/fleet.ts";
import { traceInstallStatements } from "#core/sql/presentity-trace.ts";
import { dialectFor } from "#core/sql.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { testDbConfig } from "../../helpers/dataapi.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { pidfBody, type SipWsClient, type Subscription } from "../../helpers/sip-ws-client.ts";
import { waitUntil } from "../../helpers/wait.ts";
import { envelopeOf, nodeConfigOf, startDataApi, workerFor } from "./harness.ts";

let bed: NodeBed;
let api: { server: DataApiServer; client: RDSDataClient };
let fleet: FleetConfig;
let tokens: Map<string, string>;

beforeAll(async () => {
  bed = await startNodeBed("mysql", "wpolicy", {
    nodeId: "policy-a",
    listenIp: "127.0.0.54",
    contactStyle: "nated",
    notifierProcesses: 0,
    defines: { KWC_CLEAN_PERIOD: 1 },
  });
  for (const sql of traceInstallStatements(dialectFor("mysql"), bed.db.name)) await bed.db.query(sql);
  // As if installed 10 s ago: a death within the skew allowance (3 s) of the install is not judged by it.
  await bed.db.query("UPDATE kwc_presentity_deletions SET deleted_at = deleted_at - 10 WHERE event = ''");
  api = await startDataApi();
  tokens = new Map([[bed.node.nodeId, bed.node.rpcToken]]);
  fleet = {
    version: 1,
    database: testDbConfig(bed.db),
    notifyFailureCodes: [404, 405, 408, 410, 416, 481, 482, 483, 484, 485, 489, 501, 502, 604],
    nodes: [nodeConfigOf(bed.node, "nated")],
  };
});

afterAll(async () => {
  await api?.server.close();
  await bed?.close();
});

type Watch = { c: SipWsClient; sub: Subscription };
const lastBody = (s: Watch) => s.c.notifiesFor(s.sub).at(-1)?.body ?? "";
const noteOf = (body: string) => body.match(/<note>([^<]*)<\/note>/)?.[1];
const counts = (survivors: Watch[]) => survivors.map((s) => s.c.notifiesFor(s.sub).length);
const ping = async (survivors: Watch[]) => {
  for (const s of survivors) await s.c.ping();
};
const presentityRows = async (user: string) =>
  (await bed.db.query<{ n: number }>("SELECT COUNT(*) AS n FROM presentity WHERE username = ?", [user]))[0]
    ?.n;
const changes = (presentity: string) =>
  bed.rx.events.filter((e) => e.type === "presence.changed" && e.presentity === presentity).length;

/** A presentity at state-one (one publication), two survivors and a dead watcher NOTIFYed first. */
async function deadFirst(name: string, publishExpires = 600) {
  const presentity = `sip:${name}@example.com`;
  const publisher = await bed.connect(`${name}-pub`);
  const body = pidfBody(presentity, "open", "state-one");
  const first = await publisher.publishEtag(presentity, { body, expires: publishExpires });
  expect(first.status).toBe(200);
  // presence answers 200 before it writes the row: subscribe once handle_publish() has returned.
  await waitUntil(() => changes(presentity) > 0, { what: "presence.changed" });
  const survivors = [await bed.watch(`${name}-s1`, presentity), await bed.watch(`${name}-s2`, presentity)];
  const dead = await bed.watch(`${name}-dead`, presentity);
  await bed.db.query("UPDATE presentity SET received_time = received_time - 10 WHERE username = ?", [name]);
  await dead.c.die("terminate");
  const closed = (await bed.rx.waitFor(
    (e) => e.type === "connection.closed" && e.peer.port === dead.c.localPort && e.cause === "tcp:closed",
  )) as ConnectionClosed;
  await ping(survivors);
  expect(survivors.map((s) => noteOf(lastBody(s)))).toEqual(["state-one", "state-one"]);
  return { name, presentity, publisher, etag: first.etag ?? "", survivors, closed };
}
type Scene = Awaited<ReturnType<typeof deadFirst>>;

/** After a PUBLISH: its NOTIFY loop has ended once the cfg posted presence.changed (after handle_publish). */
async function published(scene: Scene, before: number) {
  await waitUntil(() => changes(scene.presentity) > before, { what: "presence.changed" });
}

/** The dead row is first: a refreshWatchers answers 500 and reaches no survivor. */
async function expectDeadRowFirst(scene: Scene) {
  await ping(scene.survivors);
  const before = counts(scene.survivors);
  expect((await bed.node.rpc("presence.refreshWatchers", [scene.presentity, "presence", 1])).status).toBe(
    500,
  );
  await ping(scene.survivors);
  expect(counts(scene.survivors)).toEqual(before);
}

/** The worker deletes the dead row and refreshes with `reason`; every survivor then holds a fresh SUBSCRIBE's state. */
async function expectRefreshed(scene: Scene, reason: string) {
  await ping(scene.survivors);
  const beforeWorker = counts(scene.survivors);
  const w = workerFor(fleet, api.client, tokens);
  const result = await w.run([{ messageId: `closed-${scene.name}`, body: envelopeOf(scene.closed) }]);
  expect(result.failedMessageIds).toEqual([]);
  expect(result.deleted).toBe(1);
  expect(result.refreshReasons).toEqual({ [reason]: 1 });
  expect(w.tel.dimensioned).toEqual({ [`RefreshSent{reason=${reason.slice(5)}}`]: 1 });
  await ping(scene.survivors);
  const probe = await bed.watch(`${scene.name}-probe`, scene.presentity);
  expect(counts(scene.survivors)).toEqual(beforeWorker.map((n) => n + 1));
  expect(scene.survivors.map(lastBody)).toEqual([lastBody(probe), lastBody(probe)]);
  return lastBody(probe);
}

/** The other node's PUBLISH, as its Kamailio writes the shared row, then the fan-out's refreshWatchers here. */
async function otherNodePublishes(scene: Scene, note: string) {
  const body = pidfBody(scene.presentity, "open", note);
  await bed.db.query("UPDATE presentity SET body = ?, received_time = UNIX_TIMESTAMP() WHERE username = ?", [
    body,
    scene.name,
  ]);
  return bed.node.rpc("presence.refreshWatchers", [scene.presentity, "presence", 1]);
}

describe("refresh policy on 5.6.3 with the deletion trace", () => {
  describe("a change on this node: publ_notify() goes past the dead row, nobody starves; refreshed anyway", () => {
    it("PUBLISH (published-since-death)", async () => {
      const scene = await deadFirst("pol-pub");
      const before = counts(scene.survivors);
      const n = changes(scene.presentity);
      const body = pidfBody(scene.presentity, "open", "state-two");
      expect((await scene.publisher.publishEtag(scene.presentity, { body, expires: 600 })).status).toBe(200);
      await published(scene, n);
      await ping(scene.survivors);
      expect(counts(scene.survivors)).toEqual(before.map((c) => c + 1));
      expect(scene.survivors.map((s) => noteOf(lastBody(s)))).toEqual(["state-two", "state-two"]);
      await expectDeadRowFirst(scene);
      expect(noteOf(await expectRefreshed(scene, "sent:published-since-death"))).toBe("state-two");
    });

    it("refresh PUBLISH, no body (published-since-death)", async () => {
      const scene = await deadFirst("pol-refpub");
      const before = counts(scene.survivors);
      const n = changes(scene.presentity);
      const refresh = await scene.publisher.publishEtag(scene.presentity, {
        expires: 600,
        ifMatch: scene.etag,
      });
      expect(refresh.status).toBe(200);
      await published(scene, n);
      await ping(scene.survivors);
      expect(counts(scene.survivors)).toEqual(before.map((c) => c + 1));
      await expectDeadRowFirst(scene);
      expect(noteOf(await expectRefreshed(scene, "sent:published-since-death"))).toBe("state-one");
    });

    it("PUBLISH with Expires: 0: the row is gone, the trace has it (deleted-since-death)", async () => {
      const scene = await deadFirst("pol-unpub");
      const before = counts(scene.survivors);
      const n = changes(scene.presentity);
      const gone = await scene.publisher.publishEtag(scene.presentity, { expires: 0, ifMatch: scene.etag });
      expect(gone.status).toBe(200);
      await published(scene, n);
      expect(await presentityRows(scene.name)).toBe(0);
      await ping(scene.survivors);
      expect(counts(scene.survivors)).toEqual(before.map((c) => c + 1));
      await expectDeadRowFirst(scene);
      expect(noteOf(await expectRefreshed(scene, "sent:deleted-since-death"))).toBeUndefined();
    });

    it("presentity expiry by the clean timer: the row is gone, the trace has it (deleted-since-death)", async () => {
      const scene = await deadFirst("pol-expiry", 6);
      const before = counts(scene.survivors);
      const [row] = await bed.db.query<{ expires: number }>(
        "SELECT expires FROM presentity WHERE username = ?",
        [scene.name],
      );
      expect(scene.closed.at).toBeLessThan(row?.expires ?? 0); // the death came before the expiry
      // The clean timer NOTIFYs all, then deletes the row: once it is gone, its loop has ended.
      await waitUntil(async () => (await presentityRows(scene.name)) === 0, {
        what: "the expiry",
        timeoutMs: 15_000,
      });
      await ping(scene.survivors);
      expect(counts(scene.survivors)).toEqual(before.map((c) => c + 1));
      await expectDeadRowFirst(scene);
      expect(noteOf(await expectRefreshed(scene, "sent:deleted-since-death"))).toBeUndefined();
    });
  });

  describe("a change on another node, fanned out as refreshWatchers: stopped at the dead row (CONTROL: starved)", () => {
    it("its PUBLISH (published-since-death)", async () => {
      const scene = await deadFirst("pol-xpub");
      const before = counts(scene.survivors);
      expect((await otherNodePublishes(scene, "state-two")).status).toBe(500);
      await ping(scene.survivors);
      expect(counts(scene.survivors)).toEqual(before); // CONTROL: starved
      expect(noteOf(await expectRefreshed(scene, "sent:published-since-death"))).toBe("state-two");
    });

    it("its Expires: 0 or expiry, a DELETE of the shared row (deleted-since-death)", async () => {
      const scene = await deadFirst("pol-xgone");
      const before = counts(scene.survivors);
      await bed.db.query(
        "DELETE FROM presentity WHERE username = ? AND domain = ? AND event = ? AND etag = ?",
        [scene.name, "example.com", "presence", scene.etag],
      );
      expect((await bed.node.rpc("presence.refreshWatchers", [scene.presentity, "presence", 1])).status).toBe(
        500,
      );
      await ping(scene.survivors);
      expect(counts(scene.survivors)).toEqual(before); // CONTROL: starved
      expect(noteOf(await expectRefreshed(scene, "sent:deleted-since-death"))).toBeUndefined();
    });
  });

  it("an operator's refreshWatchers alone: stopped at the dead row, but it carried the state the survivors hold; skipped", async () => {
    const scene = await deadFirst("pol-op");
    await expectDeadRowFirst(scene);
    const before = counts(scene.survivors);
    const w = workerFor(fleet, api.client, tokens);
    const result = await w.run([{ messageId: "closed-op", body: envelopeOf(scene.closed) }]);
    expect(result.deleted).toBe(1);
    expect(result.refreshReasons).toEqual({ "skipped:no-trigger": 1 });
    expect(w.tel.dimensioned).toEqual({ "RefreshSkipped{reason=no-trigger}": 1 });
    const probe = await bed.watch("pol-op-probe", scene.presentity);
    await ping(scene.survivors);
    expect(counts(scene.survivors)).toEqual(before);
    expect(scene.survivors.map(lastBody)).toEqual([lastBody(probe), lastBody(probe)]);
  });

  it("no trigger: no refresh is sent and the survivors already hold the current state", async () => {
    const scene = await deadFirst("pol-quiet");
    const before = counts(scene.survivors);
    const w = workerFor(fleet, api.client, tokens);
    const result = await w.run([{ messageId: "closed-quiet", body: envelopeOf(scene.closed) }]);
    expect(result.deleted).toBe(1);
    expect(result.refreshReasons).toEqual({ "skipped:no-trigger": 1 });
    expect(result.refreshes).toEqual([
      { node: "policy-a", presentityUri: scene.presentity, event: "presence", outcome: "skipped" },
    ]);
    const probe = await bed.watch("pol-quiet-probe", scene.presentity);
    await ping(scene.survivors);
    expect(counts(scene.survivors)).toEqual(before);
    expect(scene.survivors.map(lastBody)).toEqual([lastBody(probe), lastBody(probe)]);
    expect(noteOf(lastBody(probe))).toBe("state-one");
  });

  it("CONTROL: the same quiet death without the trace is refreshed (untraced-deletion)", async () => {
    const scene = await deadFirst("pol-untraced");
    await bed.db.query("DROP VIEW kwc_presentity_trace");
    try {
      const w = workerFor(fleet, api.client, tokens);
      const result = await w.run([{ messageId: "closed-untraced", body: envelopeOf(scene.closed) }]);
      expect(result.deleted).toBe(1);
      expect(result.refreshReasons).toEqual({ "sent:untraced-deletion": 1 });
    } finally {
      const view = traceInstallStatements(dialectFor("mysql"), bed.db.name).at(-1) ?? "";
      await bed.db.query(view);
    }
  });
});
