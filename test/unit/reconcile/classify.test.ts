import { describe, expect, it } from "vitest";
import { liveSetOf } from "#core/kernel/liveness.ts";
import {
  classifyRow,
  contactPeer,
  foreignSocketCheck,
  kamailioPurgesExpired,
  modeRefusals,
  sharedTableRefusals,
  type WatcherRow,
} from "#core/reconcile.ts";
import { nodeConfig } from "../../helpers/fakes.ts";

const row = (contact: string, expires = 2_000_000_000): WatcherRow => ({
  id: 1,
  callId: "c1",
  toTag: "t",
  fromTag: "f",
  presentityUri: "sip:bob@example.com",
  watcherUsername: "w",
  watcherDomain: "x",
  event: "presence",
  contact,
  expires,
  version: 1,
  socketInfo: "tcp:127.0.0.1:8080",
});

describe("contactPeer", () => {
  it("reads fix_nated_contact() contacts, port bounded by ';'", () => {
    expect(contactPeer("sip:a@127.0.0.1:54914;transport=ws", "nated")).toEqual({
      ip: "127.0.0.1",
      port: 54914,
    });
    expect(contactPeer("sip:a@[2001:DB8::0:1]:5491;transport=wss", "auto")).toEqual({
      ip: "2001:db8::1",
      port: 5491,
    });
  });

  it("reads set_contact_alias() contacts (5 = WS, 6 = WSS) and prefers the alias in auto", () => {
    const c = "sip:u@abc.invalid;transport=ws;alias=10.0.0.7~40000~5";
    expect(contactPeer(c, "alias")).toEqual({ ip: "10.0.0.7", port: 40000 });
    expect(contactPeer(c, "auto")).toEqual({ ip: "10.0.0.7", port: 40000 });
    expect(contactPeer("sip:u@h.invalid;alias=[::1]~40001~6", "alias")).toEqual({ ip: "::1", port: 40001 });
    // alias of a UDP/TCP peer (proto 1/2) is not a WebSocket watcher
    expect(contactPeer("sip:u@h.invalid;alias=10.0.0.7~40000~1", "alias")).toBeUndefined();
  });

  it("ignores non-WS contacts and the wrong style", () => {
    expect(contactPeer("sip:a@127.0.0.1:5060", "nated")).toBeUndefined();
    expect(contactPeer("sip:a@127.0.0.1:5060;transport=tcp", "auto")).toBeUndefined();
    expect(contactPeer("sip:a@127.0.0.1:54914;transport=ws", "alias")).toBeUndefined();
    expect(contactPeer("sip:u@abc.invalid;transport=ws;alias=10.0.0.7~40000~5", "nated")).toBeUndefined();
    expect(contactPeer("sip:a@127.0.0.1:99999;transport=ws", "nated")).toBeUndefined();
  });
});

describe("classifyRow", () => {
  const live = liveSetOf(
    [
      { ip: "127.0.0.1", port: 5491 },
      { ip: "2001:db8:0:0::1", port: 7000 },
    ].map((p, i) => ({
      id: i,
      type: "WS",
      state: "CONN_OK",
      srcIp: p.ip,
      srcPort: p.port,
      dstIp: "",
      dstPort: 0,
    })),
  );
  const ctx = {
    livePeers: live,
    now: 1_800_000_000,
    purgeExpired: true,
    contactStyle: "auto" as const,
    expiredGraceSeconds: 0,
  };

  it("keeps a connected peer's rows, never confuses 5491 with 54914", () => {
    expect(classifyRow(row("sip:a@127.0.0.1:5491;transport=ws"), ctx).classification).toBe("live");
    expect(classifyRow(row("sip:a@127.0.0.1:54914;transport=ws"), ctx).classification).toBe("conn-closed");
    expect(classifyRow(row("sip:a@[2001:db8::1]:7000;transport=ws"), ctx).classification).toBe("live");
  });

  it("expired (past the grace) only where Kamailio does not purge, even with the peer connected", () => {
    const old = 1_799_999_000;
    expect(classifyRow(row("sip:a@127.0.0.1:1;transport=ws", old), ctx).classification).toBe("expired");
    expect(classifyRow(row("sip:a@127.0.0.1:5491;transport=ws", old), ctx).classification).toBe("expired");
    expect(
      classifyRow(row("sip:a@127.0.0.1:5491;transport=ws", old), { ...ctx, purgeExpired: false })
        .classification,
    ).toBe("live");
    expect(classifyRow(row("sip:a@127.0.0.1:5060", old), ctx).classification).toBe("expired");
    expect(
      classifyRow(row("sip:a@127.0.0.1:5060", old), { ...ctx, purgeExpired: false }).classification,
    ).toBe("live");
    expect(
      classifyRow(row("sip:a@127.0.0.1:1;transport=ws", old), { ...ctx, purgeExpired: false }).classification,
    ).toBe("conn-closed");
    expect(
      classifyRow(row("sip:a@127.0.0.1:5060", ctx.now - 10), { ...ctx, expiredGraceSeconds: 30 })
        .classification,
    ).toBe("live");
  });
});

describe("versions and refusals", () => {
  it("knows which versions purge expired rows", () => {
    expect(kamailioPurgesExpired("5.6.3")).toBe(false);
    expect(kamailioPurgesExpired("5.7.4")).toBe(false);
    expect(kamailioPurgesExpired("5.8.0")).toBe(true);
    expect(kamailioPurgesExpired("6.0.1-1+deb13u2")).toBe(true);
  });

  it("refuses subs_db_mode != 3 and notifier mode on PostgreSQL >= 5.7", () => {
    const ok = {
      kamailioVersion: "5.6.3",
      subsDbMode: 3,
      notifierProcesses: 1,
      watchersTable: "active_watchers",
    };
    expect(modeRefusals("n1", ok, "postgres")).toEqual([]);
    expect(modeRefusals("n1", { ...ok, kamailioVersion: "5.7.0" }, "mysql")).toEqual([]);
    const [pg] = modeRefusals("n1", { ...ok, kamailioVersion: "5.7.0" }, "postgres");
    expect(pg).toMatch(/notifier_processes=1 on PostgreSQL.*GH #2739.*notifier_processes=0/);
    const [mode] = modeRefusals("n1", { ...ok, subsDbMode: 2 }, "mysql");
    expect(mode).toMatch(/subs_db_mode=2.*shared memory.*subs_db_mode", 3/);
  });

  const node = (id: string, table: string, socket: string) =>
    nodeConfig(id, { socketInfo: [socket], watchersTable: table });

  it("refuses nodes configured on one shared table, and says how to move", () => {
    const fleet = [
      node("a", "active_watchers", "tcp:10.0.0.1:8080"),
      node("b", "ACTIVE_WATCHERS", "tcp:10.0.0.2:8080"),
      node("c", "aw_c", "tcp:10.0.0.3:8080"),
    ];
    const refused = sharedTableRefusals(fleet);
    expect([...refused.keys()].sort()).toEqual(["a", "b"]);
    expect(refused.get("a")).toMatch(
      /several WebSocket nodes \(a, b\).*kwc db create-node-table.*active_watchers_table/,
    );
  });

  it("refuses a table holding another configured node's sockets, warns on unknown sockets", () => {
    const a = node("a", "aw_a", "tcp:10.0.0.1:8080");
    const b = node("b", "aw_b", "tcp:10.0.0.2:8080");
    expect(foreignSocketCheck(a, [a, b], ["tcp:10.0.0.1:8080"])).toEqual({ warnings: [] });
    const mixed = foreignSocketCheck(
      a,
      [a, b],
      ["tcp:10.0.0.1:8080", "tcp:10.0.0.2:8080", "udp:10.0.0.1:5060"],
    );
    expect(mixed.refusal).toMatch(/\(a, b\)/);
    expect(mixed.warnings).toHaveLength(1);
    expect(mixed.warnings[0]).toMatch(/udp:10.0.0.1:5060/);
  });
});
