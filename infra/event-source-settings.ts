/**
 * The worker's SQS event source as deployed: the one place these numbers live. The CDK stack
 * (infra/constructs/cleanup-worker.ts, event-queue.ts) and local mode's poller (local/stack.ts)
 * both read them, so local figures are measured with what the stack ships.
 *
 * Plain numbers, no aws-cdk-lib import: local mode loads this file without the CDK.
 * The trade-off behind each default, with figures, is in docs/deploy.md ("Latency and the event
 * source").
 */
export interface WorkerEventSourceSettings {
  /** Envelopes (SQS messages) per invocation: 1-10, or up to 10,000 with a batching window. */
  readonly batchSize: number;
  /**
   * How long Lambda keeps gathering a batch (MaximumBatchingWindowInSeconds, 0-300). 0: a batch
   * goes out as soon as the poll returns it. Any window makes a lone event wait the whole window
   * (and AWS documents up to 20 s on a quiet queue), so the default is 0.
   */
  readonly maxBatchingWindowSeconds: number;
  /** Concurrent invocations (ScalingConfig.MaximumConcurrency, 2-1000): protects JSON-RPC and the database. */
  readonly maxConcurrency: number;
  /** The worker's function timeout; the queue's visibility timeout is derived from it. */
  readonly functionTimeoutSeconds: number;
}

/** Lambda asks for a visibility timeout of at least six times the function timeout. */
export const VISIBILITY_TO_TIMEOUT_FACTOR = 6;

export const WORKER_EVENT_SOURCE: WorkerEventSourceSettings = Object.freeze({
  batchSize: 10,
  maxBatchingWindowSeconds: 0,
  maxConcurrency: 2,
  functionTimeoutSeconds: 30,
});

/** The events queue's visibility timeout for a worker timeout (Lambda's 6× rule). */
export function visibilityTimeoutSeconds(functionTimeoutSeconds: number): number {
  return functionTimeoutSeconds * VISIBILITY_TO_TIMEOUT_FACTOR;
}

/** CDK context key that sets the batching window in seconds (`-c workerBatchingWindowSeconds=2`). */
export const BATCHING_WINDOW_CONTEXT_KEY = "workerBatchingWindowSeconds";
