import { Duration } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { type FleetFunctionProps, fleetFunction } from "./service-function.ts";
import { isWholeNumberIn, ProblemList } from "./validation.ts";

export interface ReconcilerProps extends FleetFunctionProps {
  /** How often every node's rows are compared with its live connections. @default Duration.minutes(5) */
  readonly rate?: Duration;
  /** A sweep reads rows and core.tcp_list of every node. @default Duration.minutes(5) */
  readonly timeout?: Duration;
  /** @default 1024 */
  readonly memorySize?: number;
  /**
   * The events queue: refreshes owed after a sweep's deletes that hit a transient fault are
   * posted there as refresh.requested (sqs:SendMessage only). @default - none: they stay "failed"
   */
  readonly followUpQueue?: sqs.IQueue;
}

export function validateReconcilerProps(props: Pick<ReconcilerProps, "rate" | "timeout">): readonly string[] {
  const problems = new ProblemList();
  const rate = (props.rate ?? Duration.minutes(5)).toSeconds();
  const timeout = (props.timeout ?? Duration.minutes(5)).toSeconds();
  problems.require(
    rate >= 60 && rate % 60 === 0,
    `reconcile rate must be whole minutes, at least 1 (got ${rate} s)`,
  );
  problems.require(isWholeNumberIn(timeout, 10, 900), `reconciler timeout must be 10-900 s (got ${timeout})`);
  problems.require(
    timeout <= rate,
    `reconciler timeout (${timeout} s) must not exceed the reconcile rate (${rate} s): sweeps would overlap on the same nodes`,
  );
  return problems.all;
}

/**
 * The scheduled reconciler: per node, rows first, then core.tcp_list, and delete rows whose peer
 * is gone. It catches what the event path misses (lost events, #3950, evicted mqueue items).
 */
export class Reconciler extends Construct {
  readonly function: lambda.IFunction;
  readonly schedule: events.Rule;

  constructor(scope: Construct, id: string, props: ReconcilerProps) {
    super(scope, id);
    const problems = new ProblemList();
    problems.add(validateReconcilerProps(props));
    problems.throwIfAny(`Reconciler ${this.node.path}`);

    const fn = fleetFunction(this, "Reconciler", {
      ...props,
      description: "kamailio-watcher-cleanup: periodic reconcile of watcher rows against live connections",
      timeout: props.timeout ?? Duration.minutes(5),
      memorySize: props.memorySize ?? 1024,
      ...(props.followUpQueue
        ? { environment: { KWC_FOLLOW_UP_QUEUE_URL: props.followUpQueue.queueUrl } }
        : {}),
    }).function;
    this.function = fn;
    props.followUpQueue?.grant(fn, "sqs:SendMessage");
    this.schedule = new events.Rule(this, "Schedule", {
      description: "kamailio-watcher-cleanup: reconcile sweep",
      schedule: events.Schedule.rate(props.rate ?? Duration.minutes(5)),
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 0 })],
    });
  }
}
