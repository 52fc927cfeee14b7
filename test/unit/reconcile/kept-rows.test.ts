// The sweep keeps a lean copy of each row between the read and the delete (peer parsed, strings
// shared). These tests pin that the lean copy changes nothing: every reason is classifyRow()'s and
// every listed row carries the row's own key, presentity, event, contact and peer.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CleanupRequestSchema } from "#core/cleanup-request.ts";
import {
  type ClassifyContext,
  type ContactStyle,
  classifyRow,
  peerKey,
  type WatcherRow,
} from "#core/reconcile.ts";
import { classifyKept, runCleanup } from "#core/reconcile-sweep.ts";
import { FakeKamailio, MemoryStore, nodeConfig } from "../../helpers/fakes.ts";

const NOW = 1_800_000_000;
const SOCKET = "tcp:10.0.0.1:8080";

const contactArb = fc.oneof(
  fc
    .record({
      host: fc.constantFrom("10.9.9.9", "10.9.9.10", "[2001:db8::1]"),
      port: fc.integer({ min: 5490, max: 5493 }),
    })
    .chain(({ host, port }) =>
      fc.constantFrom(
        `sip:u@${host}:${port};transport=ws`,
        `<sip:u@${host}:${port};transport=wss>`,
        `sip:u@10.0.0.1:8080;alias=${host.replace(/[[\]]/g, "")}~${port}~5`,
        `sip:u@10.0.0.1:8080;alias=${host.replace(/[[\]]/g, "")}~${port}~6;ob`,
        `sip:u@${host}:${port}`,
        `sip:u@${host}:${port};transport=udp`,
      ),
    ),
);

const rowsArb = fc.array(
  fc.record({
    contact: contactArb,
    presentity: fc.constantFrom("sip:bob@x", "sip:carol@x"),
    event: fc.constantFrom("presence", "dialog"),
    expiresIn: fc.integer({ min: -7200, max: 3600 }),
    tag: fc.string({ maxLength: 6 }),
  }),
  { maxLength: 40 },
);

function setup(rows: WatcherRow[], livePorts: number[], style: ContactStyle) {
  const node = nodeConfig("a", { socketInfo: [SOCKET], watchersTable: "aw_a", contactStyle: style });
  // Pages of 7: rows of one peer and one presentity spread over several pages.
  const store = new MemoryStore({ aw_a: rows }, { pageSize: 7 });
  const live = livePorts.flatMap((port) => [
    { ip: "10.9.9.9", port },
    { ip: "2001:db8::1", port },
  ]);
  const kamailio = new FakeKamailio().serve("a", { status: { boot: "1-abcd" }, live });
  return { node, store, kamailio, live };
}

describe("the sweep's lean rows", () => {
  it("list every row with classifyRow()'s reason and the row's own fields", async () => {
    await fc.assert(
      fc.asyncProperty(
        rowsArb,
        fc.subarray([5490, 5491, 5492, 5493]),
        fc.constantFrom<ContactStyle>("nated", "alias"),
        async (specs, livePorts, style) => {
          const rows: WatcherRow[] = specs.map((s, i) => ({
            id: i + 1,
            presentityUri: s.presentity,
            event: s.event,
            contact: s.contact,
            callId: `call-${i}-${s.tag}`,
            toTag: `to-${s.tag}`,
            fromTag: `from-${i}`,
            watcherUsername: "u",
            watcherDomain: "x",
            socketInfo: SOCKET,
            expires: NOW + s.expiresIn,
            version: 1,
          }));
          const { node, store, kamailio, live } = setup(rows, livePorts, style);
          const report = await runCleanup(
            { store, kamailio, engine: "postgres", fleet: [node], now: () => NOW * 1000 },
            CleanupRequestSchema.parse({ scope: "reconcile", dryRun: true, list: "all" }),
          );
          const ctx: ClassifyContext = {
            livePeers: new Set(live.map(peerKey)),
            now: NOW,
            purgeExpired: true,
            contactStyle: style,
            expiredGraceSeconds: 30,
          };
          const expected = rows.map((r) => {
            const c = classifyRow(r, ctx);
            return {
              id: r.id,
              node: "a",
              key: { callId: r.callId, toTag: r.toTag, fromTag: r.fromTag },
              presentity: r.presentityUri,
              event: r.event,
              contact: r.contact,
              ...(c.peer ? { peer: peerKey(c.peer) } : {}),
              reason: c.classification,
            };
          });
          expect(report.nodes[0]?.rows).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("classifyKept: expired beats live, a row without a peer is live, an unknown peer is conn-closed", () => {
    const ctx = {
      livePeers: new Set(["10.9.9.9:5491"]),
      now: NOW,
      purgeExpired: true,
      expiredGraceSeconds: 30,
    };
    expect(classifyKept({ expires: NOW - 31, peer: "10.9.9.9:5491" }, ctx)).toBe("expired");
    expect(classifyKept({ expires: NOW - 29, peer: "10.9.9.9:5491" }, ctx)).toBe("live");
    expect(classifyKept({ expires: NOW - 31, peer: undefined }, { ...ctx, purgeExpired: false })).toBe(
      "live",
    );
    expect(classifyKept({ expires: NOW + 60, peer: "10.9.9.9:54914" }, ctx)).toBe("conn-closed");
  });
});
