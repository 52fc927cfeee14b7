/**
 * Back-off from a node that refused a refresh over its budget (kwc.cfg route KWC_REFRESH_BUDGET
 * answers 503; every caller of the node meets there). For the rest of the batch that node is sent
 * no refresh: each one it owes becomes a delayed refresh.requested follow-up, never a drop.
 */
import type { Fault } from "./classify.ts";

export class NodeBackOff {
  readonly #refused = new Map<string, Fault & { kind: "transient" }>();

  /** The node's refusal in this batch, if it refused one: the refresh is not sent. */
  refusal(nodeId: string): Fault | undefined {
    return this.#refused.get(nodeId);
  }

  /** Remembers an overloaded answer; other faults change nothing. */
  note(nodeId: string, fault: Fault | undefined): void {
    if (fault?.kind === "transient" && fault.overloaded) this.#refused.set(nodeId, fault);
  }
}

/** An overloaded refusal turns into a follow-up whoever asked for the refresh (events or deletions). */
export function isOverloaded(fault: Fault | undefined): boolean {
  return fault?.kind === "transient" && fault.overloaded === true;
}
