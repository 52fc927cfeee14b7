/**
 * Scheduled reconciler Lambda (EventBridge): reconciles every node of the fleet with bounded
 * parallelism and a time budget; nodes it could not start are reported `not-reached` (the next
 * run picks them up). Logs one summary line per node; returns the report's totals.
 * Environment: KWC_FLEET_CONFIG, KWC_RECONCILE_CONCURRENCY (default 4), KWC_RECONCILE_DRY_RUN=1.
 */
import { Logger } from "@aws-lambda-powertools/logger";
import type { Context } from "aws-lambda";
import { type ReconcileRuntime, runRequest, runtimeFromEnv } from "../adapters/reconcile-runtime.ts";
import { type CleanupReport, CleanupRequestSchema } from "../core/cleanup-request.ts";

export interface ReconcilerOptions {
  concurrency?: number;
  dryRun?: boolean;
  /** Stop starting nodes this long before the function times out. */
  safetyMs?: number;
  /** Budget when there is no Lambda context (tests, local mode). */
  budgetMs?: number;
  log?: (message: string, data: Record<string, unknown>) => void;
}

export function createReconcilerHandler(runtime: ReconcileRuntime, options: ReconcilerOptions = {}) {
  return async (
    _event: unknown,
    context?: Pick<Context, "getRemainingTimeInMillis">,
  ): Promise<Pick<CleanupReport, "totals" | "durationMs" | "startedAt"> & { nodes: unknown[] }> => {
    const remaining = context?.getRemainingTimeInMillis?.() ?? options.budgetMs ?? 60_000;
    const request = CleanupRequestSchema.parse({ scope: "reconcile", dryRun: options.dryRun ?? false });
    const report = await runRequest(runtime, request, {
      concurrency: options.concurrency ?? 4,
      deadline: Date.now() + remaining - (options.safetyMs ?? 10_000),
      maxListedRows: 200,
    });
    const nodes = report.nodes.map((n) => ({
      node: n.node,
      outcome: n.outcome,
      bootId: n.bootId,
      counts: n.counts,
      deleted: n.deleted,
      refreshFailures: n.refreshes.filter((r) => r.outcome === "failed").length,
      refreshDeferred: n.refreshes.filter((r) => r.outcome === "deferred").length,
      truncated: n.truncated,
      message: n.message,
      durationMs: n.durationMs,
    }));
    for (const n of nodes) options.log?.(`reconcile ${n.node}: ${n.outcome}`, n);
    return { startedAt: report.startedAt, durationMs: report.durationMs, totals: report.totals, nodes };
  };
}

const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "kwc-reconciler" });
export const handler = createReconcilerHandler(runtimeFromEnv(), {
  concurrency: Number(process.env.KWC_RECONCILE_CONCURRENCY ?? 4),
  dryRun: process.env.KWC_RECONCILE_DRY_RUN === "1",
  log: (message, data) => logger.info(message, data),
});
