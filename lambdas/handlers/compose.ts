/**
 * The composition root: a parsed environment (env.ts) → AWS clients, fleet source, Kamailio
 * client, stores, DLQ and follow-up sinks, telemetry → each function's handler (functions.ts).
 * Every entry wires through here: the Lambda entry files (handlers/worker.ts, …) at load, local
 * mode (local/stack.ts) with an env object and a tee telemetry, and `kwc` (cli/main.ts).
 * Clients are built once per handler; the fleet config is re-read at most every FLEET_CONFIG_TTL_MS.
 */
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { RDSDataClient } from "@aws-sdk/client-rds-data";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SQSClient } from "@aws-sdk/client-sqs";
import { SSMClient } from "@aws-sdk/client-ssm";
import {
  cached,
  cachedSecrets,
  FLEET_CONFIG_TTL_MS,
  type FleetSource,
  loadFleetConfig,
} from "../adapters/config-source.ts";
import { DataApiWatcherStore, type WatcherStoreOptions } from "../adapters/data-api-store.ts";
import { KamailioRpcClient } from "../adapters/kamailio-rpc.ts";
import { SqsDeadLetterSink } from "../adapters/sqs-dlq.ts";
import { SqsFollowUpSink } from "../adapters/sqs-follow-up.ts";
import { jsonLinesTelemetry, powertoolsTelemetry, teeTelemetry } from "../adapters/telemetry.ts";
import type { FleetConfig } from "../core/fleet.ts";
import { createIngestAuthorizer, createIngestKeyChecker, parseIngestKeys } from "../core/ingest-auth.ts";
import type { DeletedBy, FollowUpSink, Telemetry, WatcherStore } from "../core/ports.ts";
import type { WorkerDeps } from "../core/worker.ts";
import type {
  AwsEnv,
  CleanupEnv,
  FleetEnv,
  IngestAuthorizerEnv,
  ReconcilerEnv,
  TelemetryEnv,
  WorkerEnv,
} from "./env.ts";
import {
  createCleanupHandler,
  createReconcilerHandler,
  createWorkerHandler,
  type FleetRuntime,
  type ReconcilerOptions,
} from "./functions.ts";

/**
 * An AWS SDK client's region, endpoint and credentials from the env object, exactly the variables
 * the SDK would read from process.env itself; what the object lacks is left to the SDK's defaults
 * (profiles, the Lambda role).
 */
export function awsClientConfig(env: AwsEnv, endpoint: string | undefined) {
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = env;
  const sessionToken = env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {};
  return {
    ...(env.AWS_REGION ? { region: env.AWS_REGION } : {}),
    ...(endpoint ? { endpoint } : {}),
    ...(accessKeyId && secretAccessKey
      ? { credentials: { accessKeyId, secretAccessKey, ...sessionToken } }
      : {}),
  };
}

/** With a local SQS endpoint every call goes there, not to the QueueUrl's host. */
const sqsClient = (env: AwsEnv) =>
  new SQSClient({
    ...awsClientConfig(env, env.AWS_ENDPOINT_URL_SQS),
    useQueueUrlAsEndpoint: !env.AWS_ENDPOINT_URL_SQS,
  });

const rdsDataClient = (env: AwsEnv) => new RDSDataClient(awsClientConfig(env, env.AWS_ENDPOINT_URL_RDS_DATA));

/** The fleet config (KWC_FLEET_CONFIG, or `fleetSpec` from `kwc --fleet`) and node tokens, cached. */
export function fleetSource(env: FleetEnv, fleetSpec = env.KWC_FLEET_CONFIG): FleetSource {
  const deps = {
    ssm: new SSMClient(awsClientConfig(env, env.AWS_ENDPOINT_URL_SSM)),
    secretsManager: new SecretsManagerClient(awsClientConfig(env, env.AWS_ENDPOINT_URL_SECRETS_MANAGER)),
    env: env.vars,
  };
  const load = () => {
    if (!fleetSpec) {
      throw new Error("no fleet config: set KWC_FLEET_CONFIG (file:/abs/fleet.json or ssm-path:/kwc/fleet)");
    }
    return loadFleetConfig(fleetSpec, deps);
  };
  return { loadFleet: cached(load, FLEET_CONFIG_TTL_MS), secret: cachedSecrets(deps) };
}

/** refresh.requested follow-ups to the follow-up queue, when KWC_FOLLOW_UP_QUEUE_URL is set. */
function followUpSink(env: FleetEnv, sqs = sqsClient(env)): FollowUpSink | undefined {
  if (!env.KWC_FOLLOW_UP_QUEUE_URL) return undefined;
  return new SqsFollowUpSink(sqs, env.KWC_FOLLOW_UP_QUEUE_URL, env.KWC_FOLLOW_UP_DELAY_SECONDS);
}

/**
 * The reconcile/cleanup sweep's clients (reconciler, cleanup function, `kwc`) and where its audit
 * records and metrics go: `kwc` writes them as JSON lines on stderr (its stdout is the report),
 * the functions through Powertools.
 */
export function fleetRuntime(
  env: FleetEnv & Partial<TelemetryEnv>,
  fleetSpec?: string,
  deletedBy: DeletedBy = "reconciler",
  overrides: TelemetryOverrides = {},
): FleetRuntime {
  const { loadFleet, secret } = fleetSource(env, fleetSpec);
  const followUps = followUpSink(env);
  const sink =
    deletedBy === "kwc" && !overrides.telemetry
      ? { telemetry: jsonLinesTelemetry((line) => process.stderr.write(`${line}\n`)), flush: () => {} }
      : telemetryFor(
          { POWERTOOLS_METRICS_NAMESPACE: "KamailioWatcherCleanup", LOG_LEVEL: "INFO", ...env },
          `kwc-${deletedBy}`,
          overrides,
        );
  return {
    loadFleet,
    rdsData: rdsDataClient(env),
    kamailio: new KamailioRpcClient({ token: (node) => secret(node.tokenSecret) }),
    ...(followUps ? { followUps } : {}),
    ...sink,
    deletedBy,
  };
}

export interface TelemetryOverrides {
  /** Replaces Powertools (unit tests). */
  telemetry?: Telemetry;
  /**
   * Where the log lines and metrics go instead of Powertools on stdout: one JSON line each
   * (local mode writes them to its service.log). Powertools has no output to inject.
   */
  logLines?: (line: string) => void;
  /** Gets a copy of everything the logs get (local mode counts metrics with it). */
  tee?: Telemetry;
}

/**
 * Powertools logs and EMF metrics named from the env (or, given `logLines`, the same calls as JSON
 * lines through it); `flush` publishes the stored metrics.
 */
export function telemetryFor(
  env: TelemetryEnv,
  defaultService: string,
  overrides: TelemetryOverrides = {},
): { telemetry: Telemetry; flush: () => void } {
  if (overrides.telemetry) return { telemetry: overrides.telemetry, flush: () => {} };
  const serviceName = env.POWERTOOLS_SERVICE_NAME ?? defaultService;
  const withCopy = (t: Telemetry) => (overrides.tee ? teeTelemetry(t, overrides.tee) : t);
  if (overrides.logLines) {
    const verbose = !["WARN", "ERROR", "CRITICAL", "SILENT"].includes(env.LOG_LEVEL);
    const lines = jsonLinesTelemetry(overrides.logLines, { service: serviceName, verbose });
    return { telemetry: withCopy(lines), flush: () => {} };
  }
  const logger = new Logger({ serviceName, logLevel: env.LOG_LEVEL });
  const metrics = new Metrics({ namespace: env.POWERTOOLS_METRICS_NAMESPACE, serviceName });
  const powertools = powertoolsTelemetry(logger, metrics);
  return {
    telemetry: withCopy(powertools),
    flush: () => {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    },
  };
}

/** Store per database (the config may be re-read; the Data API client stays the same). */
export function storeCache(
  client: RDSDataClient,
  options: WatcherStoreOptions = {},
): (fleet: FleetConfig) => WatcherStore {
  const stores = new Map<string, WatcherStore>();
  return (fleet) => {
    const key = JSON.stringify(fleet.database);
    let store = stores.get(key);
    if (!store) {
      store = new DataApiWatcherStore(client, fleet.database, options);
      stores.set(key, store);
    }
    return store;
  };
}

export function workerHandlerFromEnv(
  env: WorkerEnv,
  overrides: Partial<WorkerDeps> & TelemetryOverrides = {},
) {
  const { telemetry: _replace, logLines: _lines, tee: _copy, ...ports } = overrides;
  const { loadFleet, secret } = fleetSource(env);
  const { telemetry, flush } = telemetryFor(env, "kwc-worker", overrides);
  const sqs = sqsClient(env);
  const followUps = followUpSink(env, sqs);
  return createWorkerHandler({
    fleet: loadFleet,
    storeFor: storeCache(rdsDataClient(env), {
      onScan: (table, state) =>
        telemetry.warn("no valid peer index: finding a batch's rows by a table scan (run kwc db migrate)", {
          table,
          state,
        }),
      onTraceAbsent: (reason) =>
        telemetry.warn(
          "no presentity deletion trace: on 5.6-5.8.5 every refresh owed after deletions is sent (run kwc db trace)",
          { reason },
        ),
    }),
    kamailio: new KamailioRpcClient({ token: (node) => secret(node.tokenSecret) }),
    dlq: new SqsDeadLetterSink(sqs, env.KWC_DLQ_URL),
    ...(followUps ? { followUps } : {}),
    ...(env.KWC_FOLLOW_UP_QUEUE_ARN ? { followUpQueueArn: env.KWC_FOLLOW_UP_QUEUE_ARN } : {}),
    ...ports,
    telemetry,
    flush,
  });
}

export function reconcilerHandlerFromEnv(
  env: ReconcilerEnv,
  overrides: Omit<ReconcilerOptions, "telemetry"> & TelemetryOverrides & { runtime?: FleetRuntime } = {},
) {
  const { runtime, telemetry: _replace, logLines: _lines, tee: _copy, ...options } = overrides;
  const { telemetry } = telemetryFor(env, "kwc-reconciler", overrides);
  return createReconcilerHandler(runtime ?? fleetRuntime(env, undefined, "reconciler", overrides), {
    concurrency: env.KWC_RECONCILE_CONCURRENCY,
    dryRun: env.KWC_RECONCILE_DRY_RUN,
    telemetry,
    ...options,
  });
}

export function cleanupHandlerFromEnv(
  env: CleanupEnv,
  overrides: { runtime?: FleetRuntime } & TelemetryOverrides = {},
) {
  return createCleanupHandler(overrides.runtime ?? fleetRuntime(env, undefined, "cleanup", overrides));
}

/** The ingest's authorizer: `x-kwc-key` against the Secrets Manager value, cached between calls. */
export function ingestAuthorizerFromEnv(env: IngestAuthorizerEnv) {
  const secrets = new SecretsManagerClient(awsClientConfig(env, env.AWS_ENDPOINT_URL_SECRETS_MANAGER));
  const loadKeys = async () => {
    const secret = await secrets.send(
      new GetSecretValueCommand({ SecretId: env.KWC_INGEST_KEYS_SECRET_ARN }),
    );
    if (!secret.SecretString) throw new Error("the ingest keys secret has no string value");
    return parseIngestKeys(secret.SecretString);
  };
  return createIngestAuthorizer(createIngestKeyChecker({ loadKeys }));
}
