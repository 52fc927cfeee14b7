/**
 * Follow-up refreshes: when a refresh after deletions hits a transient fault, the rows that named
 * the presentity are gone, so a retry of the source record could not redo it. The refresh owed is
 * posted as refresh.requested events to the service's own events queue instead. Pure helpers.
 */
import { ENVELOPE_MAX_BYTES, type Envelope, type RefreshRequested } from "./contract.ts";
import type { PresentityKey } from "./ports.ts";

/**
 * Events per envelope: a refresh.requested is at most ~450 bytes (presentity ≤ 255, event ≤ 64,
 * node ≤ 63), so 100 of them stay well below ENVELOPE_MAX_BYTES.
 */
export const FOLLOW_UPS_PER_ENVELOPE = 100;

/** Default delay of a follow-up in the queue, so that a Kamailio blip can pass. */
export const FOLLOW_UP_DELAY_SECONDS = 30;

export function refreshRequested(nodeId: string, key: PresentityKey, atMs: number): RefreshRequested {
  return {
    type: "refresh.requested",
    node: nodeId,
    presentity: key.presentityUri,
    event: key.event,
    reason: "refresh-failed",
    attempt: 1,
    at: Math.floor(atMs / 1000),
  };
}

/** One message body per envelope, duplicates (node, presentity, event) coalesced. */
export function followUpBodies(events: readonly RefreshRequested[]): string[] {
  const unique = new Map<string, RefreshRequested>();
  for (const e of events) unique.set(JSON.stringify([e.node, e.presentity, e.event]), e);
  const all = [...unique.values()];
  const bodies: string[] = [];
  for (let i = 0; i < all.length; i += FOLLOW_UPS_PER_ENVELOPE) {
    const envelope: Envelope = { v: 1, events: all.slice(i, i + FOLLOW_UPS_PER_ENVELOPE) };
    const body = JSON.stringify(envelope);
    if (Buffer.byteLength(body) > ENVELOPE_MAX_BYTES) throw new Error("follow-up envelope too large");
    bodies.push(body);
  }
  return bodies;
}
