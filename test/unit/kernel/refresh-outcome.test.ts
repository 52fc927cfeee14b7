// What becomes of a refresh, for the worker and the sweep alike (kernel/refresh-outcome.ts).
import { describe, expect, it } from "vitest";
import type { Fault } from "#core/classify.ts";
import { decideRefreshOutcome, type RefreshDecision } from "#core/kernel/refresh-outcome.ts";

const transient: Fault = { kind: "transient", detail: "ECONNREFUSED" };
const permanent: Fault = { kind: "permanent", detail: "401" };
const fault500: Fault = { kind: "refresh-fault", detail: "500", meaning: "sync mode on 5.6.3 …" };

const table: [string, Fault | undefined, boolean, boolean, RefreshDecision][] = [
  ["no fault", undefined, false, true, "ok"],
  ["transient, asked by events", transient, true, true, "retry"],
  ["transient, owed after deletions, follow-ups available", transient, false, true, "follow-up"],
  ["transient, owed after deletions, no follow-ups", transient, false, false, "degraded"],
  ["permanent", permanent, true, true, "failed"],
  ["refresh 500 (after the bounded reconcile)", fault500, true, true, "degraded"],
  ["refresh 500 owed after deletions", fault500, false, true, "degraded"],
];

describe("decideRefreshOutcome", () => {
  it.each(table)("%s → %s", (_name, fault, askedByEvents, canFollowUp, expected) => {
    expect(decideRefreshOutcome(fault, { askedByEvents, canFollowUp })).toBe(expected);
  });
});
