/** What every stage of one batch reads: the batch's store, engine, caches, ledger and refresh set. */
import type { Clock } from "../clock.ts";
import type { DatabaseEngine, FleetConfig } from "../fleet.ts";
import type { NodeFactsCache } from "../kernel/node-facts.ts";
import type { FollowUpSink, KamailioClient, WatcherStore } from "../ports.ts";
import type { BatchLedger } from "./ledger.ts";
import type { RefreshSet } from "./refresh-set.ts";
import type { WorkerDeps } from "./types.ts";

export interface BatchContext {
  fleet: FleetConfig;
  engine: DatabaseEngine;
  store: WatcherStore;
  kamailio: KamailioClient;
  facts: NodeFactsCache;
  ledger: BatchLedger;
  refreshes: RefreshSet;
  clock: Clock;
  concurrency: number;
  followUps?: FollowUpSink | undefined;
  beforeDelete?: WorkerDeps["beforeDelete"];
}
