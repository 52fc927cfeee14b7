// The guard's verdict per candidate row (kernel/guard.ts), as a table: every safety rule and the
// control that shows the same row does go when the rule does not apply.
import { describe, expect, it } from "vitest";
import { judgeRow, type Match } from "#core/kernel/guard.ts";

const WS = "sip:u@10.0.0.1:5000;transport=ws";
const WSS_ALIAS = "sip:u@x.invalid;transport=ws;alias=10.0.0.1~5000~6";
const UDP = "sip:u@10.0.0.1:5000";
const NO_PEER = "sip:u@df7jal23ls0d.invalid;transport=ws";
const peer = { ip: "10.0.0.1", port: 5000 };
const live = new Set(["10.0.0.1:5000"]);
const none = new Set<string>();

const cases: [string, string, Match, ReadonlySet<string>, number, string][] = [
  ["peer match, peer dead → delete", WS, { by: "peer", peer }, none, 1, "delete"],
  ["peer match, peer connected → live", WS, { by: "peer", peer }, live, 1, "live"],
  ["peer match on an alias WSS row, dead → delete", WSS_ALIAS, { by: "peer", peer }, none, 1, "delete"],
  ["peer match on a UDP contact → no-peer", UDP, { by: "peer", peer }, none, 1, "no-peer"],
  ["peer match on a row naming no peer → no-peer", NO_PEER, { by: "peer", peer }, none, 1, "no-peer"],
  [
    "peer match, other WS peer → no-match",
    WS,
    { by: "peer", peer: { ...peer, port: 5001 } },
    none,
    1,
    "no-match",
  ],
  ["dialog, same version, peer dead → delete", WS, { by: "dialog", version: 7 }, none, 7, "delete"],
  ["dialog, same version, peer connected → live", WS, { by: "dialog", version: 7 }, live, 7, "live"],
  [
    "dialog, re-subscribed since (version moved) → changed",
    WS,
    { by: "dialog", version: 7 },
    none,
    8,
    "changed",
  ],
  [
    "dialog without a version (older cfg) → changed",
    WS,
    { by: "dialog", version: undefined },
    none,
    7,
    "changed",
  ],
  ["dialog, no peer, same version → delete", NO_PEER, { by: "dialog", version: 7 }, none, 7, "delete"],
  ["dialog, UDP contact, same version → delete", UDP, { by: "dialog", version: 7 }, live, 7, "delete"],
  ["sweep, peer dead → delete", WS, { by: "sweep" }, none, 1, "delete"],
  ["sweep, peer connected → live", WS, { by: "sweep" }, live, 1, "live"],
  [
    "sweep by hand with includeLive, connected → delete",
    WS,
    { by: "sweep", includeLive: true },
    live,
    1,
    "delete",
  ],
];

describe("judgeRow", () => {
  it.each(cases)("%s", (_name, contact, match, livePeers, version, expected) => {
    const verdict = judgeRow({ contact, version }, match, livePeers, "auto");
    expect(verdict.delete ? "delete" : verdict.why).toBe(expected);
  });
});
