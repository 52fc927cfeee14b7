/**
 * Step 6: follow-ups. Refreshes owed after deletions are posted as refresh.requested; a send that
 * fails keeps them here (instance memory) for the next batch, and retries the records that deleted
 * the rows, so nothing is dropped.
 */
import type { RefreshRequested } from "../contract.ts";
import type { FollowUpSink, Telemetry } from "../ports.ts";
import type { BatchLedger } from "./ledger.ts";
import type { OwedFollowUp } from "./refresh-all.ts";

const idOf = (e: RefreshRequested) => JSON.stringify([e.node, e.presentity, e.event]);

export class PendingFollowUps {
  readonly #pending = new Map<string, RefreshRequested>();

  constructor(
    private readonly sink: FollowUpSink | undefined,
    private readonly log: Telemetry,
  ) {}

  /** Sends what an earlier batch of this instance could not. */
  async flush(ledger: BatchLedger): Promise<void> {
    if (this.#pending.size > 0) await this.#send([...this.#pending.values()], ledger);
  }

  /** Sends the refreshes owed by this batch; retries their causes if that fails. */
  async send(owed: readonly OwedFollowUp[], ledger: BatchLedger): Promise<void> {
    if (owed.length === 0) return;
    const sent = await this.#send(
      owed.map((o) => o.event),
      ledger,
    );
    for (const o of owed) {
      ledger.refreshed(
        o.event.node,
        { presentityUri: o.event.presentity, event: o.event.event },
        sent ? "deferred" : "retry",
      );
      if (!sent) ledger.retryIds(o.causes);
    }
  }

  async #send(events: RefreshRequested[], ledger: BatchLedger): Promise<boolean> {
    if (!this.sink || events.length === 0) return false;
    try {
      await this.sink.send(events);
    } catch (error) {
      for (const e of events) this.#pending.set(idOf(e), e);
      this.log.error("follow-up send failed; keeping the refreshes owed for the next batch", {
        error: String(error),
        followUps: events,
      });
      return false;
    }
    for (const e of events) this.#pending.delete(idOf(e));
    ledger.result.followUps.push(...events);
    this.log.count("RefreshDeferred", events.length);
    return true;
  }
}
