import { Duration } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import type { Database } from "./database.ts";
import type { FleetConfig } from "./fleet-config.ts";
import { ServiceFunction } from "./service-function.ts";

export interface OnDemandCleanupProps {
  /** Absolute path of lambdas/handlers/cleanup.ts. */
  readonly entry: string;
  readonly database: Database;
  readonly fleetConfig: FleetConfig;
  readonly vpc: ec2.IVpc;
  readonly vpcSubnets: ec2.SubnetSelection;
  readonly securityGroup: ec2.ISecurityGroup;
  /** Long sweeps (a whole node, expired rows) page through the table. @default Duration.minutes(5) */
  readonly timeout?: Duration;
  /** @default 1024 */
  readonly memorySize?: number;
  /** @default "KamailioWatcherCleanup" */
  readonly metricsNamespace?: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
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
    const fn = new ServiceFunction(this, "Cleanup", {
      entry: props.entry,
      description:
        "kamailio-watcher-cleanup: on-demand cleanup (presentity, watcher, node, dialog, expired, reconcile)",
      timeout: props.timeout ?? Duration.minutes(5),
      memorySize: props.memorySize ?? 1024,
      logRetention: props.logRetention,
      metricsNamespace: props.metricsNamespace,
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: [props.securityGroup],
      environment: { KWC_FLEET_CONFIG: props.fleetConfig.reference },
    }).function;
    this.function = fn;
    props.database.grantDataApiAccess(fn);
    props.fleetConfig.grantRead(fn);
    this.invokePolicy = new iam.ManagedPolicy(this, "InvokePolicy", {
      description:
        "Run kamailio-watcher-cleanup on-demand cleanups (lambda:InvokeFunction on that function only)",
      statements: [
        new iam.PolicyStatement({ actions: ["lambda:InvokeFunction"], resources: [fn.functionArn] }),
      ],
    });
  }
}
