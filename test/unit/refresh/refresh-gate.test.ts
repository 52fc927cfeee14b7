// The refresh gate: death times per (node, presentity, event), events-asked refreshes never
// skipped, and counts by verdict and reason.
import { describe, expect, it } from "vitest";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import type { ConnectionClosed, NotifyFailed } from "#core/contract.ts";
import type { NodeFacts } from "#core/fleet.ts";
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
    expect(tel.counts.RefreshSkipped).toBe(1);
    expect(gate.reasons).toEqual({ "skipped:version-continues": 1 });
  });

  it("sends it on 5.6.3 (nothing traces the presentity's deletions)", () => {
    const tel = memoryTelemetry();
    const gate = new RefreshGate(tel.telemetry, () => 1_800_000_010_000);
    gate.died("n1", key, closed);
    expect(gate.skips({ node, key, sources: [] }, facts("5.6.3"))).toBe(false);
    expect(tel.counts.RefreshSkipped).toBeUndefined();
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
