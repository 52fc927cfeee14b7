import { describe, expect, it } from "vitest";
import type { LocalStack } from "../../../local/stack.ts";
import { statusLine } from "../../../local/status.ts";

// Only what statusLine reads; the rest of LocalStack is irrelevant to the line.
function fakeStack(counters: Partial<LocalStack["counters"]>, metrics: Record<string, number>): LocalStack {
  return {
    counters: {
      eventsIn: 0,
      rejects: 0,
      reconcileRuns: 0,
      reconcileErrors: 0,
      reconcileDeleted: 0,
      reconcileRefreshes: 0,
      reconcileRefreshFailures: 0,
      reconcileRefreshDeferred: 0,
      ...counters,
      metrics,
    },
    sqs: { depth: async () => ({ visible: 2 }) },
    watcherRows: async () => ({ "node-a": 4 }),
  } as unknown as LocalStack;
}

const field = (line: string, name: string) => Number(new RegExp(`${name} (\\d+)`).exec(line)?.[1]);

describe("npm start's status line", () => {
  it("sums the worker's EMF metrics and the reconciler's refresh outcomes per column", async () => {
    const line = await statusLine(
      fakeStack(
        {
          eventsIn: 12,
          rejects: 1,
          reconcileDeleted: 2,
          reconcileRefreshes: 3,
          reconcileRefreshFailures: 1,
          reconcileRefreshDeferred: 4,
        },
        { RowsDeleted: 5, RefreshOk: 7, RefreshFailed: 1, RefreshDegraded: 2, RefreshDeferred: 3 },
      ),
    );
    expect(field(line, "events in")).toBe(12);
    expect(field(line, "rows deleted")).toBe(7);
    expect(field(line, "refreshes")).toBe(10);
    expect(field(line, "refresh failures")).toBe(4);
    expect(field(line, "deferred")).toBe(7);
    expect(field(line, "rejects")).toBe(1);
    expect(line).toContain("DLQ 2");
    expect(line).toContain("watchers node-a=4");
  });

  it("shows ? when the queue or the database cannot be asked", async () => {
    const stack = fakeStack({}, {});
    const broken = {
      ...stack,
      sqs: { depth: async () => Promise.reject(new Error("down")) },
      watcherRows: async () => Promise.reject(new Error("down")),
    } as unknown as LocalStack;
    const line = await statusLine(broken);
    expect(line).toContain("DLQ ?");
    expect(line).toContain("watchers ?");
    expect(field(line, "deferred")).toBe(0);
  });
});
