/**
 * The worker's use case, as the steps docs/worker.md lists. One SQS batch:
 *   1. intake: parse each event alone (rejections → DLQ); stale or unguardable events are ignored
 *   2. plan per node (pure)
 *   3. per node: boot admission, gate, rows first, liveness strictly after, guarded delete
 *   4. fan-out of presence changes to the other nodes watching them
 *   5. one refresh per (node, presentity, event)
 *   6. follow-ups for refreshes owed after deletions
 *   7. DLQ, then the ids of the records to retry
 * I/O only through the ports; the handler (lambdas/handlers/worker.ts) wires the adapters. Every
 * deletion goes through the kernel (kernel/guard.ts, kernel/delete-guarded.ts).
 */
import { clockOf } from "./clock.ts";
import { NodeFactsCache } from "./kernel/node-facts.ts";
import { NodeBackOff } from "./node-back-off.ts";
import { planBatch } from "./plan.ts";
import { forEachBounded } from "./pool.ts";
import { RefreshGate } from "./refresh-gate.ts";
import { cleanNode } from "./worker/clean-node.ts";
import type { BatchContext } from "./worker/context.ts";
import { fanOut } from "./worker/fan-out.ts";
import { PendingFollowUps } from "./worker/follow-ups.ts";
import { intake } from "./worker/intake.ts";
import { BatchLedger } from "./worker/ledger.ts";
import { refreshAll } from "./worker/refresh-all.ts";
import { RefreshSet } from "./worker/refresh-set.ts";
import {
  type BatchOptions,
  type BatchResult,
  DEFAULT_CONCURRENCY,
  type InputRecord,
  type WorkerDeps,
} from "./worker/types.ts";

export type { BatchOptions, BatchResult, InputRecord, WorkerDeps } from "./worker/types.ts";

/** Creates the batch processor; keeps per-instance state (node status, unsent follow-ups) between batches. */
export function createWorker(deps: WorkerDeps) {
  const clock = clockOf(deps.now);
  const facts = new NodeFactsCache(deps.kamailio, deps.telemetry, clock, deps.statusTtlMs);
  const pending = new PendingFollowUps(deps.followUps, deps.telemetry);
  return async function processBatch(
    records: readonly InputRecord[],
    options: BatchOptions = {},
  ): Promise<BatchResult> {
    const ledger = new BatchLedger(records, deps.telemetry);
    await pending.flush(ledger); //                                       owed by an earlier batch
    const events = intake(records, ledger, clock.now(), deps.freshness); // 1.
    let fleet: BatchContext["fleet"];
    try {
      fleet = await deps.fleet();
    } catch (error) {
      deps.telemetry.error("fleet config unavailable; retrying the whole batch", { error: String(error) });
      return ledger.retryAll();
    }
    const plan = planBatch(events, fleet); //                               2.
    const unknown = (s: (typeof plan.unknownNode)[number]) =>
      `node ${JSON.stringify(s.event.node)} is not in the fleet config (redrive once it is added)`;
    for (const s of plan.unknownNode) ledger.deadLetter([s], unknown(s), "EventsUnknownNode");
    for (const { source, reason } of plan.ignored) ledger.noWork(source, reason);
    const ctx: BatchContext = {
      fleet,
      engine: fleet.database.engine,
      store: deps.storeFor(fleet),
      kamailio: deps.kamailio,
      facts,
      ledger,
      refreshes: new RefreshSet(),
      gate: new RefreshGate(deps.telemetry, clock.now),
      backOff: new NodeBackOff(deps.telemetry),
      clock,
      deadline: options.deadline ?? Number.POSITIVE_INFINITY,
      concurrency: deps.concurrency ?? DEFAULT_CONCURRENCY,
      followUps: deps.followUps,
    };
    await forEachBounded([...plan.nodes.values()], ctx.concurrency, (work) => cleanNode(ctx, work)); // 3.
    await fanOut(ctx, plan.fanout); //                                      4.
    for (const r of plan.refreshRequests.values()) ctx.refreshes.add(r.node, r.key, r.sources);
    const owed = await refreshAll(ctx); //                                  5.
    await pending.send(owed, ledger); //                                    6.
    ctx.gate.countReasons();
    ledger.result.refreshReasons = ctx.gate.reasons;
    return ledger.finish(deps.dlq); //                                      7.
  };
}
