// The opt-in pipeline trace (local/trace.ts): nothing is recorded unless KWC_TRACE=1 was set when
// the module loaded; with it on, marks carry the stage, its detail and a sub-ms wall-clock time.
import { afterEach, describe, expect, it, vi } from "vitest";

afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
});

async function load(trace: string | undefined) {
  vi.resetModules();
  if (trace === undefined) vi.stubEnv("KWC_TRACE", "");
  else vi.stubEnv("KWC_TRACE", trace);
  return import("../../../local/trace.ts");
}

describe("pipeline trace", () => {
  it("records nothing when off (the default)", async () => {
    const trace = await load(undefined);
    expect(trace.TRACE_ENABLED).toBe(false);
    trace.mark("ingest received");
    trace.mark("data api call", "DELETE");
    expect(trace.takeMarks()).toEqual([]);
  });

  it("records each mark in order when KWC_TRACE=1 (control), and takeMarks() empties the list", async () => {
    const trace = await load("1");
    expect(trace.TRACE_ENABLED).toBe(true);
    const before = Date.now();
    trace.mark("ingest received");
    trace.mark("data api call", "DELETE");
    const marks = trace.takeMarks();
    expect(marks.map((m) => [m.stage, m.detail])).toEqual([
      ["ingest received", undefined],
      ["data api call", "DELETE"],
    ]);
    expect(marks[0]?.at).toBeGreaterThanOrEqual(before - 1);
    expect(marks[1]?.at).toBeGreaterThanOrEqual(marks[0]?.at ?? Number.POSITIVE_INFINITY);
    expect(trace.takeMarks()).toEqual([]);
  });
});
