/**
 * What becomes of one refresh (presence.refreshWatchers of one (node, presentity, event)), in pure
 * code shared by the worker and the sweep. Table-tested in test/unit/kernel/refresh-outcome.test.ts.
 */
import type { Fault } from "../classify.ts";

export type RefreshDecision = "ok" | "retry" | "follow-up" | "failed" | "degraded";

export function decideRefreshOutcome(
  fault: Fault | undefined,
  { askedByEvents, canFollowUp }: { askedByEvents: boolean; canFollowUp: boolean },
): RefreshDecision {
  if (!fault) return "ok";
  // The node refused it over its refresh budget (503): owed later whoever asked, never dropped;
  // retrying a source record would redo the refreshes it shares with others.
  if (fault.kind === "transient" && fault.overloaded && canFollowUp) return "follow-up";
  // Asked for by events (presence.changed, refresh.requested): retrying their records redoes it.
  if (fault.kind === "transient" && askedByEvents) return "retry";
  // Owed after deletions: a retry could not redo it (the rows are gone), a follow-up can.
  if (fault.kind === "transient" && canFollowUp) return "follow-up";
  if (fault.kind === "permanent") return "failed";
  // A refresh 500 (its meaning depends on the node's version) or a transient fault with no way to
  // owe it: the survivors get the state with the presentity's next change.
  return "degraded";
}
