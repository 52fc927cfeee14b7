/**
 * Back-off from a node that refused a refresh over its budget (kwc.cfg route KWC_REFRESH_BUDGET
 * answers 503; every caller of the node meets there). For the rest of the batch that node is sent
 * no refresh: each one it owes becomes a delayed refresh.requested follow-up, never a drop.
 */
import type { Fault } from "./classify.ts";
import type { RefreshRequested } from "./contract.ts";
import { refreshRequested } from "./follow-up.ts";
import type { PresentityKey, Telemetry } from "./ports.ts";

/** An overloaded refusal turns into a follow-up whoever asked for the refresh (events or deletions). */
export function isOverloaded(fault: Fault | undefined): boolean {
  return fault?.kind === "transient" && fault.overloaded === true;
}

export interface BackedOffRefresh {
  node: { id: string };
  key: PresentityKey;
  sources: readonly { messageId: string }[];
  causes: ReadonlySet<string>;
}

export class NodeBackOff {
  readonly #refused = new Map<string, Fault>();

  constructor(private readonly log: Pick<Telemetry, "count">) {}

  /**
   * Sends one refresh unless the node refused one earlier in this batch (then it is not sent and
   * that refusal is its fault); an overloaded answer is remembered for the node.
   */
  async attempt(
    nodeId: string,
    send: () => Promise<void>,
    classify: (error: unknown) => Fault,
  ): Promise<Fault | undefined> {
    const refused = this.#refused.get(nodeId);
    if (refused) {
      this.log.count("RefreshBackedOff");
      return refused;
    }
    try {
      await send();
      return undefined;
    } catch (error) {
      const fault = classify(error);
      if (isOverloaded(fault)) {
        this.log.count("RefreshRefusedByNode");
        this.#refused.set(nodeId, fault);
      }
      return fault;
    }
  }

  /**
   * The follow-up owed for a refused refresh. Its causes are the records that deleted rows and
   * the events that asked for it: if the follow-up cannot be sent, those are retried. Retrying a
   * source record instead would redo the refreshes it shares with others on an overloaded node.
   */
  followUp(r: BackedOffRefresh, nowMs: number): { event: RefreshRequested; causes: Set<string> } {
    return {
      event: refreshRequested(r.node.id, r.key, nowMs),
      causes: new Set([...r.causes, ...r.sources.map((s) => s.messageId)]),
    };
  }
}
