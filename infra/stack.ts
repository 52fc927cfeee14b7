import { fileURLToPath } from "node:url";
import { CfnOutput, type Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { acknowledge } from "./constructs/acknowledge.ts";
import {
  CleanupWorker,
  defaultTimeout as defaultWorkerTimeout,
  validateCleanupWorkerProps,
} from "./constructs/cleanup-worker.ts";
import {
  type CreatedDatabaseProps,
  Database,
  type ImportedDatabaseProps,
  type RuntimeUserProps,
  validateDatabaseProps,
} from "./constructs/database.ts";
import { EventIngest, type IngestKind, validateEventIngestProps } from "./constructs/event-ingest.ts";
import { EventQueue, validateEventQueueProps } from "./constructs/event-queue.ts";
import { FleetConfig, type FleetNodeInput, validateFleetConfigProps } from "./constructs/fleet-config.ts";
import { Monitoring, validateMonitoringProps } from "./constructs/monitoring.ts";
import { Network, type NetworkProps, validateNetworkProps } from "./constructs/network.ts";
import { OnDemandCleanup } from "./constructs/on-demand-cleanup.ts";
import { acknowledgeGuardFindings } from "./constructs/policy-acknowledgements.ts";
import { Reconciler, validateReconcilerProps } from "./constructs/reconciler.ts";
import { ProblemList } from "./constructs/validation.ts";

export type HandlerName = "worker" | "reconciler" | "cleanup" | "ingest-authorizer";

/** The Lambda entry files (owned by the handler authors; never stubbed here). */
export function handlerEntry(name: HandlerName): string {
  return fileURLToPath(new URL(`../lambdas/handlers/${name}.ts`, import.meta.url));
}

export interface KamailioWatcherCleanupStackProps extends StackProps {
  /** The Aurora cluster and the runtime user the functions run SQL as. @default { mode: "create", engine: "postgres" } (and a new runtime secret for kwc_runtime) */
  readonly database?: (ImportedDatabaseProps | CreatedDatabaseProps) & RuntimeUserProps;
  /** VPC wiring. @default - a new VPC with isolated subnets and interface endpoints */
  readonly network?: NetworkProps;
  /** @default { kind: "http-api", throttleRateLimit: 200, throttleBurstLimit: 400, authorizerCacheTtl: 5 min } */
  readonly ingest?: {
    readonly kind?: IngestKind;
    readonly throttleRateLimit?: number;
    readonly throttleBurstLimit?: number;
    readonly authorizerCacheTtl?: Duration;
    /** Import the per-node ingest keys secret (docs/security.md). @default - a new secret mapping no node */
    readonly ingestKeysSecretArn?: string;
  };
  /** @default { maxReceiveCount: 5, retentionPeriod: 4 days, deadLetterRetentionPeriod: 14 days, maxMessageSizeBytes: 256 KiB } */
  readonly queue?: {
    readonly maxReceiveCount?: number;
    readonly retentionPeriod?: Duration;
    readonly deadLetterRetentionPeriod?: Duration;
    readonly maxMessageSizeBytes?: number;
  };
  /** @default { memorySize: 512, and WORKER_EVENT_SOURCE (infra/event-source-settings.ts): timeout 30 s, batchSize 10, no batching window, maxConcurrency 2 } */
  readonly worker?: {
    readonly timeout?: Duration;
    readonly memorySize?: number;
    readonly batchSize?: number;
    readonly maxBatchingWindow?: Duration;
    readonly maxConcurrency?: number;
  };
  /** @default Duration.minutes(5) */
  readonly reconcileRate?: Duration;
  /** A sweep's time limit; at most the rate, so sweeps never overlap. @default Duration.minutes(5) */
  readonly reconcileTimeout?: Duration;
  /** @default { path: "/kwc/fleet", nodes: [], generated JSON-RPC token secret } */
  readonly fleet?: {
    readonly path?: string;
    readonly nodes?: FleetNodeInput[];
    readonly notifyFailureCodes?: number[];
    readonly rpcTokenSecretArns?: string[];
  };
  /** @default { alarmTopic: true, maxEventAge: 10 min } */
  readonly monitoring?: {
    readonly alarmTopic?: boolean;
    readonly alarmEmail?: string;
    readonly maxEventAge?: Duration;
  };
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** EMF namespace. @default "KamailioWatcherCleanup" */
  readonly metricsNamespace?: string;
  /** Override handler entry files (template tests use a fixture). @default - lambdas/handlers/<name>.ts */
  readonly handlerEntries?: Partial<Record<HandlerName, string>>;
}

/** Every problem with the props, before anything is built. */
export function validateStackProps(props: KamailioWatcherCleanupStackProps): readonly string[] {
  const problems = new ProblemList();
  const database = props.database ?? { mode: "create" };
  const network = props.network ?? {};
  const worker = props.worker ?? {};
  problems.add(validateDatabaseProps(database));
  problems.add(validateNetworkProps(network));
  problems.add(
    validateEventQueueProps({ ...props.queue, consumerTimeout: worker.timeout ?? defaultWorkerTimeout() }),
  );
  problems.add(validateCleanupWorkerProps(worker));
  problems.add(validateReconcilerProps({ rate: props.reconcileRate, timeout: props.reconcileTimeout }));
  const databaseSecrets = [
    database.mode === "import" ? database.secretArn : "",
    database.runtimeSecretArn ?? "",
  ];
  problems.add(
    validateFleetConfigProps({
      ...props.fleet,
      forbiddenTokenSecretArns: databaseSecrets.filter((arn) => arn !== ""),
    }),
  );
  problems.add(validateEventIngestProps(props.ingest ?? {}, true));
  problems.add(validateMonitoringProps(props.monitoring ?? {}));
  if (database.mode === "import" && network.importVpc === undefined) {
    problems.require(
      false,
      "an imported database belongs to an existing fleet: import the fleet's VPC too (network.importVpc), so the functions can reach Kamailio's JSON-RPC",
    );
  }
  return problems.all;
}

/**
 * kamailio-watcher-cleanup: ingest → queue → worker (→ Data API, Kamailio JSON-RPC), a scheduled
 * reconciler, an on-demand cleanup function, the fleet config, alarms and a dashboard.
 */
export class KamailioWatcherCleanupStack extends Stack {
  readonly network: Network;
  readonly database: Database;
  readonly fleetConfig: FleetConfig;
  readonly events: EventQueue;
  /** refresh.requested from the functions to the worker; no ingest path to it. */
  readonly followUps: EventQueue;
  readonly ingest: EventIngest;
  readonly worker: CleanupWorker;
  readonly reconciler: Reconciler;
  readonly onDemandCleanup: OnDemandCleanup;
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: KamailioWatcherCleanupStackProps = {}) {
    super(scope, id, props);
    const problems = new ProblemList();
    problems.add(validateStackProps(props));
    problems.throwIfAny(`KamailioWatcherCleanupStack ${id}`);

    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const metricsNamespace = props.metricsNamespace ?? "KamailioWatcherCleanup";
    const workerTimeout = props.worker?.timeout ?? defaultWorkerTimeout();
    const entry = (name: HandlerName) => props.handlerEntries?.[name] ?? handlerEntry(name);

    this.network = new Network(this, "Network", { logRetention, ...props.network });
    const placement = {
      vpc: this.network.vpc,
      vpcSubnets: this.network.functionSubnets,
      securityGroup: this.network.functionSecurityGroup,
    };
    this.database = new Database(this, "Database", {
      ...(props.database ?? { mode: "create" }),
      logRetention,
      vpc: this.network.vpc,
      vpcSubnets: this.network.functionSubnets,
    });
    this.fleetConfig = new FleetConfig(this, "FleetConfig", {
      ...props.fleet,
      database: {
        engine: this.database.engine,
        resourceArn: this.database.clusterArn,
        // The runtime user's secret, never the admin's: the functions run SQL as that user.
        secretArn: this.database.runtimeSecret.secretArn,
        name: this.database.databaseName,
      },
      forbiddenTokenSecretArns: [this.database.secretArn, this.database.runtimeSecret.secretArn],
    });
    this.events = new EventQueue(this, "Events", { ...props.queue, consumerTimeout: workerTimeout });
    this.followUps = new EventQueue(this, "FollowUps", { ...props.queue, consumerTimeout: workerTimeout });
    this.ingest = new EventIngest(this, "Ingest", {
      ...props.ingest,
      queue: this.events.queue,
      authorizerEntry: entry("ingest-authorizer"),
      vpc: this.network.vpc,
      vpcSubnets: this.network.functionSubnets,
      logRetention,
    });
    const shared = { database: this.database, fleetConfig: this.fleetConfig, logRetention, metricsNamespace };
    this.worker = new CleanupWorker(this, "Worker", {
      ...props.worker,
      ...placement,
      ...shared,
      entry: entry("worker"),
      events: this.events,
      followUps: this.followUps,
      timeout: workerTimeout,
    });
    this.reconciler = new Reconciler(this, "Reconciler", {
      ...placement,
      ...shared,
      entry: entry("reconciler"),
      followUpQueue: this.followUps.queue,
      rate: props.reconcileRate,
      timeout: props.reconcileTimeout,
    });
    this.onDemandCleanup = new OnDemandCleanup(this, "OnDemandCleanup", {
      ...placement,
      ...shared,
      entry: entry("cleanup"),
      followUpQueue: this.followUps.queue,
    });
    this.monitoring = new Monitoring(this, "Monitoring", {
      ...props.monitoring,
      ingest: this.ingest,
      events: this.events,
      followUps: this.followUps,
      worker: this.worker.function,
      reconciler: this.reconciler.function,
      onDemand: this.onDemandCleanup.function,
      metricsNamespace,
    });

    acknowledgeGuardFindings(this, this.ingest, this.monitoring.alarmTopic ? [] : this.monitoring.alarms);

    new CfnOutput(this, "IngestUrl", {
      value: this.ingest.eventsUrl,
      description: "Kamailio POSTs envelopes here",
    });
    new CfnOutput(this, "IngestKeysSecretArn", {
      value: this.ingest.ingestKeysSecret.secretArn,
      description:
        'Per-node ingest keys {"<node id>": ["<key>"]}; each node\'s own key is its KWC_INGEST_KEY (docs/security.md)',
    });
    new CfnOutput(this, "DatabaseRuntimeSecretArn", {
      value: this.database.runtimeSecret.secretArn,
      description:
        "Login of the runtime database user the functions run SQL as; the DBA creates the user (docs/security.md)",
    });
    new CfnOutput(this, "EventsQueueUrl", { value: this.events.queue.queueUrl });
    new CfnOutput(this, "DeadLetterQueueArn", { value: this.events.deadLetterQueue.queueArn });
    new CfnOutput(this, "DeadLetterQueueUrl", { value: this.events.deadLetterQueue.queueUrl });
    new CfnOutput(this, "OnDemandCleanupFunction", { value: this.onDemandCleanup.function.functionName });
    new CfnOutput(this, "OperatorInvokePolicyArn", {
      value: this.onDemandCleanup.invokePolicy.managedPolicyArn,
    });
    new CfnOutput(this, "FunctionSecurityGroupId", {
      value: this.network.functionSecurityGroup.securityGroupId,
      description: "Allow this group on Kamailio's JSON-RPC port",
    });
    new CfnOutput(this, "FleetConfigPath", { value: this.fleetConfig.path });
    new CfnOutput(this, "RpcTokenSecretArn", { value: this.fleetConfig.rpcTokenSecrets[0]?.secretArn ?? "" });
    new CfnOutput(this, "DashboardName", { value: this.monitoring.dashboard.dashboardName });

    acknowledgeLambdaDefaults(this);
  }
}

/** Findings every Lambda role of this stack has, for reasons that hold for all of them. */
function acknowledgeLambdaDefaults(stack: Stack): void {
  acknowledge(
    stack,
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
    "The AWS managed basic execution policy only lets a function write its own logs; it is what Lambda documents for this.",
  );
  acknowledge(
    stack,
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
    "Functions in a VPC must create and delete their ENIs; AWS requires Resource * for those EC2 actions, and this managed policy is the documented way.",
  );
}
