/**
 * The guarded delete every path ends in (worker, reconcile-once, reconciler, on-demand cleanup,
 * `kwc`): the port deletes by id AND the same predicate the rows were chosen by (a row rewritten
 * in between no longer matches and stays); then, for each row really deleted, one
 * `watcher.deleted` audit record and the RowsDeleted metric. Returns what was deleted.
 */
import type { NodeConfig } from "../fleet.ts";
import type { SourcedEvent } from "../plan.ts";
import type { AuditRecord, DeletedBy, Telemetry, WatcherRow } from "../ports.ts";

/** What an audit record needs of a row (the sweep does not read the watcher until the delete). */
export type AuditedRow = Pick<
  WatcherRow,
  "id" | "presentityUri" | "event" | "contact" | "callId" | "toTag" | "fromTag"
> &
  Partial<Pick<WatcherRow, "watcherUsername" | "watcherDomain">>;

/** A row chosen for deletion, with what its audit record will say. */
export interface ChosenRow {
  row: AuditedRow;
  reason: AuditRecord["reason"];
  source?: SourcedEvent | undefined;
  /** peerKey() of the WS peer its contact names. */
  peer?: string | undefined;
}

/** A deleted row as the store confirms it (the watcher when the store read it with the delete). */
export interface DeletedRow {
  id: number;
  watcherUsername?: string;
  watcherDomain?: string;
}

/** The node as an audit record names it (the sweep's node config has the same two fields). */
type AuditedNode = Pick<NodeConfig, "id" | "watchersTable">;

export function auditRecord(
  node: AuditedNode,
  chosen: ChosenRow,
  deletedBy: DeletedBy,
  deleted?: DeletedRow,
): AuditRecord {
  const { row, source } = chosen;
  const username = deleted?.watcherUsername ?? row.watcherUsername;
  const domain = deleted?.watcherDomain ?? row.watcherDomain;
  const record: AuditRecord = {
    action: "watcher.deleted",
    node: node.id,
    table: node.watchersTable,
    rowId: row.id,
    dialog: { callId: row.callId, toTag: row.toTag, fromTag: row.fromTag },
    presentity: row.presentityUri,
    event: row.event,
    contact: row.contact,
    reason: chosen.reason,
    deletedBy,
  };
  if (username !== undefined && domain !== undefined) record.watcher = `sip:${username}@${domain}`;
  if (chosen.peer) record.peer = chosen.peer;
  if (source) {
    record.sourceMessageId = source.messageId;
    record.sourceEvent = source.event;
    if (source.event.type === "connection.closed") record.cause = source.event.cause;
    if (source.event.type === "notify.failed") record.notifyCode = source.event.code;
  }
  return record;
}

export async function deleteGuarded(
  telemetry: Telemetry,
  node: AuditedNode,
  deletedBy: DeletedBy,
  chosen: readonly ChosenRow[],
  deleteByIdAndPredicate: (ids: number[]) => Promise<readonly DeletedRow[]>,
): Promise<ChosenRow[]> {
  if (chosen.length === 0) return [];
  const byId = new Map(chosen.map((c) => [c.row.id, c]));
  const confirmed = await deleteByIdAndPredicate([...byId.keys()]);
  const out: ChosenRow[] = [];
  for (const d of confirmed) {
    const c = byId.get(d.id);
    if (!c) continue;
    byId.delete(d.id);
    telemetry.audit(auditRecord(node, c, deletedBy, d));
    out.push(c);
  }
  if (out.length > 0) telemetry.count("RowsDeleted", out.length);
  return out;
}
