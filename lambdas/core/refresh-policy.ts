/**
 * Refresh only what may have starved. After the worker deletes a dead connection's rows of one
 * (presentity, event), a refresh is owed only if a survivor may have missed a NOTIFY: a
 * NOTIFY-to-all was sent while the dead row still existed (between the death and the delete),
 * and only on versions whose synchronous NOTIFY loop aborts at a dead watcher (GH #4118: 5.6.x,
 * 5.7.x, 5.8.0-5.8.5). Pure; table-tested in test/unit/refresh/refresh-policy.test.ts.
 *
 * What sends a NOTIFY to all watchers, and what trace each leaves:
 * - PUBLISH, refresh PUBLISH (no body change): the presentity row's received_time (1 s resolution,
 *   the clock of the node that took it) is at or after the death.
 * - presentity expiry (clean timer NOTIFYs all, then deletes the row): a row with expires at or
 *   before now is still visible until it is deleted; once deleted, no trace.
 * - PUBLISH with Expires: 0: deletes the row; no trace.
 * - presence.refreshWatchers / updateWatchers: received_time untouched; no trace. (The service's
 *   own refresh on an aborting version answers 500 and reconciles the presentity itself.)
 * A trigger with no trace cannot be ruled out when the presentity has no row now (its last row may
 * have expired or been unpublished in the window), nor when it has rows: another row of it (a
 * second device's PUBLISH) may have expired or been unpublished in the window. So "no trigger" is
 * concluded only where row deletions are traced (`deletionsTraced`, a node-side record of
 * expiries and Expires: 0, which kwc.cfg does not keep yet); elsewhere the presentity is
 * refreshed, never guessed. The version rule needs no trace.
 */

export type RefreshReason =
  | "version-unknown" // the node's version is not known: assume its loop aborts
  | "no-death-time" // notify.failed, reconciler, on-demand cleanup, kwc: no death time to bound the window
  | "presentity-unread" // the presentity table could not be read for it
  | "presentity-absent" // no row now: an expiry or Expires: 0 in the window leaves no trace
  | "published-since-death" // received_time at or after the death (PUBLISH or refresh PUBLISH)
  | "expired-since-death" // a row past its expires: the clean timer NOTIFYs all before deleting it
  | "untraced-deletion"; // rows present, none a trigger, but a row deleted in the window leaves no trace

export type SkipReason =
  | "version-continues" // 5.8.6+, 6.x: the loop goes on past a dead watcher, nobody starved
  | "no-trigger"; // rows present, none published since the death, none expired

export type RefreshVerdict =
  | { refresh: true; reason: RefreshReason }
  | { refresh: false; reason: SkipReason };

/** One presentity row now (epoch seconds, the clock of the node that took the PUBLISH). */
export interface PresentityRowTrace {
  receivedTime: number;
  expires: number;
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
  /** Seconds of clock difference allowed between the fleet's nodes and the worker. */
  skewSeconds: number;
  /** Whether presentity row deletions (expiry, Expires: 0) in the window are known; default false. */
  deletionsTraced?: boolean;
}

/** Seconds allowed between clocks (nodes' time(), the worker's) plus received_time's 1 s resolution. */
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
  // Without a trace of deletions the rows cannot clear it: the worker does not read them then.
  if (input.presentity === undefined)
    return { refresh: true, reason: input.deletionsTraced ? "presentity-unread" : "untraced-deletion" };
  if (input.presentity.length === 0 && !input.deletionsTraced)
    return { refresh: true, reason: "presentity-absent" };
  const since = input.deathAt - input.skewSeconds;
  if (input.presentity.some((r) => r.receivedTime >= since))
    return { refresh: true, reason: "published-since-death" };
  if (input.presentity.some((r) => r.expires <= input.now + input.skewSeconds))
    return { refresh: true, reason: "expired-since-death" };
  if (!input.deletionsTraced) return { refresh: true, reason: "untraced-deletion" };
  return { refresh: false, reason: "no-trigger" };
}
