/**
 * `npm start`'s live status line. The worker's figures are the metrics its handler counts (summed
 * by local/stack.ts from a copy of the handler's telemetry), by their
 * exact names (lambdas/core/ports.ts MetricName); the reconciler's come from its reports.
 */
import type { MetricName } from "#core/ports.ts";
import type { LocalStack } from "./stack.ts";

const metric = (stack: LocalStack, name: MetricName) => stack.counters.metrics[name] ?? 0;

export async function statusLine(stack: LocalStack): Promise<string> {
  const { counters } = stack;
  const dlq = await stack.sqs.depth("dlq").catch(() => undefined);
  const rows = await stack.watcherRows().catch(() => undefined);
  const watchers = rows
    ? Object.entries(rows)
        .map(([n, c]) => `${n}=${c}`)
        .join(" ")
    : "?";
  return [
    `events in ${counters.eventsIn}`,
    `rows deleted ${metric(stack, "RowsDeleted") + counters.reconcileDeleted}`,
    `refreshes ${metric(stack, "RefreshOk") + counters.reconcileRefreshes}`,
    `refresh failures ${metric(stack, "RefreshFailed") + metric(stack, "RefreshDegraded") + counters.reconcileRefreshFailures}`,
    `deferred ${metric(stack, "RefreshDeferred") + counters.reconcileRefreshDeferred}`,
    `rejects ${counters.rejects}`,
    `DLQ ${dlq ? dlq.visible : "?"}`,
    `watchers ${watchers}`,
    `reconciles ${counters.reconcileRuns}`,
  ].join(" | ");
}
