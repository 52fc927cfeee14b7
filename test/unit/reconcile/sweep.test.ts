import { describe, expect, it } from "vitest";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import { type CleanupRequestInput, CleanupRequestSchema } from "#core/cleanup-request.ts";
import type { NodeStatus, WatcherRow } from "#core/ports.ts";
import { runCleanup, type SweepDeps } from "#core/reconcile-sweep.ts";
import { actBeforeFirst, FakeKamailio, MemoryStore, nodeConfig } from "../../helpers/fakes.ts";

const NOW = 1_800_000_000;
const node = (id: string, socket: string) =>
  nodeConfig(id, { socketInfo: [socket], watchersTable: `aw_${id}` });
const A = node("a", "tcp:10.0.0.1:8080");

let nextId = 1;
function row(port: number, over: Partial<WatcherRow> = {}): WatcherRow {
  const id = nextId++;
  return {
    id,
    callId: `call-${id}`,
    toTag: "tt",
    fromTag: "ft",
    presentityUri: "sip:bob@x",
    watcherUsername: "w",
    watcherDomain: "x",
    event: "presence",
    contact: `sip:u${id}@10.9.9.9:${port};transport=ws`,
    expires: NOW + 600,
    version: 1,
    socketInfo: A.socketInfo[0] ?? "",
    ...over,
  };
}

/** The shared store and Kamailio fakes, recording the order of calls in one journal. */
function fakes(
  tables: Record<string, WatcherRow[]>,
  peers: number[],
  status: Partial<NodeStatus> = {},
  pageSize = 100,
) {
  const kamailio = new FakeKamailio();
  const calls = kamailio.journal;
  const store = new MemoryStore(tables, { calls, pageSize });
  const live = peers.map((port) => ({ ip: "10.9.9.9", port }));
  for (const id of ["a", "b"])
    kamailio.serve(id, { status: { boot: "1800000000-abcd", watchersTable: `aw_${id}`, ...status }, live });
  return { store, kamailio, calls };
}

const req = (r: CleanupRequestInput) => CleanupRequestSchema.parse(r);

describe("runCleanup", () => {
  it("reads every page before asking for connections, deletes the dead, refreshes each pair once", async () => {
    const live = row(1000);
    const dead = [row(2000), row(2001, { presentityUri: "sip:carol@x" }), row(2002)];
    const tables = { aw_a: [live, ...dead] };
    const { store, kamailio, calls } = fakes(tables, [1000], {}, 2);
    const deps: SweepDeps = { store, kamailio, engine: "postgres", fleet: [A], now: () => NOW * 1000 };
    const report = await runCleanup(deps, req({ scope: "reconcile" }));
    expect(calls.slice(0, 5)).toEqual(["status", "rows", "rows", "tcp_list", "status"]);
    expect(report.nodes[0]?.pages).toBe(2);
    expect(report.totals.counts).toMatchObject({ live: 1, "conn-closed": 3 });
    expect(report.totals.deleted).toBe(3);
    expect(tables.aw_a.map((r) => r.id)).toEqual([live.id]);
    expect(calls.filter((c) => c.startsWith("refresh")).sort()).toEqual([
      "refresh sip:bob@x presence",
      "refresh sip:carol@x presence",
    ]);
    expect(report.nodes[0]?.rows.map((r) => r.reason)).toEqual(["conn-closed", "conn-closed", "conn-closed"]);
    expect(report.nodes[0]?.bootId).toBe("1800000000-abcd");
  });

  it("audits and counts every row it deletes; rows naming no WS peer are kept, counted and warned about", async () => {
    const dead = row(2000);
    const noPeer = row(2001, { contact: "sip:u@df7jal23ls0d.invalid;transport=ws" });
    const udp = row(2002, { contact: "sip:u@10.9.9.9:2002" }); // the dead peer's address, no WS
    const tables = { aw_a: [dead, noPeer, udp] };
    const { store, kamailio } = fakes(tables, []);
    const tel = memoryTelemetry();
    const deps: SweepDeps = {
      store,
      kamailio,
      engine: "postgres",
      fleet: [A],
      now: () => NOW * 1000,
      telemetry: tel.telemetry,
      deletedBy: "kwc",
    };
    const report = await runCleanup(deps, req({ scope: "reconcile" }));
    expect(tables.aw_a.map((r) => r.id)).toEqual([noPeer.id, udp.id]);
    expect(tel.audits).toMatchObject([
      { rowId: dead.id, reason: "conn-closed", deletedBy: "kwc", watcher: "sip:w@x", peer: "10.9.9.9:2000" },
    ]);
    expect(tel.counts).toMatchObject({ RowsDeleted: 1, GuardKeepsNoPeer: 2, RefreshOk: 1 });
    // No death time in a sweep: always refreshed, counted with its reason (refresh-policy.ts).
    expect(tel.dimensioned).toEqual({ "RefreshSent{reason=no-death-time}": 1 });
    expect(report.nodes[0]?.warnings.join("\n")).toMatch(
      /2 rows name no WebSocket peer.*msg_apply_changes\(\)/,
    );
  });

  it("dry run deletes nothing and lists each stale row with its reason", async () => {
    const rows = [row(1000), row(3000), row(3001, { expires: NOW - 3600 })];
    const tables = { aw_a: [...rows] };
    const { store, kamailio, calls } = fakes(tables, [1000]);
    const report = await runCleanup(
      { store, kamailio, engine: "mysql", fleet: [A], now: () => NOW * 1000 },
      req({ scope: "reconcile", dryRun: true }),
    );
    expect(tables.aw_a).toHaveLength(3);
    expect(calls).not.toContain("delete");
    expect(report.nodes[0]?.rows.map((r) => [r.id, r.reason])).toEqual([
      [rows[1]?.id, "conn-closed"],
      [rows[2]?.id, "expired"],
    ]);
  });

  it("a row rewritten between read and delete (new expires) survives", async () => {
    const r = row(4000);
    const tables = { aw_a: [r] };
    const { store, kamailio } = fakes(tables, []);
    // a re-SUBSCRIBE over a new connection, between the read and the delete
    const rewritten = actBeforeFirst(store, "deleteRows", () => {
      tables.aw_a = [{ ...r, expires: NOW + 900 }];
    });
    const deps: SweepDeps = {
      store: rewritten,
      kamailio,
      engine: "postgres",
      fleet: [A],
      now: () => NOW * 1000,
    };
    const report = await runCleanup(deps, req({ scope: "reconcile" }));
    expect(report.totals.counts["conn-closed"]).toBe(1);
    expect(report.totals.deleted).toBe(0);
    expect(tables.aw_a).toHaveLength(1);
  });

  it("refuses unsafe modes and foreign rows, and stops at the deadline", async () => {
    const B = node("b", "tcp:10.0.0.2:8080");
    const tables = { aw_a: [row(1), row(2, { socketInfo: "tcp:10.0.0.2:8080" })], aw_b: [] };
    const { store, kamailio } = fakes(tables, []);
    const mixed = await runCleanup(
      { store, kamailio, engine: "postgres", fleet: [A, B] },
      req({ scope: "reconcile" }),
    );
    expect(mixed.nodes.map((n) => n.outcome)).toEqual(["refused", "done"]);
    expect(mixed.nodes[0]?.message).toMatch(/several WebSocket nodes \(a, b\)/);
    expect(tables.aw_a).toHaveLength(2);

    const mode2 = fakes({ aw_a: [row(1)] }, [], { subsDbMode: 2 });
    const r2 = await runCleanup({ ...mode2, engine: "postgres", fleet: [A] }, req({ scope: "reconcile" }));
    expect(r2.nodes[0]?.outcome).toBe("refused");
    expect(r2.nodes[0]?.message).toMatch(/subs_db_mode=2/);

    const late = await runCleanup(
      { store, kamailio, engine: "postgres", fleet: [A, B] },
      req({ scope: "reconcile" }),
      { deadline: Date.now() - 1 },
    );
    expect(late.totals.nodesNotReached).toBe(2);
    await expect(
      runCleanup({ store, kamailio, engine: "postgres", fleet: [A] }, req({ scope: "node", node: "zz" })),
    ).rejects.toThrow(/unknown node "zz"/);
  });

  it("by-hand scopes keep live rows unless includeLive, and respect the limit", async () => {
    const rows = [
      row(1000, { presentityUri: "sip:p@x" }),
      row(5000, { presentityUri: "sip:p@x" }),
      row(5001, { presentityUri: "sip:p@x" }),
      row(5002),
    ];
    const tables = { aw_a: [...rows] };
    const { store, kamailio } = fakes(tables, [1000]);
    const deps: SweepDeps = { store, kamailio, engine: "postgres", fleet: [A], now: () => NOW * 1000 };
    const one = await runCleanup(deps, req({ scope: "presentity", presentity: "sip:p@x", limit: 1 }));
    expect(one.totals.deleted).toBe(1);
    expect(one.nodes[0]?.truncated).toBe(true);
    const all = await runCleanup(
      deps,
      req({ scope: "presentity", presentity: "sip:p@x", includeLive: true }),
    );
    expect(all.totals.counts).toMatchObject({ requested: 1, "conn-closed": 1 });
    expect(tables.aw_a.map((r) => r.id)).toEqual([rows[3]?.id]);
  });
});
