// The composition root's telemetry sinks: given `logLines` (local mode's service.log), every log
// call and metric count is one JSON line through it, named for the handler, and the `tee` copy
// still counts; nothing goes through Powertools (so nothing needs stdout patched). LOG_LEVEL WARN
// keeps info lines and metric lines out, as it keeps them out of Powertools.
import { describe, expect, it } from "vitest";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import { telemetryFor } from "#handlers/compose.ts";

const env = { POWERTOOLS_METRICS_NAMESPACE: "KamailioWatcherCleanup", LOG_LEVEL: "INFO" as const };

function linesOf(level: "INFO" | "WARN") {
  const lines: string[] = [];
  const copy = memoryTelemetry();
  const { telemetry } = telemetryFor({ ...env, LOG_LEVEL: level }, "kwc-worker", {
    logLines: (line) => lines.push(line),
    tee: copy.telemetry,
  });
  telemetry.count("RowsDeleted", 2);
  telemetry.info("batch done", { records: 3 });
  telemetry.warn("no valid peer index", { table: "aw_a" });
  return { parsed: lines.map((l) => JSON.parse(l) as Record<string, unknown>), copy };
}

describe("telemetryFor with logLines", () => {
  it("writes each log call and metric count as a JSON line named for the handler; the tee still counts", () => {
    const { parsed, copy } = linesOf("INFO");
    expect(parsed).toEqual([
      expect.objectContaining({ level: "INFO", message: "metric", metric: "RowsDeleted", value: 2 }),
      expect.objectContaining({ level: "INFO", message: "batch done", records: 3 }),
      expect.objectContaining({ level: "WARN", message: "no valid peer index", table: "aw_a" }),
    ]);
    for (const line of parsed) {
      expect(line.service).toBe("kwc-worker");
      expect(Date.parse(String(line.timestamp))).not.toBeNaN();
    }
    expect(copy.counts.RowsDeleted).toBe(2);
  });

  it("LOG_LEVEL WARN: only the warning is written (control for the info and metric lines)", () => {
    const { parsed, copy } = linesOf("WARN");
    expect(parsed.map((l) => l.message)).toEqual(["no valid peer index"]);
    expect(copy.counts.RowsDeleted).toBe(2);
  });
});
