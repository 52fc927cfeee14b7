/** The worker's inputs, outputs and dependencies (the handler builds WorkerDeps from its adapters). */
import type { RefreshRequested } from "../contract.ts";
import type { FleetConfig } from "../fleet.ts";
import type { Freshness } from "../kernel/admission.ts";
import type {
  DeadLetterSink,
  DlqItem,
  FollowUpSink,
  KamailioClient,
  Telemetry,
  WatcherStore,
} from "../ports.ts";

export interface InputRecord {
  messageId: string;
  body: string;
  /** The `kwc-node` message attribute: the node the ingest authenticated (core/ingest-identity.ts). */
  ingestNode?: string | undefined;
  /**
   * Which queue the record came from: the events queue (the ingest, or a DLQ redrive into it) or
   * the follow-up queue, which only the functions can write to (IAM). refresh.requested is the
   * service's own message: accepted only from the follow-up queue. Default "events".
   */
  origin?: "events" | "follow-ups";
}

export interface WorkerDeps {
  fleet: () => Promise<FleetConfig>;
  storeFor: (fleet: FleetConfig) => WatcherStore;
  kamailio: KamailioClient;
  dlq: DeadLetterSink;
  /**
   * The events queue, for refresh.requested follow-ups. Without it a refresh owed after deletions
   * that hits a transient fault can only be reported degraded.
   */
  followUps?: FollowUpSink;
  telemetry: Telemetry;
  /** How long a node's status answer is trusted (ms). */
  statusTtlMs?: number;
  /** Epoch ms (the clock; default Date.now). */
  now?: () => number;
  /** Nodes handled at once. */
  concurrency?: number;
  /** Which `at` a deleting event may carry to be acted on (default DEFAULT_FRESHNESS). */
  freshness?: Freshness;
}

/** Per batch: the handler's time budget (clock ms; see BatchContext.deadline). */
export interface BatchOptions {
  deadline?: number;
}

export type RefreshOutcomeName = "ok" | "failed" | "degraded" | "retry" | "deferred" | "skipped";

export interface BatchResult {
  failedMessageIds: string[];
  deleted: number;
  guardKeeps: number;
  refreshes: { node: string; presentityUri: string; event: string; outcome: RefreshOutcomeName }[];
  /** Refreshes owed after deletions by verdict and reason (refresh-policy.ts), e.g. "skipped:version-continues". */
  refreshReasons?: Record<string, number>;
  /** refresh.requested follow-ups sent to the events queue in this batch. */
  followUps: RefreshRequested[];
  dlq: DlqItem[];
}

export const DEFAULT_CONCURRENCY = 4;
