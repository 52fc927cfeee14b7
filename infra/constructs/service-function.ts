import { Duration } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import type { Database } from "./database.ts";
import type { FleetConfig } from "./fleet-config.ts";

/** The runtime every function of the service uses: Node 22+ on Graviton (cheaper per GB-s). */
export const SERVICE_RUNTIME = lambda.Runtime.NODEJS_24_X;

export interface ServiceFunctionProps {
  /** Absolute path of the handler module (exports `handler`). */
  readonly entry: string;
  /** One line for the console. */
  readonly description: string;
  /** @default Duration.seconds(30) */
  readonly timeout?: Duration;
  /** @default 512 */
  readonly memorySize?: number;
  /** Environment: references only (ARNs, URLs, paths), never secret values. @default {} */
  readonly environment?: Record<string, string>;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Run inside this VPC (needed to reach Kamailio's private JSON-RPC). @default - not in a VPC */
  readonly vpc?: ec2.IVpc;
  /** @default - the VPC's private subnets when `vpc` is set */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** @default - none */
  readonly securityGroups?: ec2.ISecurityGroup[];
  /** EMF namespace for Powertools Metrics. @default "KamailioWatcherCleanup" */
  readonly metricsNamespace?: string;
  /** Powertools service name. @default "kamailio-watcher-cleanup" */
  readonly serviceName?: string;
  /** @default "INFO" */
  readonly logLevel?: string;
}

/**
 * A NodejsFunction with the service's defaults in one place: arm64, Node 24, esbuild bundle with
 * source maps (stack traces point at the TypeScript), ESM output, its own log group with a
 * retention, and the Powertools environment.
 */
export class ServiceFunction extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ServiceFunctionProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, "Logs", {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    this.function = new nodejs.NodejsFunction(this, "Function", {
      entry: props.entry,
      handler: "handler",
      description: props.description,
      runtime: SERVICE_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      timeout: props.timeout ?? Duration.seconds(30),
      memorySize: props.memorySize ?? 512,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      vpc: props.vpc,
      vpcSubnets: props.vpc ? props.vpcSubnets : undefined,
      securityGroups: props.securityGroups,
      environment: {
        NODE_OPTIONS: "--enable-source-maps",
        POWERTOOLS_SERVICE_NAME: props.serviceName ?? "kamailio-watcher-cleanup",
        POWERTOOLS_METRICS_NAMESPACE: props.metricsNamespace ?? "KamailioWatcherCleanup",
        LOG_LEVEL: props.logLevel ?? "INFO",
        ...props.environment,
      },
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: "node22",
        sourceMap: true,
        sourcesContent: false,
        minify: true,
        // ESM bundles need a require() shim for the CommonJS parts of their dependencies.
        banner:
          "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        // The SDK v3 in the runtime may lag our pinned clients; bundle ours for reproducibility.
        externalModules: [],
      },
    });
  }
}

/** What the functions that work on the fleet's rows share (worker, reconciler, on-demand cleanup). */
export interface FleetFunctionProps {
  /** Absolute path of the handler module. */
  readonly entry: string;
  readonly database: Database;
  readonly fleetConfig: FleetConfig;
  readonly vpc: ec2.IVpc;
  readonly vpcSubnets: ec2.SubnetSelection;
  readonly securityGroup: ec2.ISecurityGroup;
  /** @default "KamailioWatcherCleanup" */
  readonly metricsNamespace?: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * A ServiceFunction that works on the fleet: in the VPC (Kamailio's JSON-RPC is private), with
 * KWC_FLEET_CONFIG set, allowed the Data API on the database and to read the fleet config and its
 * JSON-RPC tokens.
 */
export function fleetFunction(
  scope: Construct,
  id: string,
  props: FleetFunctionProps &
    Pick<ServiceFunctionProps, "description" | "timeout" | "memorySize" | "environment">,
): ServiceFunction {
  const fn = new ServiceFunction(scope, id, {
    entry: props.entry,
    description: props.description,
    timeout: props.timeout,
    memorySize: props.memorySize,
    logRetention: props.logRetention,
    metricsNamespace: props.metricsNamespace,
    vpc: props.vpc,
    vpcSubnets: props.vpcSubnets,
    securityGroups: [props.securityGroup],
    environment: { KWC_FLEET_CONFIG: props.fleetConfig.reference, ...props.environment },
  });
  props.database.grantDataApiAccess(fn.function);
  props.fleetConfig.grantRead(fn.function);
  return fn;
}
