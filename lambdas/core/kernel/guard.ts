/**
 * The guard every deleting path applies to a candidate row, in pure code: the safety rules of
 * "never delete a live watcher" live here once (docs/worker.md "Safety rules").
 *   1. A row whose WebSocket peer is connected now is never deleted, however it was matched.
 *   2. A peer match selects only rows whose contact names that WS/WSS peer (contactPeer): a UDP
 *      or TCP row naming the same address, or a row naming no peer, is never deleted by it.
 *   3. A dialog-key match (notify.failed) deletes only while the row's `version` still equals the
 *      one the failed NOTIFY carried: a re-SUBSCRIBE since then bumped it and the row stays.
 */
import type { ContactStyle } from "../fleet.ts";
import { contactPeer, type Peer, peerKey } from "../peer.ts";
import type { WatcherRow } from "../ports.ts";

/** How a candidate row was found. */
export type Match =
  | { by: "peer"; peer: Peer }
  | { by: "dialog"; version: number | undefined }
  /** The sweep's own rule (its peer is not connected, or it expired), or a by-hand request. */
  | { by: "sweep"; includeLive?: boolean };

/** Why a candidate row stays. */
export type KeepReason = "live" | "no-peer" | "changed" | "no-match";

export type Verdict = { delete: true; peer: string | undefined } | { delete: false; why: KeepReason };

/** The peerKey() of the WS/WSS peer a contact names, or undefined when it names none. */
export function wsPeerKey(contact: string, style: ContactStyle): string | undefined {
  const peer = contactPeer(contact, style);
  return peer ? peerKey(peer) : undefined;
}

/** Decides one candidate row against the peers connected to its node now (read after the rows). */
export function judgeRow(
  row: Pick<WatcherRow, "contact" | "version">,
  match: Match,
  live: ReadonlySet<string>,
  style: ContactStyle,
): Verdict {
  const peer = wsPeerKey(row.contact, style);
  if (match.by === "peer") {
    if (peer === undefined) return { delete: false, why: "no-peer" };
    if (peer !== peerKey(match.peer)) return { delete: false, why: "no-match" };
  }
  if (match.by === "dialog" && (match.version === undefined || row.version !== match.version))
    return { delete: false, why: "changed" };
  if (peer !== undefined && live.has(peer) && !(match.by === "sweep" && match.includeLive))
    return { delete: false, why: "live" };
  return { delete: true, peer };
}
