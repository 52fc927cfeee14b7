import { Duration } from "aws-cdk-lib";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sources from "aws-cdk-lib/aws-lambda-event-sources";
import { Construct } from "constructs";
import { VISIBILITY_TO_TIMEOUT_FACTOR, WORKER_EVENT_SOURCE } from "../event-source-settings.ts";
import type { EventQueue } from "./event-queue.ts";
import { type FleetFunctionProps, fleetFunction, type ServiceFunction } from "./service-function.ts";
import { isWholeNumberIn, ProblemList } from "./validation.ts";

export interface CleanupWorkerProps extends FleetFunctionProps {
  readonly events: EventQueue;
  /**
   * The follow-up queue: refresh.requested the functions post to themselves. Only the functions may
   * send to it (the ingest has no path to it); the worker consumes it with the same settings and
   * accepts refresh.requested only from it.
   */
  readonly followUps: EventQueue;
  /** Must match the timeout the queue's visibility timeout was derived from. @default WORKER_EVENT_SOURCE.functionTimeoutSeconds (30 s) */
  readonly timeout?: Duration;
  /** @default 512 */
  readonly memorySize?: number;
  /** Messages (envelopes) per invocation. @default WORKER_EVENT_SOURCE.batchSize (10) */
  readonly batchSize?: number;
  /**
   * How long Lambda gathers a batch. A window lets a mass disconnect share Data API calls, but a
   * lone event waits all of it (docs/deploy.md has the trade-off).
   * @default WORKER_EVENT_SOURCE.maxBatchingWindowSeconds (0: none)
   */
  readonly maxBatchingWindow?: Duration;
  /** Concurrent invocations (2-1000): protects Kamailio's JSON-RPC and the database. @default WORKER_EVENT_SOURCE.maxConcurrency (2) */
  readonly maxConcurrency?: number;
}

/** The worker's timeout when none is given. */
export function defaultTimeout(): Duration {
  return Duration.seconds(WORKER_EVENT_SOURCE.functionTimeoutSeconds);
}

export function validateCleanupWorkerProps(
  props: Pick<
    CleanupWorkerProps,
    "timeout" | "batchSize" | "maxBatchingWindow" | "maxConcurrency" | "memorySize"
  >,
  queueVisibilityTimeout?: Duration,
): readonly string[] {
  const problems = new ProblemList();
  const timeout = (props.timeout ?? defaultTimeout()).toSeconds();
  problems.require(isWholeNumberIn(timeout, 10, 900), `worker timeout must be 10-900 s (got ${timeout})`);
  if (queueVisibilityTimeout) {
    problems.require(
      queueVisibilityTimeout.toSeconds() >= timeout * VISIBILITY_TO_TIMEOUT_FACTOR,
      `the queue's visibility timeout (${queueVisibilityTimeout.toSeconds()} s) must be at least ${VISIBILITY_TO_TIMEOUT_FACTOR}× the worker timeout (${timeout} s)`,
    );
  }
  const batchSize = props.batchSize ?? WORKER_EVENT_SOURCE.batchSize;
  const window = (
    props.maxBatchingWindow ?? Duration.seconds(WORKER_EVENT_SOURCE.maxBatchingWindowSeconds)
  ).toSeconds();
  problems.require(isWholeNumberIn(window, 0, 300), `maxBatchingWindow must be 0-300 s (got ${window})`);
  problems.require(
    isWholeNumberIn(batchSize, 1, window > 0 ? 10_000 : 10),
    `batchSize must be 1-10, or up to 10000 with a batching window (got ${batchSize})`,
  );
  const concurrency = props.maxConcurrency ?? WORKER_EVENT_SOURCE.maxConcurrency;
  problems.require(
    isWholeNumberIn(concurrency, 2, 1000),
    `maxConcurrency must be 2-1000 (got ${concurrency})`,
  );
  const memory = props.memorySize ?? 512;
  problems.require(isWholeNumberIn(memory, 128, 10_240), `memorySize must be 128-10240 MB (got ${memory})`);
  return problems.all;
}

/**
 * The worker: consumes event envelopes in batches with partial-batch responses, deletes stale
 * watcher rows through the Data API, refreshes presentities on Kamailio, and sends invalid events
 * to the DLQ itself; it also posts its own refresh.requested follow-ups to the follow-up queue,
 * which it consumes too (so it may send to the events DLQ and the follow-up queue, and only there).
 */
export class CleanupWorker extends Construct {
  readonly function: lambda.IFunction;
  readonly serviceFunction: ServiceFunction;
  readonly eventSource: sources.SqsEventSource;
  readonly followUpSource: sources.SqsEventSource;

  constructor(scope: Construct, id: string, props: CleanupWorkerProps) {
    super(scope, id);
    const problems = new ProblemList();
    problems.add(validateCleanupWorkerProps(props, props.events.visibilityTimeout));
    problems.throwIfAny(`CleanupWorker ${this.node.path}`);

    this.serviceFunction = fleetFunction(this, "Worker", {
      ...props,
      description: "kamailio-watcher-cleanup: cleans stale watchers on Kamailio events",
      timeout: props.timeout ?? defaultTimeout(),
      environment: {
        KWC_DLQ_URL: props.events.deadLetterQueue.queueUrl,
        // refresh.requested follow-ups when a refresh after deletions hits a transient fault, and
        // which records come from there (the only place refresh.requested is accepted from).
        KWC_FOLLOW_UP_QUEUE_URL: props.followUps.queue.queueUrl,
        KWC_FOLLOW_UP_QUEUE_ARN: props.followUps.queue.queueArn,
      },
    });
    const fn = this.serviceFunction.function;
    this.function = fn;
    // No window (the default) leaves MaximumBatchingWindowInSeconds out of the template.
    const window = props.maxBatchingWindow ?? Duration.seconds(WORKER_EVENT_SOURCE.maxBatchingWindowSeconds);
    this.eventSource = new sources.SqsEventSource(props.events.queue, {
      batchSize: props.batchSize ?? WORKER_EVENT_SOURCE.batchSize,
      ...(window.toSeconds() > 0 && { maxBatchingWindow: window }),
      reportBatchItemFailures: true,
      maxConcurrency: props.maxConcurrency ?? WORKER_EVENT_SOURCE.maxConcurrency,
    });
    fn.addEventSource(this.eventSource);
    this.followUpSource = new sources.SqsEventSource(props.followUps.queue, {
      batchSize: props.batchSize ?? WORKER_EVENT_SOURCE.batchSize,
      ...(window.toSeconds() > 0 && { maxBatchingWindow: window }),
      reportBatchItemFailures: true,
      maxConcurrency: props.maxConcurrency ?? WORKER_EVENT_SOURCE.maxConcurrency,
    });
    fn.addEventSource(this.followUpSource);
    props.events.deadLetterQueue.grantSendMessages(fn);
    props.followUps.queue.grant(fn, "sqs:SendMessage");
  }
}
