import { Duration } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { type FleetFunctionProps, fleetFunction } from "./service-function.ts";

export interface OnDemandCleanupProps extends FleetFunctionProps {
  /** Long sweeps (a whole node, expired rows) page through the table. @default Duration.minutes(5) */
  readonly timeout?: Duration;
  /** @default 1024 */
  readonly memorySize?: number;
  /**
   * The events queue: refreshes owed after a cleanup's deletes that hit a transient fault are
   * posted there as refresh.requested (sqs:SendMessage only). @default - none: they stay "failed"
   */
  readonly followUpQueue?: sqs.IQueue;
}

/**
 * On-demand cleanup by direct invoke (the `kwc --remote` CLI, scripts), with a managed policy that
 * operators attach to whoever may call it: lambda:InvokeFunction on this function only.
 */
export class OnDemandCleanup extends Construct {
  readonly function: lambda.IFunction;
  /** Attach to operator roles/users/groups that may run cleanups. */
  readonly invokePolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: OnDemandCleanupProps) {
    super(scope, id);
    const fn = fleetFunction(this, "Cleanup", {
      ...props,
      description:
        "kamailio-watcher-cleanup: on-demand cleanup (presentity, watcher, node, dialog, expired, reconcile)",
      timeout: props.timeout ?? Duration.minutes(5),
      memorySize: props.memorySize ?? 1024,
      ...(props.followUpQueue
        ? { environment: { KWC_FOLLOW_UP_QUEUE_URL: props.followUpQueue.queueUrl } }
        : {}),
    }).function;
    this.function = fn;
    props.followUpQueue?.grant(fn, "sqs:SendMessage");
    this.invokePolicy = new iam.ManagedPolicy(this, "InvokePolicy", {
      description:
        "Run kamailio-watcher-cleanup on-demand cleanups (lambda:InvokeFunction on that function only)",
      statements: [
        new iam.PolicyStatement({ actions: ["lambda:InvokeFunction"], resources: [fn.functionArn] }),
      ],
    });
  }
}
