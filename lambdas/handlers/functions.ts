/**
 * What each function does with its event, given its dependencies: map the event to the use case
 * in lambdas/core and its result to Lambda's answer. No environment, no clients: compose.ts builds
 * the dependencies, the entry files (handlers/worker.ts, …) call compose.ts at load.
 */
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { DataApiReconcileStore } from "../adapters/reconcile-store.ts";
import { type CleanupReport, type CleanupRequest, CleanupRequestSchema } from "../core/cleanup-request.ts";
import type { FleetConfig } from "../core/fleet.ts";
import { ingestNodeOf } from "../core/ingest-identity.ts";
import { formatIssues } from "../core/parse.ts";
import type { DeletedBy, FollowUpSink, KamailioClient, Telemetry } from "../core/ports.ts";
import { RequestError, runCleanup, type SweepHooks, type SweepOptions } from "../core/reconcile-sweep.ts";
import { type BatchOptions, type BatchResult, createWorker, type WorkerDeps } from "../core/worker.ts";

type RemainingTime = Pick<Context, "getRemainingTimeInMillis">;

/** What the sweep (reconciler, cleanup function, `kwc`) runs on; compose.ts builds it once. */
export interface FleetRuntime {
  loadFleet(): Promise<FleetConfig>;
  rdsData: RDSDataClient;
  kamailio: KamailioClient;
  followUps?: FollowUpSink;
  /** Audit records and metrics of every row the sweep deletes and every refresh (as the worker's). */
  telemetry?: Telemetry;
  /** Which path the audit records name. */
  deletedBy?: DeletedBy;
  /** Publishes the metrics one run gathered. */
  flush?: () => void;
}

export interface RunOptions extends SweepOptions {
  hooks?: SweepHooks;
}

/** The sweep's ports for one fleet config (also what `kwc nodes check` and `db create-node-table` use). */
export function sweepPorts(runtime: FleetRuntime, fleet: FleetConfig) {
  return {
    store: new DataApiReconcileStore(runtime.rdsData, fleet.database),
    kamailio: runtime.kamailio,
    engine: fleet.database.engine,
    fleet: fleet.nodes,
  };
}

/** Runs one request against the fleet; the report and the store's read statistics. */
export async function runRequest(
  runtime: FleetRuntime,
  request: CleanupRequest,
  options: RunOptions = {},
): Promise<CleanupReport & { store: DataApiReconcileStore["stats"] }> {
  const ports = sweepPorts(runtime, await runtime.loadFleet());
  const { hooks, ...sweep } = options;
  const deps = {
    ...ports,
    ...(runtime.followUps ? { followUps: runtime.followUps } : {}),
    ...(runtime.telemetry ? { telemetry: runtime.telemetry } : {}),
    ...(runtime.deletedBy ? { deletedBy: runtime.deletedBy } : {}),
    ...(hooks ? { hooks } : {}),
  };
  try {
    return { ...(await runCleanup(deps, request, sweep)), store: ports.store.stats };
  } finally {
    runtime.flush?.();
  }
}

/** Maps a batch result to Lambda's partial-batch answer: exactly the records to retry. */
export function toBatchResponse(result: Pick<BatchResult, "failedMessageIds">): SQSBatchResponse {
  return { batchItemFailures: result.failedMessageIds.map((itemIdentifier) => ({ itemIdentifier })) };
}

/** Worker: SQS batch of ingest messages → createWorker → SQSBatchResponse (reportBatchItemFailures). */
/** The worker's ports, the metrics flush, and the follow-up queue's ARN (the only source of refresh.requested). */
type WorkerHandlerDeps = WorkerDeps & { flush?: () => void; followUpQueueArn?: string | undefined };

export function createWorkerHandler(deps: WorkerHandlerDeps) {
  const processBatch = createWorker(deps);
  const originOf = (arn: string | undefined) =>
    deps.followUpQueueArn && arn === deps.followUpQueueArn ? ("follow-ups" as const) : ("events" as const);
  return async (event: SQSEvent, context?: RemainingTime): Promise<SQSBatchResponse> => {
    try {
      const result = await processBatch(
        event.Records.map((r) => ({
          messageId: r.messageId,
          body: r.body,
          ingestNode: ingestNodeOf(r.messageAttributes),
          origin: originOf(r.eventSourceARN),
        })),
        workerBudget(context, deps.now ?? Date.now),
      );
      return toBatchResponse(result);
    } finally {
      deps.flush?.();
    }
  };
}

/**
 * The worker stops starting work this long before its function timeout (at most a third of the
 * time it has): the refreshes, follow-ups and DLQ sends come after the last slice. A slice of 100
 * dead BLF tabs is 10,000 rows, read and deleted at about 2,000 rows a second through the local
 * Data API in bench/mass-disconnect.ts (a rough figure, not timed per slice); the slices themselves
 * are paced by the longest one so far (worker/clean-node.ts).
 */
export const WORKER_SAFETY_MS = 10_000;

function workerBudget(context: RemainingTime | undefined, now: () => number): BatchOptions {
  const remaining = context?.getRemainingTimeInMillis?.();
  if (remaining === undefined) return {};
  return { deadline: now() + remaining - Math.min(WORKER_SAFETY_MS, remaining / 3) };
}

/** The cleanup function's answer (the invoke contract `kwc --remote` reads). */
export type CleanupResponse =
  | { ok: true; report: CleanupReport }
  | { ok: false; error: { type: "BadRequest" | "Failed"; message: string } };

/** Rows listed per node in a Lambda answer (a synchronous response is limited to 6 MB). */
export const MAX_LISTED_ROWS = 2000;
/** Stop starting work this long before the function's own timeout. */
const CLEANUP_SAFETY_MS = 5000;

/**
 * On-demand cleanup (direct invoke): the event is a CleanupRequest; an invalid one gets a
 * readable BadRequest, never a stack.
 */
export function createCleanupHandler(runtime: FleetRuntime) {
  return async (event: unknown, context?: RemainingTime): Promise<CleanupResponse> => {
    const parsed = CleanupRequestSchema.safeParse(event);
    if (!parsed.success) {
      const message = `invalid request: ${formatIssues(parsed.error)}`;
      return { ok: false, error: { type: "BadRequest", message } };
    }
    const remaining = context?.getRemainingTimeInMillis?.();
    try {
      const { store: _stats, ...report } = await runRequest(runtime, parsed.data, {
        maxListedRows: MAX_LISTED_ROWS,
        ...(remaining ? { deadline: Date.now() + remaining - CLEANUP_SAFETY_MS } : {}),
      });
      return { ok: true, report };
    } catch (error) {
      const type = error instanceof RequestError ? "BadRequest" : "Failed";
      return { ok: false, error: { type, message: (error as Error).message ?? String(error) } };
    }
  };
}

export interface ReconcilerOptions {
  concurrency?: number;
  dryRun?: boolean;
  /** Stop starting nodes this long before the function times out. */
  safetyMs?: number;
  /** Budget when there is no Lambda context (tests, local mode). */
  budgetMs?: number;
  /** Gets one `reconcile <node>: <outcome>` line per node. */
  telemetry?: Pick<Telemetry, "info">;
}

/** One node's line in the reconciler's answer and log (no Powertools-reserved key such as `message`). */
function nodeSummary(n: CleanupReport["nodes"][number]) {
  return {
    node: n.node,
    outcome: n.outcome,
    bootId: n.bootId,
    counts: n.counts,
    deleted: n.deleted,
    refreshFailures: n.refreshes.filter((r) => r.outcome === "failed").length,
    refreshDeferred: n.refreshes.filter((r) => r.outcome === "deferred").length,
    truncated: n.truncated,
    reason: n.message,
    durationMs: n.durationMs,
  };
}

/** Scheduled reconciler: every node, bounded parallelism, a time budget; one summary line per node. */
export function createReconcilerHandler(runtime: FleetRuntime, options: ReconcilerOptions = {}) {
  return async (_event: unknown, context?: RemainingTime) => {
    const remaining = context?.getRemainingTimeInMillis?.() ?? options.budgetMs ?? 60_000;
    const request = CleanupRequestSchema.parse({ scope: "reconcile", dryRun: options.dryRun ?? false });
    const report = await runRequest(runtime, request, {
      concurrency: options.concurrency ?? 4,
      deadline: Date.now() + remaining - (options.safetyMs ?? 10_000),
      maxListedRows: 200,
    });
    const nodes = report.nodes.map(nodeSummary);
    for (const n of nodes) options.telemetry?.info(`reconcile ${n.node}: ${n.outcome}`, n);
    return { startedAt: report.startedAt, durationMs: report.durationMs, totals: report.totals, nodes };
  };
}
