/**
 * Which events may act at all, before any row is read (pure). A deleting event (connection.closed,
 * notify.failed) acts only when it is fresh and comes from the node's current boot:
 *   - `at` older than the freshness window, or in the future, is ignored: a DLQ redrive days later
 *     or a forged timestamp cannot delete what the reconciler would judge anew;
 *   - a boot id other than the node's current one is ignored (boot ids have no order: compared
 *     for equality only); that boot's rows are the reconciler's job (rows carry no boot).
 * Ignored events are counted and audited, never dead-lettered: they are not malformed.
 */
import type { KamailioEvent } from "../contract.ts";

export interface Freshness {
  /** Oldest `at` acted on, in seconds before now. */
  maxAgeSeconds: number;
  /** Clock skew tolerated for an `at` in the future, in seconds. */
  maxFutureSeconds: number;
}

/** An hour covers SQS's retries (maxReceiveCount × visibility timeout) with room to spare. */
export const DEFAULT_FRESHNESS: Freshness = { maxAgeSeconds: 3600, maxFutureSeconds: 300 };

export type IgnoreKind = "boot" | "freshness" | "no-version";

/** True for the event types that can delete rows. */
export function isDeleting(event: KamailioEvent): boolean {
  return event.type === "connection.closed" || event.type === "notify.failed";
}

/** Why a deleting event is too old or from the future to act on; undefined when it is fresh. */
export function freshnessProblem(event: KamailioEvent, nowMs: number, f: Freshness): string | undefined {
  if (!isDeleting(event)) return undefined;
  const now = nowMs / 1000;
  if (event.at < now - f.maxAgeSeconds)
    return `event at ${event.at} is older than the freshness window (${f.maxAgeSeconds} s before ${Math.floor(now)})`;
  if (event.at > now + f.maxFutureSeconds)
    return `event at ${event.at} is in the future (now ${Math.floor(now)}, tolerance ${f.maxFutureSeconds} s)`;
  return undefined;
}

/** Why an event's boot does not allow it to act on the node's rows now; undefined when it does. */
export function bootProblem(eventBoot: string, currentBoot: string | undefined): string | undefined {
  if (currentBoot === undefined)
    return "the node's status reports no boot id (a kwc.cfg older than its KWC_INIT route?)";
  return eventBoot === currentBoot
    ? undefined
    : `event of boot ${eventBoot}, node now at boot ${currentBoot}`;
}
