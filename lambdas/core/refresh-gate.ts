/**
 * Applies the refresh policy (refresh-policy.ts) to the refreshes a batch owes after deletions:
 * remembers each deleted row's death time per (node, presentity, event); before the refreshes go
 * out, reads (one statement per 50 presentities, whatever the nodes: the presentity table is
 * shared) the rows and traced deletions of the presentities whose refresh the trace could spare;
 * then says per refresh whether it is sent, and counts RefreshSent / RefreshSkipped per batch with
 * the reason as a metric dimension. A refresh asked for by events (presence.changed fan-out,
 * refresh.requested) is never skipped: it carries a new state to other nodes' watchers, or a
 * refresh owed from before.
 */
import type { KamailioEvent } from "./contract.ts";
import type { NodeFacts } from "./fleet.ts";
import { presentityKeyId } from "./plan.ts";
import type { PresentityKey, PresentityTrace, PresentityTraceSource, Telemetry } from "./ports.ts";
import {
  DEFAULT_TRIGGER_SKEW_SECONDS,
  decideRefresh,
  loopAborts,
  type RefreshVerdict,
} from "./refresh-policy.ts";

const idOf = (nodeId: string, key: PresentityKey) => JSON.stringify([nodeId, key.presentityUri, key.event]);

const UNREAD = { tracedSince: Number.POSITIVE_INFINITY, lastDeletedAt: undefined };

interface Owed {
  node: { id: string };
  key: PresentityKey;
  sources: readonly unknown[];
}

export class RefreshGate {
  /** Earliest death per refresh; null once a deletion without a death time joined it. */
  readonly #deathAt = new Map<string, number | null>();
  /** What the trace read found, by presentityKeyId; undefined = not read (not installed, or not needed). */
  #traces: Map<string, PresentityTrace> | undefined;
  /** Verdicts by reason, for the batch result and the bench. */
  readonly reasons: Record<string, number> = {};

  constructor(
    private readonly log: Pick<Telemetry, "count" | "info" | "warn">,
    private readonly nowMs: () => number,
    private readonly skewSeconds = DEFAULT_TRIGGER_SKEW_SECONDS,
  ) {}

  /**
   * A row of this presentity was deleted for this event. A closed connection died at its `at`;
   * a failed NOTIFY gives no death time (the failure itself may have been a NOTIFY-to-all).
   */
  died(nodeId: string, key: PresentityKey, event: KamailioEvent | undefined): void {
    const id = idOf(nodeId, key);
    const at = event?.type === "connection.closed" ? event.at : null;
    const known = this.#deathAt.get(id);
    if (known === null) return;
    this.#deathAt.set(id, at === null ? null : Math.min(at, known ?? at));
  }

  /**
   * Reads the trace for the refreshes it could spare: owed after deletions only, on a node whose
   * loop aborts, with a death time. A read that fails leaves them unread (they are sent).
   */
  async prepare<R extends Owed>(
    owed: readonly R[],
    factsOf: (r: R) => Promise<NodeFacts>,
    source: PresentityTraceSource | undefined,
  ): Promise<void> {
    if (!source) return;
    const keys = new Map<string, PresentityKey>();
    for (const r of owed) {
      if (r.sources.length > 0 || typeof this.#deathAt.get(idOf(r.node.id, r.key)) !== "number") continue;
      if (loopAborts((await factsOf(r)).kamailioVersion) !== true) continue;
      keys.set(presentityKeyId(r.key), r.key);
    }
    if (keys.size === 0) return;
    try {
      const read = await source.read([...keys.values()]);
      if (read.installed) this.#traces = read.byKey;
      if (read.installed) await source.prune();
    } catch (error) {
      this.log.warn("presentity trace unread; refreshing those presentities", { error: String(error) });
    }
  }

  /**
   * Once per batch, after the refreshes: RefreshSent / RefreshSkipped by reason (one metric record
   * per reason and batch, not per refresh: a dead BLF tab owes 100).
   */
  countReasons(): void {
    for (const [label, n] of Object.entries(this.reasons)) {
      const [verdict, reason = ""] = label.split(":");
      this.log.count(verdict === "sent" ? "RefreshSent" : "RefreshSkipped", n, { reason });
    }
  }

  /** True when the refresh is not sent (logged with its reason; counted by countReasons()). */
  skips(r: Owed, facts: NodeFacts): boolean {
    if (r.sources.length > 0) return false;
    const deathAt = this.#deathAt.get(idOf(r.node.id, r.key));
    const trace = this.#traces?.get(presentityKeyId(r.key));
    const verdict: RefreshVerdict = decideRefresh({
      version: facts.kamailioVersion,
      deathAt: deathAt ?? undefined,
      now: Math.floor(this.nowMs() / 1000),
      presentity: trace?.rows,
      skewSeconds: this.skewSeconds,
      // Installed but this key unread (a failed chunk, an unparsable URI): a trace that covers nothing.
      deletions: this.#traces ? (trace?.deletions ?? UNREAD) : undefined,
    });
    const label = `${verdict.refresh ? "sent" : "skipped"}:${verdict.reason}`;
    this.reasons[label] = (this.reasons[label] ?? 0) + 1;
    if (verdict.refresh) return false;
    this.log.info("refresh skipped", { node: r.node.id, ...r.key, reason: verdict.reason });
    return true;
  }
}
