// The Powertools adapter's counts: a dimensioned count (RefreshSkipped{reason}) also adds to the
// service-level total, which the alarms and the dashboard's totals read (infra/constructs/monitoring.ts).
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { describe, expect, it, vi } from "vitest";
import { powertoolsTelemetry } from "#adapters/telemetry.ts";

function recordingMetrics() {
  const metrics = new Metrics({ namespace: "KamailioWatcherCleanup", serviceName: "kwc-test" });
  const added = vi.spyOn(metrics, "addMetric").mockImplementation(() => metrics);
  const singles: { dims: Record<string, string>; metric: [string, number] | undefined }[] = [];
  vi.spyOn(metrics, "singleMetric").mockImplementation(() => {
    const one = { dims: {} as Record<string, string>, metric: undefined as [string, number] | undefined };
    singles.push(one);
    return {
      addDimension: (k: string, v: string) => {
        one.dims[k] = v;
      },
      addMetric: (name: string, _unit: unknown, value: number) => {
        one.metric = [name, value];
      },
    } as unknown as Metrics;
  });
  return { metrics, added, singles };
}

describe("powertoolsTelemetry.count", () => {
  it("a dimensioned count goes out per reason and adds to the service-level total", () => {
    const { metrics, added, singles } = recordingMetrics();
    const t = powertoolsTelemetry(new Logger({ serviceName: "kwc-test" }), metrics);
    t.count("RefreshSkipped", 3, { reason: "no-trigger" });
    expect(singles).toEqual([{ dims: { reason: "no-trigger" }, metric: ["RefreshSkipped", 3] }]);
    expect(added).toHaveBeenCalledWith("RefreshSkipped", "Count", 3);
  });

  it("control: a plain count is the total alone; a zero count emits nothing", () => {
    const { metrics, added, singles } = recordingMetrics();
    const t = powertoolsTelemetry(new Logger({ serviceName: "kwc-test" }), metrics);
    t.count("RowsDeleted", 2);
    t.count("RefreshSent", 0, { reason: "no-death-time" });
    expect(singles).toEqual([]);
    expect(added.mock.calls).toEqual([["RowsDeleted", "Count", 2]]);
  });
});
