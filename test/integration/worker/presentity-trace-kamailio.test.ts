// The deletion trace under real Kamailio 5.6.3 on PostgreSQL (the MariaDB case runs inside
// refresh-policy.test.ts): presence's own DELETEs, for a PUBLISH with Expires: 0 and for the
// clean timer's expiry, each leave the presentity's deletion time in the database's clock, at or
// after the NOTIFY-to-all presence sent first; presence answers and NOTIFYs as without the
// trigger. CONTROL: a PUBLISH and a refresh PUBLISH (an INSERT, an UPDATE) leave no trace row.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { traceInstallStatements } from "#core/sql/presentity-trace.ts";
import { dialectFor } from "#core/sql.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { pidfBody } from "../../helpers/sip-ws-client.ts";
import { waitUntil } from "../../helpers/wait.ts";

let bed: NodeBed;

beforeAll(async () => {
  bed = await startNodeBed("postgres", "ptracek", {
    nodeId: "trace-pg",
    listenIp: "127.0.0.55",
    contactStyle: "nated",
    notifierProcesses: 0,
    defines: { KWC_CLEAN_PERIOD: 1 },
  });
  for (const sql of traceInstallStatements(dialectFor("postgres"), bed.db.name)) await bed.db.query(sql);
});

afterAll(async () => {
  await bed?.close();
});

const traced = async (user: string) =>
  (
    await bed.db.query<{ deleted_at: string }>(
      "SELECT deleted_at FROM kwc_presentity_deletions WHERE username = $1 AND domain = 'example.com' AND event = 'presence'",
      [user],
    )
  ).map((r) => Number(r.deleted_at));
const rows = async (user: string) =>
  (
    await bed.db.query<{ n: number }>("SELECT COUNT(*)::int AS n FROM presentity WHERE username = $1", [user])
  )[0]?.n;
const dbNow = async () =>
  Number(
    (await bed.db.query<{ t: string }>("SELECT FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS t"))[0]?.t,
  );

describe("the presentity deletion trace under Kamailio 5.6.3 (PostgreSQL)", () => {
  it("Expires: 0 and the clean timer's expiry are traced after their NOTIFY; a PUBLISH and its refresh are not", async () => {
    const presentity = (u: string) => `sip:${u}@example.com`;
    const publisher = await bed.connect("trace-pub");
    const watcher = await bed.watch("trace-w", presentity("tr-unpub"));
    const first = await publisher.publishEtag(presentity("tr-unpub"), {
      body: pidfBody(presentity("tr-unpub"), "open", "up"),
      expires: 600,
    });
    expect(first.status).toBe(200);
    // presence answers 200 before it writes the row: a refresh sent at once may find no etag (412).
    await waitUntil(async () => (await rows("tr-unpub")) === 1, { what: "the published row" });
    const refreshed = await publisher.publishEtag(presentity("tr-unpub"), {
      expires: 600,
      ifMatch: first.etag ?? "",
    });
    expect(refreshed.status).toBe(200);
    expect(await traced("tr-unpub")).toEqual([]); // CONTROL: an INSERT and an UPDATE leave nothing

    const before = await dbNow();
    const notified = watcher.c.notifiesFor(watcher.sub).length;
    // A refresh answers a new entity tag (RFC 3903): the removal names that one.
    const gone = await publisher.publishEtag(presentity("tr-unpub"), {
      expires: 0,
      ifMatch: refreshed.etag ?? "",
    });
    expect(gone.status).toBe(200);
    await waitUntil(async () => (await rows("tr-unpub")) === 0, { what: "the Expires: 0 delete" });
    const [unpublishedAt] = await traced("tr-unpub");
    expect(unpublishedAt).toBeGreaterThanOrEqual(before);
    expect(unpublishedAt).toBeLessThanOrEqual(await dbNow());
    // The NOTIFY-to-all went out (presence sends it before the DELETE), to the live watcher.
    await watcher.c.waitForNotify(
      (n) => n.callId === watcher.sub.callId && watcher.c.notifiesFor(watcher.sub).length > notified,
    );

    const expiring = await publisher.publishEtag(presentity("tr-expiry"), {
      body: pidfBody(presentity("tr-expiry"), "open", "brief"),
      expires: 2,
    });
    expect(expiring.status).toBe(200);
    const published = await dbNow();
    await waitUntil(async () => (await rows("tr-expiry")) === 1, { what: "the published row" });
    await waitUntil(async () => (await rows("tr-expiry")) === 0, { what: "the expiry", timeoutMs: 15_000 });
    const [expiredAt] = await traced("tr-expiry");
    expect(expiredAt).toBeGreaterThanOrEqual(published + 2);
    expect(expiredAt).toBeLessThanOrEqual(await dbNow());
  });
});
