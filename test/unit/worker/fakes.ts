// The worker's unit-test bed: event builders and a worker over the shared fakes (one per port,
// test/helpers/fakes.ts: MemoryStore, FakeKamailio, RecordingSink, node/fleet builders).
import { memoryTelemetry } from "#adapters/telemetry.ts";
import type { DialogKey } from "#core/contract.ts";
import type { NodeConfig } from "#core/fleet.ts";
import type { DlqItem, FollowUpSink } from "#core/ports.ts";
import { createWorker, type WorkerDeps } from "#core/worker.ts";
import {
  BOOT,
  FakeKamailio,
  fleetOf,
  MemoryStore,
  nodeConfig,
  RecordingSink,
  sqlLike,
  watcherRow,
} from "../../helpers/fakes.ts";

export { BOOT, FakeKamailio, fleetOf, MemoryStore, nodeConfig, RecordingSink, sqlLike, watcherRow };

export const AT = 1_795_621_085;

export function closed(node: string, ip: string, port: number) {
  return {
    type: "connection.closed",
    node,
    boot: BOOT,
    peer: { ip, port },
    transport: "ws",
    cause: "tcp:reset",
    at: AT,
  };
}
export function notifyFailed(node: string, dialog: DialogKey, code = 404) {
  return {
    type: "notify.failed",
    node,
    boot: BOOT,
    dialog,
    presentity: "sip:alice@example.com",
    event: "presence",
    code,
    contact: "sip:x@1.2.3.4:5;transport=ws",
    version: 1,
    at: AT,
  };
}
export function changed(node: string, presentity = "sip:alice@example.com", event = "presence") {
  return { type: "presence.changed", node, boot: BOOT, presentity, event, at: AT };
}
export function envelope(...events: unknown[]): string {
  return JSON.stringify({ v: 1, events });
}

/** A worker over in-memory fakes, as every worker unit test builds it. */
export function workerBed(opts: { nodes?: NodeConfig[]; followUps?: FollowUpSink; now?: () => number } = {}) {
  // The events' `at` (AT) is fresh at this clock unless a test moves it.
  const fleet = fleetOf(opts.nodes ?? [nodeConfig("node-1"), nodeConfig("node-2")]);
  const store = new MemoryStore();
  const kamailio = new FakeKamailio();
  const dlq = new RecordingSink<DlqItem>();
  const tel = memoryTelemetry();
  const deps: WorkerDeps = {
    fleet: async () => fleet,
    storeFor: () => store,
    kamailio,
    dlq,
    telemetry: tel.telemetry,
    now: opts.now ?? (() => AT * 1000 + 5_000),
    ...(opts.followUps ? { followUps: opts.followUps } : {}),
  };
  return { fleet, store, kamailio, dlq, tel, deps, run: createWorker(deps) };
}
