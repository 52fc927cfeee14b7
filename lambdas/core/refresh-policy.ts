/**
 * Refresh only what may have starved. After the worker deletes a dead connection's rows of one
 * (presentity, event), a refresh is owed only if a survivor may have missed a NOTIFY: a
 * NOTIFY-to-all was sent while the dead row still existed (between the death and the delete),
 * and only on versions whose synchronous NOTIFY loop aborts at a dead watcher (GH #4118: 5.6.x,
 * 5.7.x, 5.8.0-5.8.5). Pure; table-tested in test/unit/refresh/refresh-policy.test.ts, and on
 * real 5.6.3 in test/integration/worker/refresh-policy.test.ts.
 *
 * Which loop aborts (5.6.3-5.8.5 presence/notify.c): query_db_notify(), used by
 * presence.refreshWatchers / updateWatchers (and winfo), stops at the first failed NOTIFY;
 * publ_notify(), used by a PUBLISH, a refresh PUBLISH, Expires: 0 and the clean timer's expiry,
 * logs it and goes on. So a change taken by THIS node reaches its survivors; the same change taken
 * by ANOTHER node (shared presentity table) reaches this node's watchers only through the
 * service's refreshWatchers (presence.changed fan-out), which stops at the dead row. That fan-out
 * reconciles and refreshes again on its 500, but may end deferred or degraded; the refresh after
 * the delete is the guarantee. A state change cannot be tied to a node, so any change in the
 * window counts. The trace each change leaves:
 * - PUBLISH, refresh PUBLISH (no body change): the presentity row's received_time (1 s resolution,
 *   the clock of the node that took it) is at or after the death.
 * - presentity expiry: the clean timer (sync mode) NOTIFYs all, then DELETEs the row. While the row
 *   is there its expires is at or before now; once deleted, the deletion trace (below) holds it.
 * - PUBLISH with Expires: 0: NOTIFYs all, then DELETEs the row: the deletion trace.
 * - presence.refreshWatchers / updateWatchers: no trace (received_time untouched). It re-sends the
 *   current state, so a survivor that misses it still holds that state unless the state changed in
 *   the window, which is one of the traced changes above. (updateWatchers re-applies authorization
 *   rules; kamailio.cfg runs presence_xml with force_active=1, so there are none to change.)
 * The deletion trace (`kwc db trace`, lambdas/core/sql/presentity-trace.ts) is an AFTER DELETE
 * trigger on `presentity` recording each (username, domain, event)'s last row deletion in the
 * database's clock. Without it a deletion in the window cannot be ruled out, neither when the
 * presentity has no row now nor when it has rows (a second device's row may have gone), so the
 * presentity is refreshed, never guessed. The version rule needs no trace.
 */

export type RefreshReason =
  | "version-unknown" // the node's version is not known: assume its loop aborts
  | "no-death-time" // notify.failed, reconciler, on-demand cleanup, kwc: no death time to bound the window
  | "presentity-unread" // the presentity table could not be read for it
  | "presentity-absent" // no row now, deletions not traced: an expiry or Expires: 0 may have been in the window
  | "published-since-death" // received_time at or after the death (PUBLISH or refresh PUBLISH)
  | "expired-since-death" // a row past its expires: the clean timer NOTIFYs all before deleting it
  | "deleted-since-death" // the trace holds a deletion at or after the death (expiry, Expires: 0)
  | "trace-after-death" // the trace began (or was pruned) after the death: the window is not covered
  | "untraced-deletion"; // rows present, none a trigger, but a row deleted in the window leaves no trace

export type SkipReason =
  | "version-continues" // 5.8.6+, 6.x: the loop goes on past a dead watcher, nobody starved
  | "no-trigger"; // no PUBLISH, expiry or deletion of the presentity since the death

export type RefreshVerdict =
  | { refresh: true; reason: RefreshReason }
  | { refresh: false; reason: SkipReason };

/** One presentity row now (epoch seconds, the clock of the node that took the PUBLISH). */
export interface PresentityRowTrace {
  receivedTime: number;
  expires: number;
}

/** What the deletion trace says about one presentity (epoch seconds, the database's clock). */
export interface DeletionTrace {
  /** Every deletion since this time is recorded: the trace's start, or its prune horizon if later. */
  tracedSince: number;
  /** The last deletion of a row of this (presentity, event); undefined = none since tracedSince. */
  lastDeletedAt: number | undefined;
}

export interface RefreshPolicyInput {
  /** The node's Kamailio version (x.y.z, from its status endpoint). */
  version: string | undefined;
  /** Epoch s: the earliest death among the deleted rows of this presentity; undefined = none known. */
  deathAt: number | undefined;
  /** Epoch s: after the delete (the worker's clock). */
  now: number;
  /** The presentity's rows read after the delete; undefined = not read. */
  presentity: readonly PresentityRowTrace[] | undefined;
  /** Seconds of clock difference allowed between the fleet's nodes, the database and the worker. */
  skewSeconds: number;
  /** The deletion trace, read with the rows; undefined = not installed (or not readable). */
  deletions?: DeletionTrace | undefined;
}

/** Seconds allowed between clocks (nodes' time(), the database's, the worker's) plus received_time's 1 s resolution. */
export const DEFAULT_TRIGGER_SKEW_SECONDS = 3;

/** Whether the synchronous NOTIFY loop of this version stops at a dead watcher (GH #4118). */
export function loopAborts(version: string | undefined): boolean | undefined {
  const m = version?.match(/^(\d+)\.(\d+)\.(\d+)/);
  if (!m) return undefined;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (major !== 5) return major < 5;
  if (minor < 8) return true;
  return minor === 8 && patch <= 5;
}

export function decideRefresh(input: RefreshPolicyInput): RefreshVerdict {
  const aborts = loopAborts(input.version);
  if (aborts === undefined) return { refresh: true, reason: "version-unknown" };
  if (!aborts) return { refresh: false, reason: "version-continues" };
  if (input.deathAt === undefined) return { refresh: true, reason: "no-death-time" };
  const { deletions } = input;
  // Without a trace of deletions the rows cannot clear it: the worker does not read them then.
  if (input.presentity === undefined)
    return { refresh: true, reason: deletions ? "presentity-unread" : "untraced-deletion" };
  if (input.presentity.length === 0 && !deletions) return { refresh: true, reason: "presentity-absent" };
  const since = input.deathAt - input.skewSeconds;
  if (input.presentity.some((r) => r.receivedTime >= since))
    return { refresh: true, reason: "published-since-death" };
  if (input.presentity.some((r) => r.expires <= input.now + input.skewSeconds))
    return { refresh: true, reason: "expired-since-death" };
  if (!deletions) return { refresh: true, reason: "untraced-deletion" };
  if (since < deletions.tracedSince) return { refresh: true, reason: "trace-after-death" };
  if (deletions.lastDeletedAt !== undefined && deletions.lastDeletedAt >= since)
    return { refresh: true, reason: "deleted-since-death" };
  return { refresh: false, reason: "no-trigger" };
}
