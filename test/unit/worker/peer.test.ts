// The peer matcher and its SQL pre-selection: table-driven cases and fast-check properties.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import type { ContactStyle } from "#core/fleet.ts";
import {
  aliasPeerOf,
  canonicalIp,
  contactLikeShapes,
  contactMatchesPeer,
  contactPeer,
  expandIpv6,
  natedPeerOf,
  type Peer,
  peerKey,
} from "#core/peer.ts";
import { likePattern } from "#core/sql.ts";
import { createWorker } from "#core/worker.ts";
import {
  envelope,
  FakeKamailio,
  fleetOf,
  MemoryStore,
  nodeConfig,
  RecordingSink,
  sqlLike,
  watcherRow,
} from "./fakes.ts";

/** What the store's SQL selects: any LIKE shape over LOWER(contact). */
function sqlSelects(contact: string, peer: Peer, style: ContactStyle): boolean {
  return contactLikeShapes(peer, style).some((s) => sqlLike(contact.toLowerCase(), likePattern(s.parts)));
}

describe("contactMatchesPeer (table)", () => {
  const cases: [string, ContactStyle, Peer, boolean][] = [
    ["sip:930e4def@127.0.0.1:51584;transport=ws", "nated", { ip: "127.0.0.1", port: 51584 }, true],
    ["sip:u@127.0.0.1:54914;transport=ws", "nated", { ip: "127.0.0.1", port: 5491 }, false],
    ["sip:u@127.0.0.1:5491;transport=ws", "nated", { ip: "127.0.0.1", port: 54914 }, false],
    ["sip:u@127.0.0.1:5491;transport=ws", "nated", { ip: "127.0.0.1", port: 549 }, false],
    ["sip:u@127.0.0.1:5491", "nated", { ip: "127.0.0.1", port: 5491 }, true],
    ["<sip:u@127.0.0.1:5491>", "nated", { ip: "127.0.0.1", port: 5491 }, true],
    ["sip:u@127.0.0.1:5491>", "nated", { ip: "127.0.0.1", port: 5491 }, true],
    ["sip:u@27.0.0.1:5491;transport=ws", "nated", { ip: "127.0.0.1", port: 5491 }, false],
    ["sip:u@127.0.0.11:5491;transport=ws", "nated", { ip: "127.0.0.1", port: 5491 }, false],
    ["sip:u@[2001:DB8::1]:443;transport=ws", "nated", { ip: "2001:db8::1", port: 443 }, true],
    ["sip:u@[2001:0db8:0000:0000:0000:0000:0000:0001]:443", "nated", { ip: "2001:db8::1", port: 443 }, true],
    ["sip:u@[2001:db8::1]:4430;transport=ws", "nated", { ip: "2001:db8::1", port: 443 }, false],
    ["sip:u@[2001:db8::10]:443;transport=ws", "nated", { ip: "2001:db8::1", port: 443 }, false],
    ["sip:a@x.invalid;transport=ws;alias=127.0.0.1~52180~5", "alias", { ip: "127.0.0.1", port: 52180 }, true],
    [
      "sip:a@x.invalid;transport=ws;alias=127.0.0.1~52180~6>",
      "alias",
      { ip: "127.0.0.1", port: 52180 },
      true,
    ],
    ["sip:a@x.invalid;alias=127.0.0.1~521800~5", "alias", { ip: "127.0.0.1", port: 52180 }, false],
    ["sip:a@x.invalid;alias=127.0.0.1~5218~5", "alias", { ip: "127.0.0.1", port: 52180 }, false],
    ["sip:a@x.invalid;alias=[::1]~5060~6;ob", "alias", { ip: "0:0:0:0:0:0:0:1", port: 5060 }, true],
    // A nated-looking host does not count under the alias style, and vice versa.
    ["sip:a@127.0.0.1:52180;transport=ws", "alias", { ip: "127.0.0.1", port: 52180 }, false],
    ["sip:a@x.invalid;alias=127.0.0.1~52180~5", "nated", { ip: "127.0.0.1", port: 52180 }, false],
    ["sip:a@x.invalid;alias=127.0.0.1~52180~5", "auto", { ip: "127.0.0.1", port: 52180 }, true],
    ["sip:a@127.0.0.1:52180;transport=ws", "auto", { ip: "127.0.0.1", port: 52180 }, true],
    // Hostile user parts are data.
    [`sip:%_'"\\@10.0.0.7:5060;transport=ws`, "nated", { ip: "10.0.0.7", port: 5060 }, true],
    [`sip:a%25@10.0.0.7:5060`, "nated", { ip: "10.0.0.7", port: 50 }, false],
  ];
  it.each(cases)("%s (%s) vs %o → %s", (contact, style, peer, expected) => {
    expect(contactMatchesPeer(contact, peer, style)).toBe(expected);
    // The SQL never misses what the matcher accepts.
    if (expected) expect(sqlSelects(contact, peer, style)).toBe(true);
  });

  it("parses peers exactly", () => {
    expect(natedPeerOf("sip:u@1.2.3.4:5;transport=ws")).toEqual({ ip: "1.2.3.4", port: 5 });
    expect(natedPeerOf("sip:u@example.com:5;transport=ws")).toBeUndefined();
    expect(natedPeerOf("sip:u@1.2.3.4;transport=ws")).toBeUndefined();
    expect(aliasPeerOf("sip:u@h;alias=1.2.3.4~70000~5")).toBeUndefined();
    expect(canonicalIp("2001:DB8:0:0:1:0:0:1")).toBe("2001:db8::1:0:0:1");
    expect(canonicalIp("::FFFF:10.0.0.1")).toBe("::ffff:a00:1");
    expect(expandIpv6("1::2::3")).toBeUndefined();
    expect(peerKey({ ip: "2001:DB8::1", port: 5 })).toBe("[2001:db8::1]:5");
  });
});

// ---- generators ----
const ports = fc.oneof(
  fc.constantFrom(549, 5491, 54914, 5490, 49, 1, 65535),
  fc.integer({ min: 1, max: 65535 }),
);
const v4 = fc.oneof(
  fc.constantFrom("127.0.0.1", "127.0.0.11", "27.0.0.1", "10.0.0.1"),
  fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t) => t.join(".")),
);
const v6groups = fc.oneof(
  fc.constant(["2001", "db8", "0", "0", "0", "0", "0", "1"]),
  fc.constant(["0", "0", "0", "0", "0", "0", "0", "1"]),
  fc
    .array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
    .map((g) => g.map((x) => x.toString(16))),
);
const ip = fc.oneof(
  v4,
  v6groups.map((g) => canonicalIp(g.join(":")) as string),
);
/** The address as Kamailio or a client might print it: compressed, expanded, upper case. */
const renderIp = (address: string) =>
  address.includes(":")
    ? fc.constantFrom(
        address,
        address.toUpperCase(),
        (expandIpv6(address) ?? []).join(":"),
        (expandIpv6(address) ?? []).join(":").toUpperCase(),
      )
    : fc.constant(address);
const userPart = fc.stringMatching(/^[A-Za-z0-9%_'"\\!~.-]{1,12}$/);
const natedEnd = fc.constantFrom(";transport=ws", ";transport=wss;ob", "", ">", "?x=1");

function contactFor(peer: Peer, style: "nated" | "alias") {
  return fc
    .tuple(renderIp(peer.ip), userPart, natedEnd, fc.constantFrom(5, 6), fc.constantFrom("", ";ob", ">"))
    .map(([host, user, end, proto, aliasEnd]) => {
      if (style === "nated") {
        const h = peer.ip.includes(":") ? `[${host}]` : host;
        return `${end === ">" ? "<" : ""}sip:${user}@${h}:${peer.port}${end}`;
      }
      const h = peer.ip.includes(":") && proto === 6 ? `[${host}]` : host;
      return `sip:${user}@abc.invalid;transport=ws;alias=${h}~${peer.port}~${proto}${aliasEnd}`;
    });
}

const peer = fc.record({ ip, port: ports });
/** A peer "close" to another: same address with a port sharing digits, or another address. */
const nearPeer = (p: Peer) =>
  fc.oneof(
    fc.constantFrom(
      { ip: p.ip, port: Number(String(p.port).slice(0, -1)) || 1 },
      { ip: p.ip, port: Number(`${p.port}4`) <= 65535 ? Number(`${p.port}4`) : 1 },
      { ip: p.ip, port: p.port === 65535 ? 1 : p.port + 1 },
    ),
    peer,
  );

describe("matcher properties", () => {
  it("every contact of the dead peer is selected (SQL and TS); no contact of another peer is", () => {
    fc.assert(
      fc.property(
        peer
          .chain((dead) =>
            fc.tuple(
              fc.constant(dead),
              fc.constantFrom<"nated" | "alias">("nated", "alias"),
              fc.array(nearPeer(dead), { minLength: 1, maxLength: 5 }),
            ),
          )
          .chain(([dead, style, others]) =>
            fc.tuple(
              fc.constant(dead),
              fc.constant(style),
              contactFor(dead, style),
              fc.tuple(...others.map((o) => fc.tuple(fc.constant(o), contactFor(o, style)))),
            ),
          ),
        ([dead, style, deadContact, others]) => {
          for (const s of [style, "auto"] as const) {
            expect(sqlSelects(deadContact, dead, s)).toBe(true);
            expect(contactMatchesPeer(deadContact, dead, s)).toBe(true);
          }
          for (const [other, contact] of others) {
            if (peerKey(other) === peerKey(dead)) continue;
            // The TS matcher is exact; the SQL may be wider only through address forms, never the port.
            expect(contactMatchesPeer(contact, dead, style)).toBe(false);
            if (other.port !== dead.port) expect(sqlSelects(contact, dead, style)).toBe(false);
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe("worker property: exactly the node's dead rows are deleted", () => {
  it("no live row is ever deleted and every dead row of the node is", async () => {
    const style = fc.constantFrom<"nated" | "alias">("nated", "alias");
    const scenario = fc
      .tuple(style, fc.uniqueArray(peer, { minLength: 2, maxLength: 8, selector: (p) => peerKey(p) }))
      .chain(([s, peers]) =>
        fc.tuple(
          fc.constant(s),
          fc.tuple(
            ...peers.map((p) =>
              fc.record({
                peer: fc.constant(p),
                contact: contactFor(p, s),
                live: fc.boolean(),
                otherNode: fc.boolean(),
                eventSent: fc.boolean(),
              }),
            ),
          ),
        ),
      );
    await fc.assert(
      fc.asyncProperty(scenario, async ([s, entries]) => {
        const n1 = nodeConfig("node-1", { contactStyle: s });
        const n2 = nodeConfig("node-2", { contactStyle: s });
        const store = new MemoryStore();
        const kamailio = new FakeKamailio();
        const rows = entries.map((e) =>
          watcherRow({ contact: e.contact, socketInfo: (e.otherNode ? n2 : n1).socketInfo[0] as string }),
        );
        rows.forEach((r, i) => {
          store.rows(entries[i]?.otherNode ? n2.watchersTable : n1.watchersTable).push(r);
        });
        kamailio.live.set(
          "node-1",
          entries.filter((e) => e.live).map((e) => e.peer),
        );
        const events = entries
          .filter((e) => e.eventSent)
          .map((e) => ({
            type: "connection.closed",
            node: "node-1",
            boot: "1795621085-9f3a61c2",
            peer: e.peer,
            cause: "tcp:closed",
            at: 1_795_621_085,
          }));
        if (events.length === 0) return;
        const run = createWorker({
          fleet: async () => fleetOf([n1, n2]),
          storeFor: () => store,
          kamailio,
          dlq: new RecordingSink(),
          telemetry: memoryTelemetry().telemetry,
          now: () => 1_795_621_090_000,
        });
        const r = await run([{ messageId: "m", body: envelope(...events) }]);
        expect(r.failedMessageIds).toEqual([]);
        const remaining = new Set(
          [...store.rows(n1.watchersTable), ...store.rows(n2.watchersTable)].map((x) => x.id),
        );
        entries.forEach((e, i) => {
          // A peer match deletes only rows whose contact names that peer as a WS/WSS peer.
          const namesWsPeer = contactPeer(e.contact, s) !== undefined;
          const shouldGo = e.eventSent && !e.live && !e.otherNode && namesWsPeer;
          expect(remaining.has(rows[i]?.id as number)).toBe(!shouldGo);
        });
      }),
      { numRuns: 150 },
    );
  });
});
