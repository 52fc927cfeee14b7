// The contract's rejection reasons name the field path, what was expected and what was received;
// valid events (hostile-but-legal strings included) pass; one bad event never sinks the others.
import { describe, expect, it } from "vitest";
import { ENVELOPE_MAX_BYTES, ENVELOPE_MAX_EVENTS } from "#core/contract.ts";
import { parseEvent, parseMessage } from "#core/parse.ts";

const closed = {
  type: "connection.closed",
  node: "node-a",
  boot: "1795625653-3509dd04",
  peer: { ip: "127.0.0.1", port: 40123 },
  transport: "ws",
  cause: "tcp:closed",
  at: 1795625653,
};
const failed = {
  type: "notify.failed",
  node: "node-a",
  boot: "1795625653-3509dd04",
  dialog: { callId: `q"uo\\te%'<_!~(x)@h`, toTag: "abc-1", fromTag: "a'b%c_d!e~f" },
  presentity: "sip:alice@example.com",
  event: "dialog",
  code: 481,
  contact: "sip:x@127.0.0.1:40123;transport=ws",
  at: 1795625653,
};
const changed = {
  type: "presence.changed",
  node: "node-a",
  boot: "1795625653-3509dd04",
  presentity: "sip:alice@example.com",
  event: "presence",
  at: 1795625653,
};
const refresh = {
  type: "refresh.requested",
  node: "node-a",
  presentity: "sip:alice@example.com",
  event: "dialog",
  reason: "refresh-failed",
  attempt: 1,
  at: 1795625653,
};
const envelope = (events: unknown[]) => JSON.stringify({ v: 1, events });
const reasonOf = (raw: unknown) => {
  const r = parseEvent(raw);
  if (r.ok) throw new Error("expected a rejection");
  return r.reason;
};

describe("event contract v1: valid events", () => {
  it("accepts each event type, hostile Call-IDs and tags, IPv6 peers and websocket:closed without transport", () => {
    const ws = { ...closed, cause: "websocket:closed", conid: 7, transport: undefined };
    const v6 = { ...closed, peer: { ip: "2001:db8::1", port: 5060 } };
    const { attempt: _attempt, ...refreshNoAttempt } = refresh;
    const parsed = parseMessage(envelope([closed, failed, changed, refresh, refreshNoAttempt, ws, v6]));
    expect(parsed.rejections).toEqual([]);
    expect(parsed.events.map((e) => e.event.type)).toEqual([
      "connection.closed",
      "notify.failed",
      "presence.changed",
      "refresh.requested",
      "refresh.requested",
      "connection.closed",
      "connection.closed",
    ]);
    const dialog = parsed.events[1]?.event;
    expect(dialog?.type === "notify.failed" && dialog.dialog).toEqual(failed.dialog);
  });
});

describe("event contract v1: rejection reasons", () => {
  it("names path, expectation and received value for a bad port", () => {
    expect(reasonOf({ ...closed, peer: { ip: "127.0.0.1", port: 70000 } })).toBe(
      "peer.port: expected value ≤ 65535, received number 70000",
    );
  });

  it("names a missing field", () => {
    const { node: _node, ...noNode } = closed;
    expect(reasonOf(noNode)).toMatch(/^node: expected string, received nothing$/);
  });

  it("names an unknown field (strict objects)", () => {
    expect(reasonOf({ ...changed, extra: 1 })).toMatch(/expected no unknown field, received extra/);
  });

  it("names an unknown event type with the allowed ones", () => {
    expect(reasonOf({ ...changed, type: "presence.gone" })).toMatch(
      /^type: expected "type" to be one of connection\.closed, notify\.failed, presence\.changed, refresh\.requested, received string "presence\.gone"$/,
    );
  });

  it("refresh.requested: strict, with the same string bounds as the other types", () => {
    expect(reasonOf({ ...refresh, reason: "because" })).toBe(
      'reason: expected one of "refresh-failed", received string "because"',
    );
    expect(reasonOf({ ...refresh, presentity: "x".repeat(256) })).toMatch(
      /^presentity: expected length ≤ 255, received string/,
    );
    expect(reasonOf({ ...refresh, event: "bad event" })).toMatch(/^event: expected an event package token/);
    expect(reasonOf({ ...refresh, attempt: 0 })).toBe("attempt: expected value ≥ 1, received number 0");
    expect(reasonOf({ ...refresh, boot: "1795625653-3509dd04" })).toMatch(
      /expected no unknown field, received boot/,
    );
  });

  it("rejects a bad boot id, peer ip, cause and NOTIFY code with their paths", () => {
    expect(reasonOf({ ...closed, boot: "1795625653" })).toMatch(
      /^boot: expected a boot id like .*, received string "1795625653"$/,
    );
    expect(reasonOf({ ...closed, peer: { ip: "[::1]", port: 1 } })).toMatch(
      /^peer\.ip: .*received string "\[::1\]"/,
    );
    expect(reasonOf({ ...closed, cause: "tcp:eof" })).toMatch(
      /^cause: expected one of .*"tcp:closed".*received string "tcp:eof"$/,
    );
    expect(reasonOf({ ...failed, code: 200 })).toBe("code: expected value ≥ 300, received number 200");
    expect(reasonOf({ ...failed, dialog: { ...failed.dialog, callId: "" } })).toBe(
      'dialog.callId: expected length ≥ 1, received string ""',
    );
  });

  it("shortens long received values", () => {
    const reason = reasonOf({ ...failed, presentity: `sip:${"x".repeat(300)}@example.com` });
    expect(reason).toMatch(/^presentity: expected length ≤ 255, received string "sip:x+…$/);
    expect(reason.length).toBeLessThan(160);
  });
});

describe("envelopes", () => {
  it("keeps the valid events of an envelope and rejects the bad one by index", () => {
    const parsed = parseMessage(envelope([closed, { ...closed, peer: { ip: "x", port: 1 } }, changed]));
    expect(parsed.events.map((e) => e.index)).toEqual([0, 2]);
    expect(parsed.rejections).toHaveLength(1);
    expect(parsed.rejections[0]?.index).toBe(1);
    expect(parsed.rejections[0]?.reason).toMatch(/^events\[1\]\.peer\.ip: /);
    expect(JSON.parse(parsed.rejections[0]?.raw ?? "null")).toMatchObject({ peer: { ip: "x" } });
  });

  it("rejects an unreadable envelope whole", () => {
    expect(parseMessage("{not json").rejections[0]?.reason).toMatch(
      /^\(root\): expected JSON, received unparsable/,
    );
    expect(parseMessage(JSON.stringify({ v: 2, events: [closed] })).rejections[0]?.reason).toBe(
      "v: expected one of 1, received number 2",
    );
    expect(parseMessage(JSON.stringify({ v: 1, events: [] })).rejections[0]?.reason).toBe(
      "events: expected count ≥ 1, received array []",
    );
    const tooMany = parseMessage(envelope(Array.from({ length: ENVELOPE_MAX_EVENTS + 1 }, () => changed)));
    expect(tooMany.events).toEqual([]);
    expect(tooMany.rejections[0]?.reason).toMatch(
      new RegExp(`^events: expected count ≤ ${ENVELOPE_MAX_EVENTS}, `),
    );
    const tooBig = parseMessage(envelope([{ ...changed, pad: "x".repeat(ENVELOPE_MAX_BYTES) }]));
    expect(tooBig.rejections[0]?.reason).toMatch(
      new RegExp(`^\\(root\\): expected at most ${ENVELOPE_MAX_BYTES} bytes`),
    );
  });
});
