/**
 * Reads the presentity deletion trace (core/sql/presentity-trace.ts) for the refresh policy, one
 * statement per 50 presentities, and prunes it. Whether the trace is installed is learnt from the
 * reads themselves: a read that fails because the view is missing or not granted marks the trace
 * absent for ABSENT_RECHECK_MS (so an install is picked up without a redeploy), and each read
 * checks the trigger through the view. Any other failure leaves those presentities unread (the
 * policy then refreshes them).
 */
import type { DatabaseConfig } from "../core/fleet.ts";
import { presentityKeyId } from "../core/plan.ts";
import type { PresentityKey, PresentityTraceSource, PresentityTraces } from "../core/ports.ts";
import {
  presentityColumns,
  TRACE_KEYS_PER_STATEMENT,
  TRACE_RETENTION_SECONDS,
  tracePruneStatement,
  traceReadStatement,
} from "../core/sql/presentity-trace.ts";
import { chunk, dialectFor } from "../core/sql.ts";
import type { Statement } from "../core/watcher-sql.ts";

type Execute = (statement: Statement) => Promise<{ records: unknown[][] }>;

/** How long a missing trace is believed before a read tries again. */
export const ABSENT_RECHECK_MS = 600_000;
/** How often one instance prunes the trace. */
export const PRUNE_INTERVAL_MS = 600_000;

const MISSING = /does not exist|doesn't exist|unknown table|permission denied|command denied|access denied/i;
const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));

export class DataApiPresentityTrace implements PresentityTraceSource {
  #absentAt: number | undefined;
  /** A read found the trace installed (pruning starts only then). */
  #seen = false;
  #prunedAt: number | undefined;
  constructor(
    private readonly execute: Execute,
    private readonly database: Pick<DatabaseConfig, "engine">,
    private readonly options: {
      now?: () => number;
      /** Told when the trace is found missing or unreadable, or its pruning failed (the reason). */
      onAbsent?: (reason: string) => void;
      retentionSeconds?: number;
    } = {},
  ) {}

  async read(keys: readonly PresentityKey[]): Promise<PresentityTraces> {
    const out: PresentityTraces = { installed: false, byKey: new Map() };
    const now = (this.options.now ?? Date.now)();
    if (this.#absentAt !== undefined && now - this.#absentAt < ABSENT_RECHECK_MS) return out;
    const parsed = keys.flatMap((k) => {
      const cols = presentityColumns(k.presentityUri);
      return cols ? [{ key: k, cols: { ...cols, event: k.event } }] : [];
    });
    if (parsed.length === 0) return out;
    const dialect = dialectFor(this.database.engine);
    const retention = this.options.retentionSeconds ?? TRACE_RETENTION_SECONDS;
    for (const part of chunk(parsed, TRACE_KEYS_PER_STATEMENT)) {
      let records: unknown[][];
      try {
        ({ records } = await this.execute(
          traceReadStatement(
            dialect,
            part.map((p) => p.cols),
          ),
        ));
      } catch (error) {
        const message = (error as Error).message;
        if (!MISSING.test(message)) continue; // transient: these stay unread
        this.#absentAt = now;
        this.options.onAbsent?.(message);
        return { installed: false, byKey: new Map() };
      }
      for (const r of records) {
        const entry = part[Number(r[0])];
        const [tracedSince, dbNow, triggers] = [num(r[5]), num(r[6]), num(r[7])];
        if (!entry || tracedSince === undefined || dbNow === undefined || !triggers) {
          this.#absentAt = now;
          this.options.onAbsent?.("the view kwc_presentity_trace finds no trigger or no start row");
          return { installed: false, byKey: new Map() };
        }
        out.installed = true;
        const n = Number(r[1]);
        out.byKey.set(presentityKeyId(entry.key), {
          rows: n === 0 ? [] : [{ receivedTime: Number(r[2]), expires: Number(r[3]) }],
          deletions: { tracedSince: Math.max(tracedSince, dbNow - retention), lastDeletedAt: num(r[4]) },
        });
      }
    }
    this.#absentAt = undefined;
    if (out.installed) this.#seen = true;
    return out;
  }

  /** Deletes trace rows past the retention, at most once per PRUNE_INTERVAL_MS; never throws. */
  async prune(): Promise<number> {
    const now = (this.options.now ?? Date.now)();
    if (!this.#seen || this.#absentAt !== undefined) return 0;
    if (this.#prunedAt !== undefined && now - this.#prunedAt < PRUNE_INTERVAL_MS) return 0;
    this.#prunedAt = now;
    try {
      const statement = tracePruneStatement(dialectFor(this.database.engine), this.options.retentionSeconds);
      const result = (await this.execute(statement)) as { updated?: number };
      return result.updated ?? 0;
    } catch (error) {
      this.options.onAbsent?.(`pruning the trace failed: ${(error as Error).message}`);
      return 0;
    }
  }
}
