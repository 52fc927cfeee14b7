/**
 * Step 5: one refresh per (node, presentity, event). A refresh 500 reconciles that presentity once
 * (its WS watchers whose peer is not connected, judged after its rows were read) and refreshes once
 * more, never looping; what follows is decideRefreshOutcome's (kernel/refresh-outcome.ts).
 * Returns the follow-ups owed (refreshes after deletions that hit a transient fault).
 */
import { classifyRpcError, classifyStoreError, type Fault } from "../classify.ts";
import type { RefreshRequested } from "../contract.ts";
import type { NodeConfig } from "../fleet.ts";
import { refreshRequested } from "../follow-up.ts";
import { type ChosenRow, deleteGuarded } from "../kernel/delete-guarded.ts";
import { judgeRow, wsPeerKey } from "../kernel/guard.ts";
import { livePeers } from "../kernel/liveness.ts";
import { decideRefreshOutcome } from "../kernel/refresh-outcome.ts";
import { isOverloaded } from "../node-back-off.ts";
import { forEachBounded } from "../pool.ts";
import { type PresentityKey, scopeOf } from "../ports.ts";
import type { BatchContext } from "./context.ts";
import type { OwedRefresh } from "./refresh-set.ts";

export interface OwedFollowUp {
  event: RefreshRequested;
  causes: Set<string>;
}

export async function refreshAll(ctx: BatchContext): Promise<OwedFollowUp[]> {
  const owed: OwedFollowUp[] = [];
  await ctx.gate.prepare(ctx.refreshes.all(), (r) => ctx.facts.facts(r.node), ctx.store.presentityTrace);
  await forEachBounded(ctx.refreshes.all(), ctx.concurrency, async (r) => {
    if (ctx.gate.skips(r, await ctx.facts.facts(r.node)))
      return ctx.ledger.refreshed(r.node.id, r.key, "skipped");
    const fault = await refreshOnce(ctx, r);
    const decision = decideRefreshOutcome(fault, {
      askedByEvents: r.sources.length > 0,
      canFollowUp: ctx.followUps !== undefined,
    });
    const where = { node: r.node.id, ...r.key };
    const log = ctx.ledger.log;
    switch (decision) {
      case "ok":
        log.count("RefreshOk");
        return ctx.ledger.refreshed(r.node.id, r.key, "ok");
      case "retry":
        ctx.ledger.refreshed(r.node.id, r.key, "retry");
        return ctx.ledger.retry(
          r.sources,
          fault as Fault,
          `refresh of ${r.key.presentityUri} on ${r.node.id}`,
        );
      case "follow-up":
        log.warn("refresh after deletions failed transiently; sending a follow-up", {
          ...where,
          detail: fault?.detail,
        });
        if (isOverloaded(fault)) return void owed.push(ctx.backOff.followUp(r, ctx.clock.now()));
        owed.push({ event: refreshRequested(r.node.id, r.key, ctx.clock.now()), causes: r.causes });
        return;
      case "failed":
        log.count("RefreshFailed");
        log.error("refresh failed", { ...where, detail: fault?.detail });
        return ctx.ledger.refreshed(r.node.id, r.key, "failed");
      case "degraded":
        log.count("RefreshDegraded");
        log.warn("refresh degraded", {
          ...where,
          detail: fault?.detail,
          meaning:
            fault?.kind === "refresh-fault" ? fault.meaning : "node unreachable after the rows were deleted",
        });
        return ctx.ledger.refreshed(r.node.id, r.key, "degraded");
    }
  });
  return owed;
}

async function refreshOnce(ctx: BatchContext, r: OwedRefresh): Promise<Fault | undefined> {
  // Past the batch's deadline nothing new starts: owed after deletions it becomes a follow-up,
  // asked for by events its records are retried (decideRefreshOutcome).
  if (ctx.clock.now() >= ctx.deadline)
    return { kind: "transient", detail: "the invocation's time budget ran out before this refresh" };
  const facts = await ctx.facts.facts(r.node);
  const attempt = () =>
    ctx.backOff.attempt(
      r.node.id,
      () => ctx.kamailio.refreshWatchers(r.node, r.key.presentityUri, r.key.event),
      (error) => classifyRpcError(error, "presence.refreshWatchers", facts, ctx.engine),
    );
  const fault = await attempt();
  if (fault?.kind !== "refresh-fault" || facts.subsDbMode !== 3) return fault;
  ctx.ledger.log.warn("refresh failed; reconciling the presentity once", {
    node: r.node.id,
    ...r.key,
    meaning: fault.meaning,
  });
  try {
    await reconcileOnce(ctx, r.node, r.key);
  } catch (error) {
    return classifyStoreError(error);
  }
  return attempt();
}

/**
 * Deletes the presentity's WebSocket watchers whose peer is not connected now (the live set is
 * asked after its rows were read). A row that names no WS peer has no connection to look for and
 * stays; so does a row whose peer is connected.
 */
async function reconcileOnce(ctx: BatchContext, node: NodeConfig, key: PresentityKey): Promise<void> {
  const scope = scopeOf(node);
  const rows = await ctx.store.selectByPresentity(scope, key);
  const live = await livePeers(ctx.kamailio, node);
  const chosen: ChosenRow[] = [];
  for (const row of rows) {
    if (wsPeerKey(row.contact, node.contactStyle) === undefined) continue;
    const verdict = judgeRow(row, { by: "sweep" }, live, node.contactStyle);
    if (verdict.delete) chosen.push({ row, reason: "reconcile.refresh-failed", peer: verdict.peer });
  }
  const criteria = {
    peers: [],
    dialogs: [],
    contacts: { ...key, contacts: [...new Set(chosen.map((c) => c.row.contact))] },
  };
  const deleted = await deleteGuarded(ctx.ledger.log, node, "worker", chosen, async (ids) =>
    (await ctx.store.deleteWatchers(scope, ids, criteria)).map((id) => ({ id })),
  );
  ctx.ledger.result.deleted += deleted.length;
}
