/** What every stage of one batch reads: the batch's store, engine, caches, ledger and refresh set. */
import type { Clock } from "../clock.ts";
import type { DatabaseEngine, FleetConfig } from "../fleet.ts";
import type { NodeFactsCache } from "../kernel/node-facts.ts";
import type { NodeBackOff } from "../node-back-off.ts";
import type { FollowUpSink, KamailioClient, WatcherStore } from "../ports.ts";
import type { RefreshGate } from "../refresh-gate.ts";
import type { BatchLedger } from "./ledger.ts";
import type { RefreshSet } from "./refresh-set.ts";

export interface BatchContext {
  fleet: FleetConfig;
  engine: DatabaseEngine;
  store: WatcherStore;
  kamailio: KamailioClient;
  facts: NodeFactsCache;
  ledger: BatchLedger;
  refreshes: RefreshSet;
  /** Which refreshes owed after deletions are sent (refresh-policy.ts), counted by reason. */
  gate: RefreshGate;
  /** Nodes that answered 503 over their refresh budget in this batch. */
  backOff: NodeBackOff;
  clock: Clock;
  /**
   * Clock ms after which the batch starts nothing new: cleanup slices not begun are retried and
   * refreshes not sent become follow-ups (or retries), so a batch ends before its function timeout
   * instead of being killed with refreshes owed and unsent. Infinity: no budget.
   */
  deadline: number;
  concurrency: number;
  followUps?: FollowUpSink | undefined;
}
