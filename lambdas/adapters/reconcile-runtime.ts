/**
 * Wiring of the reconcile/cleanup sweep to real adapters, shared by the reconciler Lambda, the
 * cleanup Lambda and the `kwc` CLI (local mode): fleet config, Data API store, Kamailio client.
 * Clients are built once; the fleet config is re-read at most every FLEET_CONFIG_TTL_MS.
 * With KWC_EVENTS_QUEUE_URL set, refreshes owed after deletes that hit a transient fault are
 * queued there as refresh.requested follow-ups (KWC_FOLLOW_UP_DELAY_SECONDS, default 30).
 */
import { RDSDataClient } from "@aws-sdk/client-rds-data";
import type { CleanupReport, CleanupRequest } from "../core/cleanup-request.ts";
import type { FleetConfig } from "../core/fleet.ts";
import type { FollowUpSink, KamailioClient } from "../core/ports.ts";
import { kamailioProbe } from "../core/reconcile-probe.ts";
import { runCleanup, type SweepHooks, type SweepOptions } from "../core/reconcile-sweep.ts";
import { fleetSourceFromEnv } from "./config-source.ts";
import { KamailioRpcClient } from "./kamailio-rpc.ts";
import { DataApiReconcileStore } from "./reconcile-store.ts";
import { followUpsFromEnv } from "./sqs-follow-up.ts";

export interface ReconcileRuntime {
  loadFleet(): Promise<FleetConfig>;
  rdsData: RDSDataClient;
  kamailio: KamailioClient;
  followUps?: FollowUpSink;
}

/** Builds the clients once from the environment (KWC_FLEET_CONFIG, AWS_ENDPOINT_URL_* for local endpoints). */
export function runtimeFromEnv(env: NodeJS.ProcessEnv = process.env, fleetSpec?: string): ReconcileRuntime {
  const { loadFleet, secret } = fleetSourceFromEnv(env, fleetSpec);
  const followUps = followUpsFromEnv(env);
  return {
    loadFleet,
    rdsData: new RDSDataClient({}),
    kamailio: new KamailioRpcClient({ token: (node) => secret(node.tokenSecret) }),
    ...(followUps ? { followUps } : {}),
  };
}

export interface RunOptions extends SweepOptions {
  hooks?: SweepHooks;
}

/** Runs one request against the fleet; returns the report and the store's read statistics. */
export async function runRequest(
  runtime: ReconcileRuntime,
  request: CleanupRequest,
  options: RunOptions = {},
): Promise<CleanupReport & { store: DataApiReconcileStore["stats"] }> {
  const fleet = await runtime.loadFleet();
  const store = new DataApiReconcileStore(runtime.rdsData, fleet.database);
  const { hooks, ...sweep } = options;
  const report = await runCleanup(
    {
      store,
      probe: kamailioProbe(runtime.kamailio, fleet.nodes),
      engine: fleet.database.engine,
      fleet: fleet.nodes,
      ...(runtime.followUps ? { followUps: runtime.followUps } : {}),
      ...(hooks ? { hooks } : {}),
    },
    request,
    sweep,
  );
  return { ...report, store: store.stats };
}
