// Which deleting events may act (kernel/admission.ts): fresh `at`, the node's current boot.
import { describe, expect, it } from "vitest";
import type { KamailioEvent } from "#core/contract.ts";
import { bootProblem, DEFAULT_FRESHNESS, freshnessProblem } from "#core/kernel/admission.ts";

const NOW = 1_800_000_000_000;
const closed = (at: number): KamailioEvent => ({
  type: "connection.closed",
  node: "n",
  boot: "1-abcd",
  peer: { ip: "1.2.3.4", port: 5 },
  cause: "tcp:reset",
  at,
});

describe("admission", () => {
  it.each([
    ["now", NOW / 1000, false],
    ["within the window", NOW / 1000 - DEFAULT_FRESHNESS.maxAgeSeconds + 1, false],
    ["older than the window (a redrive days later)", NOW / 1000 - DEFAULT_FRESHNESS.maxAgeSeconds - 1, true],
    ["in 2001 (forged)", 1_000_000_001, true],
    ["in the future beyond the skew", NOW / 1000 + DEFAULT_FRESHNESS.maxFutureSeconds + 1, true],
  ])("at %s → ignored: %s", (_n, at, ignored) => {
    expect(freshnessProblem(closed(at), NOW, DEFAULT_FRESHNESS) !== undefined).toBe(ignored);
  });

  it("never ignores a non-deleting event for its age", () => {
    const changed: KamailioEvent = {
      type: "presence.changed",
      node: "n",
      boot: "1-abcd",
      presentity: "sip:a@b",
      event: "presence",
      at: 1_000_000_001,
    };
    expect(freshnessProblem(changed, NOW, DEFAULT_FRESHNESS)).toBeUndefined();
  });

  it("compares boots for equality only", () => {
    expect(bootProblem("5-abcd", "5-abcd")).toBeUndefined();
    expect(bootProblem("4-abcd", "5-abcd")).toMatch(/boot 4-abcd, node now at boot 5-abcd/);
    expect(bootProblem("9-abcd", "5-abcd")).toMatch(/node now at boot/); // a "newer" one too
    expect(bootProblem("5-abcd", undefined)).toMatch(/no boot id/);
  });
});
