/**
 * Step 4: presence fan-out. One query over the node tables finds who watches each changed
 * presentity; each such node (unless it alone posted the change) owes a refresh. A transient
 * fault retries the changes' records; a permanent one dead-letters them (never dropped).
 */
import { classifyStoreError } from "../classify.ts";
import { findNode } from "../fleet.ts";
import { fanoutTargets, type Plan } from "../plan.ts";
import { scopeOf } from "../ports.ts";
import type { BatchContext } from "./context.ts";

export async function fanOut(ctx: BatchContext, fanout: Plan["fanout"]): Promise<void> {
  if (fanout.size === 0) return;
  const works = [...fanout.values()];
  const sources = works.flatMap((f) => f.sources);
  try {
    const watching = await ctx.store.findWatchingScopes(
      ctx.fleet.nodes.map(scopeOf),
      works.map((f) => f.key),
    );
    for (const work of works) {
      for (const nodeId of fanoutTargets(work, watching)) {
        const node = findNode(ctx.fleet, nodeId);
        if (node) ctx.refreshes.add(node, work.key, work.sources);
      }
    }
  } catch (error) {
    const fault = classifyStoreError(error);
    if (fault.kind !== "permanent") return ctx.ledger.retry(sources, fault, "fan-out lookup");
    ctx.ledger.log.error("fan-out lookup failed permanently", { detail: fault.detail });
    ctx.ledger.deadLetter(sources, `fan-out lookup failed: ${fault.detail}`);
  }
}
