/**
 * The guarded DELETE repeats, as SQL, the key each row was selected by (its peer's LIKE shapes,
 * or its dialog and version). One statement over every key of a mass disconnect outgrows the
 * Data API's 65,536-character SQL limit: the bench measured 154,576 characters for 450 peers,
 * answered `BadRequestException: sql: Too big`, and the batch went to the DLQ
 * (bench/mass-disconnect.ts). So the delete goes in groups of at most KEYS_PER_DELETE keys, each
 * with only the ids of its own rows: the same guard, row by row, in bounded statements.
 */
import type { Match } from "../kernel/guard.ts";
import { type Peer, peerKey } from "../peer.ts";
import { dialogKeyId } from "../plan.ts";
import type { DialogMatch, WatcherCriteria, WatcherRow } from "../ports.ts";
import { chunk } from "../sql.ts";

/** Keys (peers or dialogs) in one guarded DELETE: ~17 KB of predicate for 50 peers. */
export const KEYS_PER_DELETE = 50;

export interface DeleteGroup {
  ids: number[];
  criteria: WatcherCriteria;
}

type Selected = { row: Pick<WatcherRow, "id" | "callId" | "toTag" | "fromTag">; match: Match };

/** Groups rows chosen for deletion by the key that selected them, KEYS_PER_DELETE keys a group. */
export function deleteGroups(chosen: readonly Selected[]): DeleteGroup[] {
  const byPeer = new Map<string, { peer: Peer; ids: number[] }>();
  const byDialog = new Map<string, { dialog: DialogMatch; ids: number[] }>();
  for (const { row, match } of chosen) {
    if (match.by === "peer") {
      const key = peerKey(match.peer);
      const entry = byPeer.get(key) ?? { peer: match.peer, ids: [] };
      entry.ids.push(row.id);
      byPeer.set(key, entry);
    } else if (match.by === "dialog") {
      const dialog = { callId: row.callId, toTag: row.toTag, fromTag: row.fromTag, version: match.version };
      const key = `${dialogKeyId(dialog)}@${match.version}`;
      const entry = byDialog.get(key) ?? { dialog, ids: [] };
      entry.ids.push(row.id);
      byDialog.set(key, entry);
    }
  }
  // The common small batch: one statement for its peers and dialogs together.
  if (byPeer.size + byDialog.size <= KEYS_PER_DELETE) {
    const all = [...byPeer.values(), ...byDialog.values()];
    if (all.length === 0) return [];
    return [
      {
        ids: all.flatMap((e) => e.ids),
        criteria: {
          peers: [...byPeer.values()].map((p) => p.peer),
          dialogs: [...byDialog.values()].map((d) => d.dialog),
        },
      },
    ];
  }
  return [
    ...chunk([...byPeer.values()], KEYS_PER_DELETE).map((part) => ({
      ids: part.flatMap((p) => p.ids),
      criteria: { peers: part.map((p) => p.peer), dialogs: [] },
    })),
    ...chunk([...byDialog.values()], KEYS_PER_DELETE).map((part) => ({
      ids: part.flatMap((d) => d.ids),
      criteria: { peers: [], dialogs: part.map((d) => d.dialog) },
    })),
  ];
}
