/**
 * The on-demand cleanup request (one zod schema shared by the cleanup Lambda and the `kwc` CLI)
 * and the report every reconcile/cleanup run returns.
 */
import { z } from "zod";
import {
  DialogKeySchema,
  EVENT_TEXT_MESSAGE,
  EVENT_TEXT_RE,
  EventPackageSchema,
  NodeIdSchema,
} from "./contract.ts";

/**
 * A watcher AOR as Kamailio splits it into watcher_username / watcher_domain. Both it and the
 * presentity refuse the events' refused code points (contract.ts EVENT_TEXT_RE): no row can hold
 * them, and a NUL would fail the statement on PostgreSQL instead of answering BadRequest.
 */
const WatcherAorSchema = z
  .string()
  .max(140)
  .regex(/^(sips?:)?[^@\s:;]{1,64}@[^@\s:;]{1,64}$/, "a watcher AOR like sip:alice@example.com")
  .regex(EVENT_TEXT_RE, EVENT_TEXT_MESSAGE);
const PresentitySchema = z.string().min(1).max(255).regex(EVENT_TEXT_RE, EVENT_TEXT_MESSAGE);

/** Safety cap on the rows one request may delete per node (a dry run lists at most this many). */
export const DEFAULT_ROW_LIMIT = 100_000;
export const MAX_ROW_LIMIT = 1_000_000;

const common = {
  /** List what would be deleted, delete nothing, send no refresh. */
  dryRun: z.boolean().default(false),
  limit: z.number().int().positive().max(MAX_ROW_LIMIT).default(DEFAULT_ROW_LIMIT),
  /**
   * By-hand scopes delete only stale rows (peer not connected, or expired) unless this is set:
   * then every row in the scope goes, live or not (its client gets 481 on its next refresh).
   */
  includeLive: z.boolean().default(false),
  /** Rows the report lists: the stale ones (default), or every row in scope (`kwc watchers list`). */
  list: z.enum(["stale", "all"]).default("stale"),
};

export const CleanupRequestSchema = z.discriminatedUnion("scope", [
  z.strictObject({
    scope: z.literal("presentity"),
    presentity: PresentitySchema,
    event: EventPackageSchema.optional(),
    node: NodeIdSchema.optional(),
    ...common,
  }),
  z.strictObject({
    scope: z.literal("watcher"),
    watcher: WatcherAorSchema,
    node: NodeIdSchema.optional(),
    ...common,
  }),
  z.strictObject({ scope: z.literal("node"), node: NodeIdSchema, ...common }),
  z.strictObject({
    scope: z.literal("dialog"),
    dialog: DialogKeySchema,
    node: NodeIdSchema.optional(),
    ...common,
  }),
  z.strictObject({ scope: z.literal("expired"), node: NodeIdSchema.optional(), ...common }),
  z.strictObject({ scope: z.literal("reconcile"), node: NodeIdSchema.optional(), ...common }),
]);

export type CleanupRequest = z.infer<typeof CleanupRequestSchema>;
export type CleanupRequestInput = z.input<typeof CleanupRequestSchema>;
export type CleanupScope = CleanupRequest["scope"];

/** Why a row is in the report. `requested` = deleted by hand although live (includeLive). */
export const ROW_REASONS = ["live", "conn-closed", "expired", "requested"] as const;
export type RowReason = (typeof ROW_REASONS)[number];

export interface ReportRow {
  id: number;
  node: string;
  key: { callId: string; toTag: string; fromTag: string };
  presentity: string;
  event: string;
  contact: string;
  /** The peer the contact names (`ip:port`), when it names one. */
  peer?: string;
  reason: RowReason;
}

export interface RefreshOutcome {
  presentity: string;
  event: string;
  /** `deferred`: the node was unreachable; a refresh.requested follow-up was queued for the worker. */
  outcome: "ok" | "failed" | "deferred";
  message?: string;
}

export type NodeOutcome =
  /** swept (dry run or not) */
  | "done"
  /** refused before touching anything: deleting rows cannot help or the topology is unsafe */
  | "refused"
  /** a fault (Data API, Kamailio unreachable, ...) stopped this node */
  | "error"
  /** the time budget ran out before this node started */
  | "not-reached";

export interface NodeReport {
  node: string;
  outcome: NodeOutcome;
  /** Boot id the node reported during this sweep (absent when it could not be asked). */
  bootId?: string;
  message?: string;
  warnings: string[];
  /** Rows read (in scope), per reason, live included. */
  counts: Record<RowReason, number>;
  /** Stale rows (deleted, or to be deleted in a dry run), at most `limit`; every row with list "all". */
  rows: ReportRow[];
  /** More stale rows than `limit`: the rest is left for the next run. */
  truncated: boolean;
  deleted: number;
  refreshes: RefreshOutcome[];
  pages: number;
  /** Connections Kamailio listed (core.tcp_list), all types. */
  connections: number;
  durationMs: number;
}

export interface CleanupReport {
  request: CleanupRequest;
  dryRun: boolean;
  startedAt: string;
  durationMs: number;
  nodes: NodeReport[];
  totals: {
    counts: Record<RowReason, number>;
    deleted: number;
    refreshes: number;
    refreshFailures: number;
    nodesDone: number;
    nodesRefused: number;
    nodesFailed: number;
    nodesNotReached: number;
  };
}

export function emptyCounts(): Record<RowReason, number> {
  return { live: 0, "conn-closed": 0, expired: 0, requested: 0 };
}

export function summarize(
  request: CleanupRequest,
  startedAt: Date,
  nodes: NodeReport[],
  nowMs: number = Date.now(),
): CleanupReport {
  const counts = emptyCounts();
  for (const n of nodes) for (const r of ROW_REASONS) counts[r] += n.counts[r];
  const refreshes = nodes.flatMap((n) => n.refreshes);
  return {
    request,
    dryRun: request.dryRun,
    startedAt: startedAt.toISOString(),
    durationMs: nowMs - startedAt.getTime(),
    nodes,
    totals: {
      counts,
      deleted: nodes.reduce((sum, n) => sum + n.deleted, 0),
      refreshes: refreshes.length,
      refreshFailures: refreshes.filter((r) => r.outcome === "failed").length,
      nodesDone: nodes.filter((n) => n.outcome === "done").length,
      nodesRefused: nodes.filter((n) => n.outcome === "refused").length,
      nodesFailed: nodes.filter((n) => n.outcome === "error").length,
      nodesNotReached: nodes.filter((n) => n.outcome === "not-reached").length,
    },
  };
}

/** Stale rows found (in a dry run: would be deleted). */
export function staleCount(report: CleanupReport): number {
  const c = report.totals.counts;
  return c["conn-closed"] + c.expired + c.requested;
}
