import { CfnGuardValidator } from "@cdklabs/cdk-validator-cfnguard";
import { App, type AppProps, Duration, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { BATCHING_WINDOW_CONTEXT_KEY } from "./event-source-settings.ts";
import { KamailioWatcherCleanupStack, type KamailioWatcherCleanupStackProps } from "./stack.ts";

/**
 * Stack props from CDK context (`cdk.json` or `-c key=value`), so `cdk synth` needs no code change
 * and no AWS lookups. Values from `-c` arrive as strings; cdk.json may hold numbers/booleans.
 */
export type ContextReader = (key: string) => unknown;

const text = (read: ContextReader, key: string): string | undefined => {
  const value = read(key);
  return value === undefined || value === null || value === "" ? undefined : String(value);
};
const list = (read: ContextReader, key: string): string[] | undefined => {
  const value = read(key);
  if (Array.isArray(value)) return value.map(String);
  return text(read, key)
    ?.split(",")
    .map((item) => item.trim())
    .filter(Boolean);
};
const num = (read: ContextReader, key: string): number | undefined => {
  const value = text(read, key);
  return value === undefined ? undefined : Number(value);
};
const bool = (read: ContextReader, key: string): boolean | undefined => {
  const value = text(read, key);
  return value === undefined ? undefined : value === "true";
};

export function stackPropsFromContext(read: ContextReader): KamailioWatcherCleanupStackProps {
  const account = text(read, "account");
  const region = text(read, "region");
  const engine = text(read, "databaseEngine") as "postgres" | "mysql" | undefined;
  const clusterArn = text(read, "databaseClusterArn");
  const vpcId = text(read, "vpcId");
  const minutes = (key: string) => {
    const value = num(read, key);
    return value === undefined ? undefined : Duration.minutes(value);
  };
  const seconds = (key: string) => {
    const value = num(read, key);
    return value === undefined ? undefined : Duration.seconds(value);
  };
  return {
    env: account || region ? { account, region } : undefined,
    description: "kamailio-watcher-cleanup: removes stale Kamailio presence watchers",
    database: {
      ...(clusterArn
        ? {
            mode: "import" as const,
            engine: engine ?? "postgres",
            clusterArn,
            secretArn: text(read, "databaseSecretArn") ?? "",
            databaseName: text(read, "databaseName"),
          }
        : { mode: "create" as const, engine, databaseName: text(read, "databaseName") }),
      runtimeSecretArn: text(read, "databaseRuntimeSecretArn"),
      runtimeUsername: text(read, "databaseRuntimeUsername"),
    },
    network: {
      importVpc: vpcId
        ? {
            vpcId,
            vpcCidrBlock: text(read, "vpcCidr") ?? "",
            availabilityZones: list(read, "availabilityZones") ?? [],
            privateSubnetIds: list(read, "privateSubnetIds") ?? [],
            privateSubnetRouteTableIds: list(read, "privateSubnetRouteTableIds"),
            natAvailable: bool(read, "natAvailable"),
          }
        : undefined,
      kamailioRpcPorts: list(read, "kamailioRpcPorts")?.map(Number),
    },
    ingest: {
      kind: text(read, "ingest") as "http-api" | "private-rest-api" | undefined,
      throttleRateLimit: num(read, "ingestRateLimit"),
      throttleBurstLimit: num(read, "ingestBurstLimit"),
      ingestKeysSecretArn: text(read, "ingestKeysSecretArn"),
    },
    queue: { maxReceiveCount: num(read, "maxReceiveCount") },
    worker: {
      maxConcurrency: num(read, "workerMaxConcurrency"),
      batchSize: num(read, "workerBatchSize"),
      maxBatchingWindow: seconds(BATCHING_WINDOW_CONTEXT_KEY),
    },
    reconcileRate: minutes("reconcileRateMinutes"),
    fleet: { path: text(read, "fleetConfigPath") },
    monitoring: { alarmEmail: text(read, "alarmEmail"), alarmTopic: bool(read, "alarmTopic") },
  };
}

/**
 * The app `cdk.json` runs: one stack, configured from context. Tests call it with their own context.
 * Two policy checks run on every synth and fail it on an unacknowledged finding: cdk-nag's
 * AwsSolutions pack (`-c nag=false` skips it) and cfn-guard with the AWS Control Tower rules
 * (`-c guard=false` skips it; acknowledgements in constructs/policy-acknowledgements.ts).
 */
export function createApp(props: AppProps = {}): { app: App; stack: KamailioWatcherCleanupStack } {
  const app = new App(props);
  if (String(app.node.tryGetContext("nag") ?? "true") !== "false") {
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  }
  if (String(app.node.tryGetContext("guard") ?? "true") !== "false") {
    Validations.of(app).addPlugins(new CfnGuardValidator({ controlTowerRulesEnabled: true }));
  }
  const stackName = String(app.node.tryGetContext("stackName") ?? "KamailioWatcherCleanup");
  const stack = new KamailioWatcherCleanupStack(
    app,
    stackName,
    stackPropsFromContext((key) => app.node.tryGetContext(key)),
  );
  return { app, stack };
}
