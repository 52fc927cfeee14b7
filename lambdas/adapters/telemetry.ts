/**
 * Telemetry over Powertools (one pinned version, 2.36.0): structured JSON logs and EMF metrics.
 * Audit records are logged with the message `watcher.deleted` and an `audit` object, so one
 * CloudWatch Logs Insights query answers "why did this user's BLF stop?" (docs/worker.md).
 */
import type { Logger } from "@aws-lambda-powertools/logger";
import { type Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { AuditRecord, IgnoredEventRecord, MetricName, Telemetry } from "../core/ports.ts";

export const AUDIT_MESSAGE = "watcher.deleted";
export const IGNORED_MESSAGE = "event.ignored";

export function powertoolsTelemetry(logger: Logger, metrics: Metrics): Telemetry {
  return {
    count: (metric: MetricName, value = 1, dimensions?: Record<string, string>) => {
      if (value <= 0) return;
      if (!dimensions) {
        metrics.addMetric(metric, MetricUnit.Count, value);
        return;
      }
      // A metric with its own dimension (e.g. reason) goes out as its own EMF blob.
      const single = metrics.singleMetric();
      for (const [name, v] of Object.entries(dimensions)) single.addDimension(name, v);
      single.addMetric(metric, MetricUnit.Count, value);
    },
    audit: (record: AuditRecord) => logger.info(AUDIT_MESSAGE, { audit: record }),
    ignored: (record: IgnoredEventRecord) => logger.info(IGNORED_MESSAGE, { audit: record }),
    info: (message, data) => logger.info(message, data ?? {}),
    warn: (message, data) => logger.warn(message, data ?? {}),
    error: (message, data) => logger.error(message, data ?? {}),
  };
}

/** Collects everything in memory: for tests and benchmarks. */
export function memoryTelemetry() {
  const counts: Partial<Record<MetricName, number>> = {};
  /** Counts by metric and dimension values, e.g. `RefreshSkipped{reason=no-trigger}`. */
  const dimensioned: Record<string, number> = {};
  const audits: AuditRecord[] = [];
  const ignored: IgnoredEventRecord[] = [];
  const logs: { level: "info" | "warn" | "error"; message: string; data?: Record<string, unknown> }[] = [];
  const telemetry: Telemetry = {
    count: (metric, value = 1, dimensions) => {
      counts[metric] = (counts[metric] ?? 0) + value;
      if (!dimensions) return;
      const id = `${metric}{${Object.entries(dimensions)
        .map(([k, v]) => `${k}=${v}`)
        .join(",")}}`;
      dimensioned[id] = (dimensioned[id] ?? 0) + value;
    },
    audit: (record) => audits.push(record),
    ignored: (record) => ignored.push(record),
    info: (message, data) => logs.push(data ? { level: "info", message, data } : { level: "info", message }),
    warn: (message, data) => logs.push(data ? { level: "warn", message, data } : { level: "warn", message }),
    error: (message, data) =>
      logs.push(data ? { level: "error", message, data } : { level: "error", message }),
  };
  return { telemetry, counts, dimensioned, audits, ignored, logs };
}

/** JSON lines through `write` (the CLI's stderr): audit and ignored records, warnings, errors. */
export function jsonLinesTelemetry(write: (line: string) => void): Telemetry {
  const line = (level: string, message: string, data?: Record<string, unknown>) =>
    write(JSON.stringify({ level, message, ...(data ?? {}) }));
  return {
    count: () => {},
    audit: (record) => line("INFO", AUDIT_MESSAGE, { audit: record }),
    ignored: (record) => line("INFO", IGNORED_MESSAGE, { audit: record }),
    info: () => {},
    warn: (message, data) => line("WARN", message, data),
    error: (message, data) => line("ERROR", message, data),
  };
}
