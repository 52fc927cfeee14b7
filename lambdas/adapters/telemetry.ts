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
      // The total under the service dimension alone (what alarms and the dashboard's totals read)…
      metrics.addMetric(metric, MetricUnit.Count, value);
      if (!dimensions) return;
      // …and, with its own dimension (e.g. reason), as its own EMF blob.
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

export interface JsonLinesOptions {
  /** Adds `service` and `timestamp` to every line, as Powertools does. */
  service?: string;
  /** Also info lines and one `metric` line per count (default: records, warnings and errors only). */
  verbose?: boolean;
}

/**
 * JSON lines through `write`: audit and ignored records, warnings, errors. The CLI writes them to
 * stderr (its stdout is the report); local mode, `verbose`, writes what Powertools would print to a
 * file of its own, so the terminal keeps what a person reads and nothing patches stdout.
 */
export function jsonLinesTelemetry(write: (line: string) => void, options: JsonLinesOptions = {}): Telemetry {
  const { service, verbose = false } = options;
  const stamp = () => (service ? { service, timestamp: new Date().toISOString() } : {});
  const line = (level: string, message: string, data?: Record<string, unknown>) =>
    write(JSON.stringify({ level, message, ...stamp(), ...(data ?? {}) }));
  return {
    count: (metric, value = 1, dimensions) => {
      if (verbose && value > 0) line("INFO", "metric", { metric, value, ...(dimensions && { dimensions }) });
    },
    audit: (record) => line("INFO", AUDIT_MESSAGE, { audit: record }),
    ignored: (record) => line("INFO", IGNORED_MESSAGE, { audit: record }),
    info: (message, data) => {
      if (verbose) line("INFO", message, data);
    },
    warn: (message, data) => line("WARN", message, data),
    error: (message, data) => line("ERROR", message, data),
  };
}

/** Every call goes to each sink (local mode: the handlers' log lines, and the stack's own counters). */
export function teeTelemetry(...sinks: Telemetry[]): Telemetry {
  return {
    count: (metric, value, dimensions) => {
      for (const t of sinks) t.count(metric, value, dimensions);
    },
    audit: (record) => {
      for (const t of sinks) t.audit(record);
    },
    ignored: (record) => {
      for (const t of sinks) t.ignored(record);
    },
    info: (message, data) => {
      for (const t of sinks) t.info(message, data);
    },
    warn: (message, data) => {
      for (const t of sinks) t.warn(message, data);
    },
    error: (message, data) => {
      for (const t of sinks) t.error(message, data);
    },
  };
}
