/**
 * The local pipeline, in one process: Kamailio (shipped cfg) → ingest → SQS (fauxqs) → poller →
 * the worker handler → Data API server → PostgreSQL/MariaDB, and → Kamailio JSON-RPC; plus the
 * reconciler on a timer and the cleanup function behind a Lambda Invoke endpoint.
 *
 * The handlers are the ones the Lambdas run, wired by the same composition root
 * (lambdas/handlers/compose.ts) from an env object as CDK sets it (KWC_FLEET_CONFIG,
 * AWS_ENDPOINT_URL_*, dummy credentials), parsed by the same schemas (lambdas/handlers/env.ts).
 * Nothing here writes process.env or patches stdout: the handlers' clients point at this stack's
 * endpoints only, and their telemetry is teed: the logs and metrics go to `handlerLog` as JSON lines
 * (or, without it, Powertools prints them on stdout as in Lambda), and a copy counts metrics into
 * `counters.metrics`.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SQSEvent } from "aws-lambda";
import { KamailioRpcClient } from "#adapters/kamailio-rpc.ts";
import { parseMessage } from "#core/parse.ts";
import type { Telemetry } from "#core/ports.ts";
import { cleanupHandlerFromEnv, reconcilerHandlerFromEnv, workerHandlerFromEnv } from "#handlers/compose.ts";
import { CleanupEnvSchema, parseEnv, ReconcilerEnvSchema, WorkerEnvSchema } from "#handlers/env.ts";
import { visibilityTimeoutSeconds, WORKER_EVENT_SOURCE } from "../infra/event-source-settings.ts";
import { type FaultInjector, startDataApiServer } from "./dataapi/server.ts";
import {
  connectLocalDb,
  DB_PASSWORD,
  DB_USER,
  type DbConnectionSettings,
  dbPort,
  type Engine,
  kamailioDbUrl,
} from "./db.ts";
import { type IngestServer, startIngestServer } from "./ingest.ts";
import { type InvokeServer, lambdaContext, startInvokeServer } from "./invoke.ts";
import { fetchStatus, type LocalKamailio, startLocalKamailio } from "./kamailio.ts";
import { type InvocationResult, type Poller, startSqsPoller } from "./poller.ts";
import { LOCAL_CREDENTIALS, LOCAL_REGION, type LocalSqs, startLocalSqs } from "./sqs.ts";

export const CLEANUP_FUNCTION_NAME = "kwc-cleanup";
const RESOURCE_ARN = "arn:aws:rds:us-east-1:000000000000:cluster:kwc-local";
const SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:kwc-local-db";

/** A Kamailio that is already running (`--existing-kamailio`): the stack does not start one. */
export interface ExistingNode {
  statusUrl: string;
  rpcUrl: string;
  socketInfo: string;
  /** Its RPC token (the same KWC_RPC_TOKEN it was started with). */
  rpcToken: string;
  /** What the node reports (GET /kwc/status), written into the fleet config. */
  contactStyle?: "nated" | "alias";
  kamailioVersion?: string;
  notifierProcesses?: number;
}

export interface LocalStackOptions {
  engine: Engine;
  /** The database Kamailio and the service use (tests pass their own `kwc_*` database). */
  database: string;
  /** Directory for the fleet config, secrets, Kamailio run dirs and logs. */
  stateDir: string;
  /** Kamailio nodes to start with per-node watchers tables (1 or 2); ignored with `existing`. */
  nodes?: number;
  existing?: ExistingNode;
  /** The operator's database (`--database-url`, PG*, DATABASE_URL, …); default: the project's own. */
  db?: DbConnectionSettings;
  /** Ingest address; defaults: 127.0.0.1, a free port. */
  ingestHost?: string;
  ingestPort?: number;
  /** The `existing` node's ingest key (default: a fresh random one per node). */
  ingestKey?: string;
  notifierProcesses?: number;
  contactStyle?: "nated" | "alias";
  /** Loopback addresses for the nodes (default 127.0.0.1, 127.0.0.2). */
  listenIps?: string[];
  /** Kamailio's short test timers (WS keepalive 2 s, fr_timer 1.5 s); default true. */
  testTimers?: boolean;
  /** Event-source settings: unset, they are the deployed ones (infra/event-source-settings.ts). */
  visibilityTimeoutSeconds?: number;
  maxReceiveCount?: number;
  batchSize?: number;
  batchingWindowMs?: number;
  waitTimeSeconds?: number;
  concurrency?: number;
  /** Reconciler period; 0 turns the timer off. */
  reconcileEveryMs?: number;
  /**
   * The worker's Kamailio JSON-RPC timeout (default: the deployed DEFAULT_RPC_TIMEOUT_MS, 5 s). A
   * test with a short visibility timeout, hence a short function timeout (visibility / 6), sets it
   * below that function timeout, as deployed (5 s against 30 s).
   */
  workerRpcTimeoutMs?: number;
  /** Called after each invocation of the worker by the events queue's poller (tests, status lines). */
  onWorkerInvocation?: (result: InvocationResult) => void;
  log?: (line: string) => void;
  /**
   * Where the handlers' logs and metrics go, one JSON line each (npm start and the demo: a
   * service.log). Unset: Powertools prints them on stdout, as in Lambda.
   */
  handlerLog?: (line: string) => void;
}

export interface StackCounters {
  /** Events in the SQS messages handed to the worker (first delivery of each message). */
  eventsIn: number;
  /** Events or envelopes the contract rejects (they go to the DLQ with their reason). */
  rejects: number;
  /** Sums of the EMF metrics the handlers emitted, by metric name. */
  metrics: Record<string, number>;
  /** Refreshes the worker did not send, by the refresh policy's reason (its "refresh skipped" logs). */
  refreshSkipReasons: Record<string, number>;
  /** The handlers' error logs, by message and the start of their detail (without reading their JSON lines). */
  errors: Record<string, number>;
  reconcileRuns: number;
  reconcileErrors: number;
  /** Rows the reconciler deleted and its refreshes by outcome (from its reports). */
  reconcileDeleted: number;
  reconcileRefreshes: number;
  reconcileRefreshFailures: number;
  reconcileRefreshDeferred: number;
}

export interface NodeInfo {
  id: string;
  wsUrl?: string;
  rpcUrl: string;
  statusUrl: string;
  socketInfo: string;
  watchersTable: string;
  logFile?: string;
}

export interface LocalStack {
  engine: Engine;
  database: string;
  nodes: NodeInfo[];
  kamailios: LocalKamailio[];
  sqs: LocalSqs;
  ingest: IngestServer;
  invoke: InvokeServer;
  dataApiEndpoint: string;
  fleetConfigPath: string;
  rpcToken: string;
  /** The first node's ingest key (the key of `nodes[0]`). */
  ingestKey: string;
  /** Each node's own ingest key (per-node identity, docs/security.md). */
  ingestKeys: Record<string, string>;
  poller(): Poller | undefined;
  /** The worker handler the poller invokes (the latency bench also calls it in-process). */
  worker: (event: SQSEvent) => Promise<unknown>;
  counters: StackCounters;
  /**
   * Stops the worker's pollers (events stay in SQS; a long poll under way ends by itself, so this
   * takes up to waitTimeSeconds) and starts them again.
   */
  pauseWorker(): Promise<void>;
  resumeWorker(): void;
  /** Runs the reconciler once now (what the timer does). */
  reconcileNow(): Promise<unknown>;
  /** Restarts the reconciler timer with this period; 0 stops it. */
  setReconcileEvery(ms: number): void;
  /** Total rows in the nodes' watchers tables. */
  watcherRows(): Promise<Record<string, number>>;
  /** Data API fault injection. */
  dataApiFaults: FaultInjector;
  stop(): Promise<void>;
}

/**
 * Sums the metrics the handlers count, by name (what their EMF lines would add up to), the
 * refresh policy's skip reasons (logged per refresh, no metric dimension carries them) and the
 * error logs by message and detail.
 */
function metricCounter(
  counters: Pick<StackCounters, "metrics" | "refreshSkipReasons" | "errors">,
): Telemetry {
  const { metrics, refreshSkipReasons, errors } = counters;
  return {
    count: (metric, value = 1) => {
      metrics[metric] = (metrics[metric] ?? 0) + value;
    },
    audit: () => {},
    ignored: () => {},
    info: (message, data) => {
      if (message !== "refresh skipped") return;
      const reason = String(data?.reason ?? "unknown");
      refreshSkipReasons[reason] = (refreshSkipReasons[reason] ?? 0) + 1;
    },
    warn: () => {},
    error: (message, data) => {
      // The detail's first words say what went wrong (e.g. the Data API's "sql: Too big").
      const detail = typeof data?.detail === "string" ? `: ${data.detail.slice(0, 100)}` : "";
      errors[message + detail] = (errors[message + detail] ?? 0) + 1;
    },
  };
}

/** The functions' environment, as CDK sets it (docs/local-mode.md). */
function functionEnv(urls: { fleetConfigPath: string; sqs: LocalSqs; dataApi: string }) {
  return {
    KWC_FLEET_CONFIG: `file:${urls.fleetConfigPath}`,
    KWC_DLQ_URL: urls.sqs.dlqUrl,
    // refresh.requested follow-ups (worker, reconciler, on-demand cleanup), delayed as in AWS, on
    // their own queue, which the worker also consumes (and tells apart by its ARN).
    KWC_FOLLOW_UP_QUEUE_URL: urls.sqs.followUpQueueUrl,
    KWC_FOLLOW_UP_QUEUE_ARN: urls.sqs.followUpQueueArn,
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    AWS_ENDPOINT_URL_SQS: urls.sqs.endpoint,
    AWS_ENDPOINT_URL_RDS_DATA: urls.dataApi,
    POWERTOOLS_SERVICE_NAME: process.env.POWERTOOLS_SERVICE_NAME ?? "kwc-local",
    POWERTOOLS_METRICS_NAMESPACE: process.env.POWERTOOLS_METRICS_NAMESPACE ?? "KamailioWatcherCleanup",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "INFO",
  };
}

export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const log = options.log ?? ((line: string) => console.error(line));
  const stateDir = options.stateDir;
  mkdirSync(stateDir, { recursive: true });
  const cleanups: (() => Promise<void> | void)[] = [];
  const stopAll = async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        log(`local: stop: ${(error as Error).message}`);
      }
    }
    cleanups.length = 0;
  };

  try {
    const counters: StackCounters = {
      eventsIn: 0,
      rejects: 0,
      metrics: {},
      refreshSkipReasons: {},
      errors: {},
      reconcileRuns: 0,
      reconcileErrors: 0,
      reconcileDeleted: 0,
      reconcileRefreshes: 0,
      reconcileRefreshFailures: 0,
      reconcileRefreshDeferred: 0,
    };

    // Secrets: fresh per run, handed to Kamailio through its environment and to the service
    // through a file reference (never in the fleet config itself, never logged).
    const rpcToken = options.existing?.rpcToken ?? randomBytes(24).toString("hex");
    // One key per node, as deployed: the ingest tells the worker which node sent each POST.
    const ingestKeys: Record<string, string> = {};
    const keysByNode: Record<string, [string]> = {};
    const newIngestKey = (nodeId: string, given?: string) => {
      const key = given ?? randomBytes(24).toString("hex");
      ingestKeys[nodeId] = key;
      keysByNode[nodeId] = [key];
      return key;
    };
    const tokenFile = join(stateDir, "rpc-token");
    writeFileSync(tokenFile, `${rpcToken}\n`, { mode: 0o600 });
    chmodSync(tokenFile, 0o600);

    const deployed = WORKER_EVENT_SOURCE;
    const visibilitySeconds =
      options.visibilityTimeoutSeconds ?? visibilityTimeoutSeconds(deployed.functionTimeoutSeconds);
    const sqs = await startLocalSqs({
      visibilityTimeoutSeconds: visibilitySeconds,
      maxReceiveCount: options.maxReceiveCount ?? 5,
    });
    cleanups.push(() => sqs.stop());
    const ingestClient = sqs.createClient();
    cleanups.push(() => ingestClient.destroy());
    const ingest = await startIngestServer({
      client: ingestClient,
      queueUrl: sqs.queueUrl,
      keys: keysByNode,
      maxBodyBytes: sqs.maximumMessageSizeBytes,
      ...(options.ingestHost ? { host: options.ingestHost } : {}),
      ...(options.ingestPort ? { port: options.ingestPort } : {}),
    });
    cleanups.push(() => ingest.close());

    const dataApi = await startDataApiServer({
      targets: [
        {
          resourceArn: RESOURCE_ARN,
          engine: options.engine === "postgres" ? "aurora-postgresql" : "aurora-mysql",
          ...(options.db ?? {
            host: "127.0.0.1",
            port: dbPort(options.engine),
            user: DB_USER,
            password: DB_PASSWORD,
          }),
          database: options.database,
        },
      ],
    });
    cleanups.push(() => dataApi.close());

    // Kamailio nodes, one watchers table each (DESIGN §1 item 12).
    const nodes: NodeInfo[] = [];
    const kamailios: LocalKamailio[] = [];
    if (options.existing) {
      const status = (await fetchStatus(options.existing.statusUrl, options.existing.rpcToken)) as
        | { node?: string; watchersTable?: string }
        | undefined;
      if (!status?.node) throw new Error(`no kwc status from ${options.existing.statusUrl} (token?)`);
      newIngestKey(status.node, options.ingestKey);
      nodes.push({
        id: status.node,
        rpcUrl: options.existing.rpcUrl,
        statusUrl: options.existing.statusUrl,
        socketInfo: options.existing.socketInfo,
        watchersTable: status.watchersTable ?? "active_watchers",
      });
    } else {
      const db = await connectLocalDb(options.engine, options.database);
      try {
        const count = Math.max(1, Math.min(2, options.nodes ?? 1));
        for (let i = 0; i < count; i++) {
          const id = `node-${String.fromCharCode(97 + i)}`;
          const watchersTable = i === 0 ? "active_watchers" : `active_watchers_${id.replace("-", "_")}`;
          await db.ensureWatchersTable(watchersTable);
          const kamailio = await startLocalKamailio({
            nodeId: id,
            engine: options.engine,
            dbUrl: kamailioDbUrl(options.engine, options.database),
            watchersTable,
            ingestUrl: ingest.eventsUrl,
            ingestKey: newIngestKey(id),
            rpcToken,
            stateDir,
            listenIp: options.listenIps?.[i] ?? `127.0.0.${i + 1}`,
            notifierProcesses: options.notifierProcesses ?? 0,
            contactStyle: options.contactStyle ?? "nated",
            testTimers: options.testTimers ?? true,
          });
          cleanups.push(() => kamailio.stop());
          kamailios.push(kamailio);
          nodes.push({
            id,
            wsUrl: kamailio.wsUrl,
            rpcUrl: kamailio.rpcUrl,
            statusUrl: kamailio.statusUrl,
            socketInfo: kamailio.socketInfo,
            watchersTable,
            logFile: kamailio.logFile,
          });
        }
      } finally {
        await db.close();
      }
    }

    const fleetConfigPath = join(stateDir, "fleet.json");
    const fleet = {
      version: 1,
      database: {
        engine: options.engine,
        resourceArn: RESOURCE_ARN,
        secretArn: SECRET_ARN,
        name: options.database,
      },
      nodes: nodes.map((n) => ({
        id: n.id,
        rpcUrl: n.rpcUrl,
        statusUrl: n.statusUrl,
        tokenSecret: `file:${tokenFile}`,
        socketInfo: [n.socketInfo],
        watchersTable: n.watchersTable,
        contactStyle: options.existing?.contactStyle ?? options.contactStyle ?? "nated",
        kamailioVersion: options.existing?.kamailioVersion ?? "5.6.3",
        subsDbMode: 3,
        notifierProcesses: options.existing?.notifierProcesses ?? options.notifierProcesses ?? 0,
      })),
    };
    writeFileSync(fleetConfigPath, `${JSON.stringify(fleet, null, 2)}\n`);

    const env = functionEnv({ fleetConfigPath, sqs, dataApi: dataApi.endpoint });
    const sinks = {
      tee: metricCounter(counters),
      ...(options.handlerLog ? { logLines: options.handlerLog } : {}),
    };
    const worker = workerHandlerFromEnv(parseEnv("worker", WorkerEnvSchema, env), {
      ...sinks,
      // The same client the composition root builds, with the token it would read from tokenFile.
      ...(options.workerRpcTimeoutMs !== undefined && {
        kamailio: new KamailioRpcClient({
          token: async () => rpcToken,
          timeoutMs: options.workerRpcTimeoutMs,
        }),
      }),
    });
    const reconciler = reconcilerHandlerFromEnv(parseEnv("reconciler", ReconcilerEnvSchema, env), sinks);
    const cleanup = cleanupHandlerFromEnv(parseEnv("cleanup", CleanupEnvSchema, env), sinks);
    const invoke = await startInvokeServer({
      functions: { [CLEANUP_FUNCTION_NAME]: cleanup },
      region: LOCAL_REGION,
    });
    cleanups.push(() => invoke.close());

    const countIncoming = (event: SQSEvent) => {
      for (const record of event.Records) {
        if (record.attributes.ApproximateReceiveCount !== "1") continue;
        const parsed = parseMessage(record.body);
        counters.eventsIn += parsed.events.length + parsed.rejections.length;
        counters.rejects += parsed.rejections.length;
      }
    };
    const pollerClient = sqs.createClient();
    cleanups.push(() => pollerClient.destroy());
    let poller: Poller | undefined;
    // The worker consumes the events queue and its own follow-up queue (two event source mappings).
    let followUpPoller: Poller | undefined;
    const pollerFor = (queueUrl: string, queueArn: string, count: boolean) =>
      startSqsPoller({
        client: pollerClient,
        queueUrl,
        queueArn,
        // The context too: the worker's time budget is the function's remaining time.
        handler: async (event, context) => {
          if (count) countIncoming(event);
          return worker(event, context);
        },
        batchSize: options.batchSize ?? deployed.batchSize,
        batchingWindowMs: options.batchingWindowMs ?? deployed.maxBatchingWindowSeconds * 1000,
        waitTimeSeconds: options.waitTimeSeconds ?? 1,
        concurrency: options.concurrency ?? deployed.maxConcurrency,
        // The function timeout the visibility timeout was derived from (Lambda's 6× rule).
        functionTimeoutMs: Math.max(1000, (visibilitySeconds * 1000) / 6),
        functionName: "kwc-worker",
        ...(count && options.onWorkerInvocation ? { onInvocation: options.onWorkerInvocation } : {}),
        log,
      });
    const startPoller = () => {
      poller = pollerFor(sqs.queueUrl, sqs.queueArn, true);
      followUpPoller = pollerFor(sqs.followUpQueueUrl, sqs.followUpQueueArn, false);
    };
    startPoller();
    cleanups.push(async () => {
      await poller?.stop();
      await followUpPoller?.stop();
    });

    let reconciling: Promise<unknown> | undefined;
    const reconcileNow = async () => {
      if (reconciling) return reconciling;
      counters.reconcileRuns++;
      reconciling = reconciler(
        {
          version: "0",
          id: randomBytes(8).toString("hex"),
          "detail-type": "Scheduled Event",
          source: "aws.events",
          account: "000000000000",
          time: new Date().toISOString(),
          region: LOCAL_REGION,
          resources: [],
          detail: {},
        },
        lambdaContext("kwc-reconciler", 300_000, LOCAL_REGION),
      )
        .then((report) => {
          const { totals, nodes } = report as {
            totals?: { deleted?: number; refreshes?: number; refreshFailures?: number };
            nodes?: { refreshDeferred?: number }[];
          };
          // totals.refreshes counts every outcome: only the ones that went out count as refreshes.
          const failed = totals?.refreshFailures ?? 0;
          const deferred = (nodes ?? []).reduce((sum, n) => sum + (n.refreshDeferred ?? 0), 0);
          counters.reconcileDeleted += totals?.deleted ?? 0;
          counters.reconcileRefreshes += (totals?.refreshes ?? 0) - failed - deferred;
          counters.reconcileRefreshFailures += failed;
          counters.reconcileRefreshDeferred += deferred;
          return report;
        })
        .catch((error: unknown) => {
          counters.reconcileErrors++;
          log(`local: reconcile failed: ${(error as Error).message}`);
        })
        .finally(() => {
          reconciling = undefined;
        });
      return reconciling;
    };
    let reconcileTimer: NodeJS.Timeout | undefined;
    const setReconcileEvery = (ms: number) => {
      clearInterval(reconcileTimer);
      reconcileTimer = ms > 0 ? setInterval(() => void reconcileNow(), ms) : undefined;
    };
    setReconcileEvery(options.reconcileEveryMs ?? 60_000);
    cleanups.push(async () => {
      clearInterval(reconcileTimer);
      await reconciling;
    });

    const watcherRows = async () => {
      const db = await connectLocalDb(options.engine, options.database, options.db);
      try {
        const out: Record<string, number> = {};
        for (const n of nodes) out[n.id] = await db.countRows(n.watchersTable);
        return out;
      } finally {
        await db.close();
      }
    };

    return {
      engine: options.engine,
      database: options.database,
      nodes,
      kamailios,
      sqs,
      ingest,
      invoke,
      dataApiEndpoint: dataApi.endpoint,
      fleetConfigPath,
      rpcToken,
      ingestKey: ingestKeys[nodes[0]?.id ?? ""] ?? "",
      ingestKeys,
      poller: () => poller,
      worker,
      counters,
      async pauseWorker() {
        // A paused worker loses nothing: the long polls under way end by themselves (≤ waitTimeSeconds).
        await Promise.all([
          poller?.stop({ finishReceive: true }),
          followUpPoller?.stop({ finishReceive: true }),
        ]);
        poller = undefined;
        followUpPoller = undefined;
      },
      resumeWorker() {
        if (!poller) startPoller();
      },
      reconcileNow,
      setReconcileEvery,
      watcherRows,
      dataApiFaults: dataApi.faults,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
