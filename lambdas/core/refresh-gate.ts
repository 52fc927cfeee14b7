/**
 * Applies the refresh policy (refresh-policy.ts) to the refreshes a batch owes after deletions:
 * remembers each deleted row's death time per (node, presentity, event), and before a refresh is
 * sent says whether it may be skipped, counting refreshes sent and skipped with the reason.
 * A refresh asked for by events (presence.changed fan-out, refresh.requested) is never skipped:
 * it carries a new state to other nodes' watchers, or a refresh owed from before.
 */
import type { KamailioEvent } from "./contract.ts";
import type { NodeFacts } from "./fleet.ts";
import type { PresentityKey, Telemetry } from "./ports.ts";
import { DEFAULT_TRIGGER_SKEW_SECONDS, decideRefresh, type RefreshVerdict } from "./refresh-policy.ts";

const idOf = (nodeId: string, key: PresentityKey) => JSON.stringify([nodeId, key.presentityUri, key.event]);

export class RefreshGate {
  /** Earliest death per refresh; null once a deletion without a death time joined it. */
  readonly #deathAt = new Map<string, number | null>();
  /** Verdicts by reason, for the batch result and the bench. */
  readonly reasons: Record<string, number> = {};

  constructor(
    private readonly log: Pick<Telemetry, "count" | "info">,
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

  /** True when the refresh is not sent (counted RefreshSkipped, reason logged). */
  skips(
    r: { node: { id: string }; key: PresentityKey; sources: readonly unknown[] },
    facts: NodeFacts,
  ): boolean {
    if (r.sources.length > 0) return false;
    const deathAt = this.#deathAt.get(idOf(r.node.id, r.key));
    const verdict: RefreshVerdict = decideRefresh({
      version: facts.kamailioVersion,
      deathAt: deathAt ?? undefined,
      now: Math.floor(this.nowMs() / 1000),
      presentity: undefined,
      skewSeconds: this.skewSeconds,
    });
    const label = `${verdict.refresh ? "sent" : "skipped"}:${verdict.reason}`;
    this.reasons[label] = (this.reasons[label] ?? 0) + 1;
    if (verdict.refresh) return false;
    this.log.count("RefreshSkipped");
    this.log.info("refresh skipped", { node: r.node.id, ...r.key, reason: verdict.reason });
    return true;
  }
}
