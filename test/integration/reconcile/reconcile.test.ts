// Reconcile against real Kamailio 5.6.3 (subs_db_mode=3, notifier_processes=0), PostgreSQL and
// MariaDB through the local Data API server, with the same runtime the Lambdas and `kwc` use.
// Nothing else deletes rows here (no worker, notifier 0), so every deletion is the reconciler's;
// each "keeps" assertion has a dead control row in the same run that must go.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import { type CleanupRequestInput, CleanupRequestSchema } from "#core/cleanup-request.ts";
import { createCleanupHandler, runRequest } from "#handlers/functions.ts";
import type { Engine } from "../../helpers/db.ts";
import { actBeforeFirst } from "../../helpers/fakes.ts";
import { type EventReceiver, startEventReceiver } from "../../helpers/receiver.ts";
import { SipWsClient } from "../../helpers/sip-ws-client.ts";
import { type Bed, callIdsIn, killAndWaitGone, startBed, watcher } from "./setup.ts";

const req = (r: CleanupRequestInput) => CleanupRequestSchema.parse(r);

const ENGINES: { engine: Engine; ips: [string, string] }[] = [
  { engine: "postgres", ips: ["127.0.0.31", "127.0.0.32"] },
  { engine: "mysql", ips: ["127.0.0.33", "127.0.0.34"] },
];

describe.each(ENGINES)("reconcile on $engine", ({ engine, ips }) => {
  let bed: Bed;
  let rx: EventReceiver;

  beforeAll(async () => {
    bed = await startBed(engine, "recon", [
      { id: `ra-${engine}`, listenIp: ips[0], table: "aw_ra" },
      { id: `rb-${engine}`, listenIp: ips[1], table: "aw_rb" },
    ]);
    rx = await startEventReceiver();
  });
  afterAll(async () => {
    await rx?.close();
    await bed?.close();
  });

  it("lost events are caught: exactly the dead watchers' rows go, survivors are refreshed", async () => {
    const [a] = bed.nodes;
    if (!a) throw new Error("no node");
    const presentity = `sip:lost-${engine}@example.com`;
    const publisher = await SipWsClient.connect(a.wsUrl, { user: `lost-pub-${engine}` });
    bed.clients.push(publisher);
    expect(await publisher.publish(presentity)).toBe(200);
    const survivors = [await watcher(bed, a, "s1", presentity), await watcher(bed, a, "s2", presentity)];
    const dead = [await watcher(bed, a, "d1", presentity), await watcher(bed, a, "d2", presentity)];
    // the ingest is down while they die: their connection.closed events never reach anyone
    rx.setAvailable(false);
    await killAndWaitGone(a, dead[0]?.c as SipWsClient, "rst");
    await killAndWaitGone(a, dead[1]?.c as SipWsClient, "terminate");
    // control: nothing removed the dead rows so far
    const before = await callIdsIn(bed, "aw_ra");
    for (const d of dead) expect(before).toContain(d.sub.callId);
    const marks = survivors.map((s) => s.c.notifiesFor(s.sub).length);

    const tel = memoryTelemetry();
    const runtime = { ...bed.runtime, telemetry: tel.telemetry, deletedBy: "reconciler" as const };
    const report = await runRequest(runtime, req({ scope: "reconcile", node: a.nodeId }));

    const node = report.nodes[0];
    expect(node?.outcome).toBe("done");
    expect(node?.rows.map((r) => r.key.callId).sort()).toEqual(dead.map((d) => d.sub.callId).sort());
    // every deleted row leaves its audit record and metric, as the worker's do
    expect(tel.audits.map((x) => [x.dialog.callId, x.reason, x.deletedBy, x.watcher]).sort()).toEqual(
      dead.map((d) => [d.sub.callId, "conn-closed", "reconciler", d.c.aor]).sort(),
    );
    expect(tel.counts.RowsDeleted).toBe(2);
    expect(tel.counts.RefreshOk).toBe(1);
    expect(node?.rows.every((r) => r.reason === "conn-closed")).toBe(true);
    expect(node?.deleted).toBe(2);
    expect(node?.refreshes).toEqual([{ presentity, event: "presence", outcome: "ok" }]);
    const after = await callIdsIn(bed, "aw_ra");
    for (const d of dead) expect(after).not.toContain(d.sub.callId);
    for (const s of survivors) expect(after).toContain(s.sub.callId);
    // sync mode: the refresh's NOTIFYs are on the wire before the RPC returned; ping = barrier
    for (const [i, s] of survivors.entries()) {
      await s.c.ping();
      expect(s.c.notifiesFor(s.sub).length).toBe((marks[i] ?? 0) + 1);
    }
    rx.setAvailable(true);
  });

  it("multi-tab: one of three tabs dies, only that tab's row goes", async () => {
    const [a] = bed.nodes;
    if (!a) throw new Error("no node");
    const presentity = `sip:tabs-${engine}@example.com`;
    const tabs = [
      await watcher(bed, a, "carol", presentity),
      await watcher(bed, a, "carol", presentity),
      await watcher(bed, a, "carol", presentity),
    ];
    await killAndWaitGone(a, tabs[1]?.c as SipWsClient, "rst");
    // through the on-demand cleanup function (the handler kwc --remote invokes)
    const tel = memoryTelemetry();
    const cleanup = createCleanupHandler({ ...bed.runtime, telemetry: tel.telemetry, deletedBy: "cleanup" });
    const answer = await cleanup({ scope: "watcher", watcher: "sip:carol@example.com" });
    if (!answer.ok) throw new Error(answer.error.message);
    const report = answer.report;
    expect(report.totals.counts).toMatchObject({ live: 2, "conn-closed": 1 });
    expect(tel.audits.map((x) => [x.dialog.callId, x.deletedBy, x.watcher])).toEqual([
      [tabs[1]?.sub.callId, "cleanup", "sip:carol@example.com"],
    ]);
    expect(tel.counts.RowsDeleted).toBe(1);
    expect(report.nodes.flatMap((n) => n.rows.map((r) => r.key.callId))).toEqual([tabs[1]?.sub.callId]);
    const after = await callIdsIn(bed, "aw_ra");
    expect(after).toContain(tabs[0]?.sub.callId);
    expect(after).toContain(tabs[2]?.sub.callId);
    expect(after).not.toContain(tabs[1]?.sub.callId);
  });

  it("rows first, connections second: a subscription made between the two reads is never deleted", async () => {
    const [a] = bed.nodes;
    if (!a) throw new Error("no node");
    const presentity = `sip:race-${engine}@example.com`;
    const control = await watcher(bed, a, "race-dead", presentity);
    await killAndWaitGone(a, control.c, "rst");
    let late: Awaited<ReturnType<typeof watcher>> | undefined;
    // exactly between reading the rows and core.tcp_list: a client connects and subscribes
    const kamailio = actBeforeFirst(bed.runtime.kamailio, "tcpList", async () => {
      late = await watcher(bed, a, "race-late", presentity);
    });
    const report = await runRequest(
      { ...bed.runtime, kamailio },
      req({ scope: "reconcile", node: a.nodeId }),
    );
    expect(late?.sub.status).toBe(200);
    const after = await callIdsIn(bed, "aw_ra");
    expect(after).toContain(late?.sub.callId);
    expect(after).not.toContain(control.sub.callId);
    const listed = report.nodes[0]?.rows.map((r) => r.key.callId) ?? [];
    expect(listed).toContain(control.sub.callId);
    expect(listed).not.toContain(late?.sub.callId);
  });

  it("a restart orphans every WS row of that node: all go, new boot id reported, the other node untouched", async () => {
    const [a, b] = bed.nodes;
    if (!a || !b) throw new Error("no nodes");
    const presentity = `sip:restart-${engine}@example.com`;
    await watcher(bed, a, "ra1", presentity);
    await watcher(bed, a, "ra2", presentity);
    const onB = [await watcher(bed, b, "rb1", presentity), await watcher(bed, b, "rb2", presentity)];
    const oldBoot = a.bootId;
    await a.restart();
    expect(a.bootId).not.toBe(oldBoot);
    const rowsA = (await callIdsIn(bed, "aw_ra")).length;
    const rowsB = await callIdsIn(bed, "aw_rb");
    expect(rowsA).toBeGreaterThan(0);

    const report = await runRequest(bed.runtime, req({ scope: "reconcile" }));
    const ra = report.nodes.find((n) => n.node === a.nodeId);
    const rb = report.nodes.find((n) => n.node === b.nodeId);
    expect(ra?.outcome).toBe("done");
    expect(ra?.bootId).toBe(a.bootId);
    expect(ra?.deleted).toBe(rowsA);
    expect(await callIdsIn(bed, "aw_ra")).toEqual([]);
    expect(rb?.outcome).toBe("done");
    expect(rb?.deleted).toBe(0);
    expect(await callIdsIn(bed, "aw_rb")).toEqual(rowsB);
    for (const w of onB) expect(rowsB).toContain(w.sub.callId);
  });
});

describe("reconcile on postgres: expiry, dry run, >50 connections, unsafe topology", () => {
  let bed: Bed;
  const now = () => Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    bed = await startBed("postgres", "recon2", [
      { id: "rx-a", listenIp: "127.0.0.35", table: "aw_xa" },
      { id: "rx-b", listenIp: "127.0.0.36", table: "aw_xb" },
    ]);
  });
  afterAll(async () => {
    await bed?.close();
  });

  it("expired rows on 5.6 are purged by the service; a dry run lists every row with its reason first", async () => {
    const [a] = bed.nodes;
    if (!a) throw new Error("no node");
    const presentity = "sip:exp@example.com";
    const live = await watcher(bed, a, "exp-live", presentity);
    const expiring = await watcher(bed, a, "exp-old", presentity);
    const dead = await watcher(bed, a, "exp-dead", presentity);
    await killAndWaitGone(a, dead.c, "rst");
    // an hour past its expiry; the client is still connected (5.6 keeps NOTIFYing such rows)
    await bed.db.query("UPDATE aw_xa SET expires = $1 WHERE callid = $2", [
      now() - 3600,
      expiring.sub.callId,
    ]);

    const dry = await runRequest(bed.runtime, req({ scope: "reconcile", node: a.nodeId, dryRun: true }));
    const byCallId = Object.fromEntries(dry.nodes[0]?.rows.map((r) => [r.key.callId, r.reason]) ?? []);
    expect(byCallId).toEqual({ [expiring.sub.callId]: "expired", [dead.sub.callId]: "conn-closed" });
    expect(dry.nodes[0]?.deleted).toBe(0);
    expect(dry.nodes[0]?.refreshes).toEqual([]);
    // control: the dry run deleted nothing, and Kamailio 5.6 did not purge the expired row itself
    const still = await callIdsIn(bed, "aw_xa");
    expect(still).toEqual(expect.arrayContaining([live.sub.callId, expiring.sub.callId, dead.sub.callId]));

    const wet = await runRequest(bed.runtime, req({ scope: "reconcile", node: a.nodeId }));
    expect(wet.nodes[0]?.counts).toMatchObject({ expired: 1, "conn-closed": 1 });
    expect(wet.nodes[0]?.deleted).toBe(2);
    const after = await callIdsIn(bed, "aw_xa");
    expect(after).toContain(live.sub.callId);
    expect(after).not.toContain(expiring.sub.callId);
    expect(after).not.toContain(dead.sub.callId);
  });

  it("more than 50 connections (ws.dump truncates at 50) are all seen as live", async () => {
    const [, b] = bed.nodes;
    if (!b) throw new Error("no node");
    const presentity = "sip:many@example.com";
    const many = await Promise.all(
      Array.from({ length: 55 }, (_, i) => watcher(bed, b, `many${i}`, presentity)),
    );
    const control = await watcher(bed, b, "many-dead", presentity);
    await killAndWaitGone(b, control.c, "rst");
    // ws.dump is not on kwc's listener allow-list: ask over the node's ctl socket, as an operator would
    const dump = execFileSync("kamcmd", ["-s", `unix:${join(b.runDir, "kamailio_ctl")}`, "ws.dump"], {
      encoding: "utf8",
    });
    expect(dump).toMatch(/truncated/);

    const report = await runRequest(bed.runtime, req({ scope: "reconcile", node: b.nodeId }));
    expect(report.nodes[0]?.connections).toBeGreaterThanOrEqual(55);
    expect(report.nodes[0]?.counts).toMatchObject({ live: 55, "conn-closed": 1 });
    const after = await callIdsIn(bed, "aw_xb");
    for (const m of many) expect(after).toContain(m.sub.callId);
    expect(after).not.toContain(control.sub.callId);
  });

  it("refuses a watchers table that holds another node's rows, and deletes nothing", async () => {
    const [a, b] = bed.nodes;
    if (!a || !b) throw new Error("no nodes");
    const dead = await watcher(bed, a, "shared-dead", "sip:shared@example.com");
    await killAndWaitGone(a, dead.c, "rst");
    // node B's subscription written into node A's table, as a shared table would have it
    await bed.db.query(
      "INSERT INTO aw_xa (presentity_uri, watcher_username, watcher_domain, to_user, to_domain, event, to_tag, from_tag, callid, local_cseq, remote_cseq, contact, expires, socket_info, local_contact, from_user, from_domain, updated, updated_winfo) VALUES ('sip:shared@example.com','x','example.com','shared','example.com','presence','tt-b','ft-b','foreign-call',1,1,'sip:x@127.0.0.99:40000;transport=ws',$1,$2,'sip:b','x','example.com',0,0)",
      [now() + 600, b.socketInfo],
    );
    const report = await runRequest(bed.runtime, req({ scope: "reconcile", node: a.nodeId }));
    expect(report.nodes[0]?.outcome).toBe("refused");
    expect(report.nodes[0]?.message).toMatch(/several WebSocket nodes \(rx-a, rx-b\).*one table per node/s);
    expect(await callIdsIn(bed, "aw_xa")).toEqual(expect.arrayContaining([dead.sub.callId, "foreign-call"]));
    await bed.db.query("DELETE FROM aw_xa WHERE callid = 'foreign-call'");
  });
});
