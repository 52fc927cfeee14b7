// The refresh gate: death times per (node, presentity, event), events-asked refreshes never
// skipped, and counts by verdict and reason.
import { describe, expect, it } from "vitest";
import { DataApiPresentityTrace } from "#adapters/presentity-trace.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import type { ConnectionClosed, NotifyFailed } from "#core/contract.ts";
import type { NodeFacts } from "#core/fleet.ts";
import { presentityKeyId } from "#core/plan.ts";
import type { PresentityKey, PresentityTraceSource, PresentityTraces } from "#core/ports.ts";
import { RefreshGate } from "#core/refresh-gate.ts";

const key = { presentityUri: "sip:a@example.com", event: "presence" };
const node = { id: "n1" };
const facts = (kamailioVersion: string): NodeFacts => ({
  kamailioVersion,
  subsDbMode: 3,
  notifierProcesses: 0,
  source: "status",
});
const closed = { type: "connection.closed", at: 1_800_000_000 } as ConnectionClosed;
const failed = { type: "notify.failed", at: 1_800_000_000 } as NotifyFailed;

describe("RefreshGate", () => {
  it("skips a refresh owed after deletions on a version whose loop continues, and counts it", () => {
    const tel = memoryTelemetry();
    const gate = new RefreshGate(tel.telemetry, () => 1_800_000_010_000);
    gate.died("n1", key, closed);
    expect(gate.skips({ node, key, sources: [] }, facts("6.0.1"))).toBe(true);
    expect(tel.counts.RefreshSkipped).toBeUndefined(); // counted once per batch
    gate.countReasons();
    expect(tel.counts.RefreshSkipped).toBe(1);
    expect(gate.reasons).toEqual({ "skipped:version-continues": 1 });
  });

  it("sends it on 5.6.3 (nothing traces the presentity's deletions)", () => {
    const tel = memoryTelemetry();
    const gate = new RefreshGate(tel.telemetry, () => 1_800_000_010_000);
    gate.died("n1", key, closed);
    expect(gate.skips({ node, key, sources: [] }, facts("5.6.3"))).toBe(false);
    gate.countReasons();
    expect(tel.counts.RefreshSkipped).toBeUndefined();
    expect(tel.dimensioned).toEqual({ "RefreshSent{reason=untraced-deletion}": 1 });
    expect(gate.reasons).toEqual({ "sent:untraced-deletion": 1 });
  });

  it("a failed NOTIFY among the deletions leaves no death time", () => {
    const gate = new RefreshGate(memoryTelemetry().telemetry, () => 1_800_000_010_000);
    gate.died("n1", key, closed);
    gate.died("n1", key, failed);
    gate.died("n1", key, closed);
    expect(gate.skips({ node, key, sources: [] }, facts("5.6.3"))).toBe(false);
    expect(gate.reasons).toEqual({ "sent:no-death-time": 1 });
  });

  it("never skips a refresh asked for by events (fan-out, follow-up), whatever the version", () => {
    const gate = new RefreshGate(memoryTelemetry().telemetry, () => 1_800_000_010_000);
    gate.died("n1", key, closed);
    expect(gate.skips({ node, key, sources: [{}] }, facts("6.0.1"))).toBe(false);
    expect(gate.reasons).toEqual({});
  });
});

/** A trace source that answers from a table and records what it was asked. */
function fakeTrace(byKey: PresentityTraces["byKey"], installed = true) {
  const asked: PresentityKey[][] = [];
  let pruned = 0;
  const source: PresentityTraceSource = {
    read: async (keys) => {
      asked.push([...keys]);
      return { installed, byKey };
    },
    prune: async () => {
      pruned++;
      return 0;
    },
  };
  return { source, asked, pruned: () => pruned };
}
const DEATH = 1_800_000_000;
const quiet = {
  rows: [{ receivedTime: DEATH - 100, expires: DEATH + 600 }],
  deletions: { tracedSince: DEATH - 600, lastDeletedAt: undefined },
};
const owed = (k = key, sources: unknown[] = []) => ({ node, key: k, sources });

describe("RefreshGate with the deletion trace", () => {
  it("reads only what it could spare (deletions with a death, aborting version), skips a quiet presentity, counts by reason", async () => {
    const tel = memoryTelemetry();
    const gate = new RefreshGate(tel.telemetry, () => (DEATH + 10) * 1000);
    const other = { presentityUri: "sip:b@example.com", event: "presence" };
    const failedKey = { presentityUri: "sip:c@example.com", event: "presence" };
    gate.died("n1", key, closed);
    gate.died("n1", failedKey, failed);
    const trace = fakeTrace(new Map([[presentityKeyId(key), quiet]]));
    const list = [owed(), owed(other, [{}]), owed(failedKey)];
    await gate.prepare(list, async () => facts("5.6.3"), trace.source);
    expect(trace.asked).toEqual([[key]]);
    expect(trace.pruned()).toBe(1);
    expect(list.map((r) => gate.skips(r, facts("5.6.3")))).toEqual([true, false, false]);
    expect(gate.reasons).toEqual({ "skipped:no-trigger": 1, "sent:no-death-time": 1 });
    gate.countReasons();
    expect(tel.dimensioned).toEqual({
      "RefreshSkipped{reason=no-trigger}": 1,
      "RefreshSent{reason=no-death-time}": 1,
    });
  });

  it("a key the installed trace did not return is refreshed (presentity-unread); a deletion since the death is refreshed", async () => {
    const gate = new RefreshGate(memoryTelemetry().telemetry, () => (DEATH + 10) * 1000);
    const deleted = { presentityUri: "sip:d@example.com", event: "presence" };
    gate.died("n1", key, closed);
    gate.died("n1", deleted, closed);
    const trace = fakeTrace(
      new Map([
        [
          presentityKeyId(deleted),
          { rows: [], deletions: { tracedSince: DEATH - 600, lastDeletedAt: DEATH + 2 } },
        ],
      ]),
    );
    await gate.prepare([owed(), owed(deleted)], async () => facts("5.6.3"), trace.source);
    expect([gate.skips(owed(), facts("5.6.3")), gate.skips(owed(deleted), facts("5.6.3"))]).toEqual([
      false,
      false,
    ]);
    expect(gate.reasons).toEqual({ "sent:presentity-unread": 1, "sent:deleted-since-death": 1 });
  });

  it("not installed, or the read throws: nothing is skipped on 5.6.3 (untraced-deletion); 6.0.1 reads nothing", async () => {
    for (const source of [
      fakeTrace(new Map([[presentityKeyId(key), quiet]]), false).source,
      { read: async () => Promise.reject(new Error("boom")), prune: async () => 0 },
    ]) {
      const gate = new RefreshGate(memoryTelemetry().telemetry, () => (DEATH + 10) * 1000);
      gate.died("n1", key, closed);
      await gate.prepare([owed()], async () => facts("5.6.3"), source);
      expect(gate.skips(owed(), facts("5.6.3"))).toBe(false);
      expect(gate.reasons).toEqual({ "sent:untraced-deletion": 1 });
    }
    const trace = fakeTrace(new Map());
    const gate = new RefreshGate(memoryTelemetry().telemetry, () => (DEATH + 10) * 1000);
    gate.died("n1", key, closed);
    await gate.prepare([owed()], async () => facts("6.0.1"), trace.source);
    expect(trace.asked).toEqual([]);
  });
});

describe("DataApiPresentityTrace (the reader's detection)", () => {
  it("a missing view marks the trace absent for 10 minutes, then it is read again; a transient error leaves keys unread", async () => {
    let now = 0;
    let calls = 0;
    let answer: () => unknown[][] = () => {
      throw new Error('relation "kwc_presentity_trace" does not exist');
    };
    const absent: string[] = [];
    const reader = new DataApiPresentityTrace(
      async () => {
        calls++;
        return { records: answer() };
      },
      { engine: "postgres" },
      { now: () => now, onAbsent: (r) => absent.push(r) },
    );
    expect((await reader.read([key])).installed).toBe(false);
    expect(await reader.prune()).toBe(0); // never seen installed: no prune statement
    now = 599_000;
    expect((await reader.read([key])).installed).toBe(false);
    expect(calls).toBe(1);
    answer = () => [[0, 1, DEATH - 100, DEATH + 600, null, DEATH - 50, DEATH + 10, 1]];
    now = 600_000;
    const read = await reader.read([key]);
    expect(read.installed).toBe(true);
    expect(read.byKey.get(presentityKeyId(key))).toEqual({
      rows: [{ receivedTime: DEATH - 100, expires: DEATH + 600 }],
      deletions: { tracedSince: DEATH - 50, lastDeletedAt: undefined },
    });
    answer = () => {
      throw new Error("Communications link failure");
    };
    expect((await reader.read([key])).byKey.size).toBe(0);
    answer = () => [[0, 1, 1, 1, null, DEATH - 50, DEATH + 10, 0]]; // the trigger is gone
    expect((await reader.read([key])).installed).toBe(false);
    expect(absent).toHaveLength(2);
  });
});
