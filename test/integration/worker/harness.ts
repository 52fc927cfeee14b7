// Shared wiring for the worker's integration tests: the local Data API server over the test
// database, the real RDSDataClient, the Data API store, the real JSON-RPC client and a worker
// built from them (the same factories the Lambda handler uses).
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import { KamailioRpcClient } from "#adapters/kamailio-rpc.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import type { FleetConfig, NodeConfig } from "#core/fleet.ts";
import type { DlqItem } from "#core/ports.ts";
import { createWorker, type WorkerDeps } from "#core/worker.ts";
import { defaultTargets } from "../../../local/dataapi/config.ts";
import { type DataApiServer, startDataApiServer } from "../../../local/dataapi/server.ts";
import { localDataApiClient, testDbConfig } from "../../helpers/dataapi.ts";
import type { Engine, TestDb } from "../../helpers/db.ts";
import { actBeforeFirst, fleetOf, RecordingSink, runningNodeConfig } from "../../helpers/fakes.ts";
import type { KamailioNode } from "../../helpers/kamailio.ts";

export async function startDataApi(): Promise<{ server: DataApiServer; client: RDSDataClient }> {
  const server = await startDataApiServer({ targets: defaultTargets(), statementTimeoutMs: 10_000 });
  return { server, client: localDataApiClient(server.endpoint) };
}

export function nodeConfigOf(
  node: KamailioNode,
  contactStyle: NodeConfig["contactStyle"],
  notifierProcesses = 0,
): NodeConfig {
  return runningNodeConfig(node, { contactStyle, notifierProcesses });
}

/** The shared recording DLQ (test/helpers/fakes.ts), under the name the reliability tests import. */
export const ArrayDlq = RecordingSink<DlqItem>;

/** A worker fleet over the test database: these nodes, the deployed notify failure codes. */
export function testFleet(db: TestDb, nodes: NodeConfig[]): FleetConfig {
  return fleetOf(nodes, { database: testDbConfig(db) });
}

/** One started node's fleet and RPC token (the worker tests of one node). */
export function oneNodeFleet(bed: { db: TestDb; node: KamailioNode }) {
  return {
    fleet: testFleet(bed.db, [nodeConfigOf(bed.node, "nated")]),
    tokens: new Map([[bed.node.nodeId, bed.node.rpcToken]]),
  };
}

export function workerFor(
  fleet: FleetConfig,
  client: RDSDataClient,
  tokens: Map<string, string>,
  extra: Partial<WorkerDeps> & {
    /** Runs once between the liveness check and the DELETE (at the store port: see actBeforeFirst). */
    actBeforeDelete?: () => unknown;
  } = {},
) {
  const { actBeforeDelete, ...overrides } = extra;
  const tel = memoryTelemetry();
  const dlq = new ArrayDlq();
  const real = new DataApiWatcherStore(client, fleet.database);
  const store = actBeforeDelete ? actBeforeFirst(real, "deleteWatchers", actBeforeDelete) : real;
  const kamailio = new KamailioRpcClient({ token: async (n) => tokens.get(n.id) ?? "", timeoutMs: 3000 });
  const deps: WorkerDeps = {
    fleet: async () => fleet,
    storeFor: () => store,
    kamailio,
    dlq,
    telemetry: tel.telemetry,
    ...overrides,
  };
  return { run: createWorker(deps), tel, dlq, store, kamailio, deps };
}

export function envelopeOf(...events: unknown[]): string {
  return JSON.stringify({ v: 1, events });
}

export type { Engine };
