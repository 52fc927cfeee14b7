/**
 * The worker store's reads, in byte-sized pages (core/sql/byte-pages.ts) and, where the node table
 * has a valid peer index, driven by it. Without the index the reads scan the table as before and
 * say so once per detection (the `onScan` hook; `kwc nodes check` recommends `kwc db migrate`).
 */
import type { NodeScope, PresentityKey, WatcherCriteria, WatcherRow } from "../core/ports.ts";
import {
  bytePageStatement,
  candidatePageStatement,
  indexedDeleteStatement,
  PAGE_BUDGET_BYTES,
} from "../core/sql/byte-pages.ts";
import type { Dialect } from "../core/sql.ts";
import {
  presentityKeyClause,
  rowFromRecord,
  type Statement,
  socketInfoClause,
  WATCHER_COLUMNS,
} from "../core/watcher-sql.ts";
import type { PeerIndexDetector } from "./peer-index.ts";

type Execute = (statement: Statement) => Promise<{ records: unknown[][]; updated?: number }>;

/** Reads every byte-sized page: a page holding all `total` rows left is the last one. */
export async function readByBytes(
  execute: Execute,
  page: (afterId: number) => Statement,
): Promise<WatcherRow[]> {
  const rows: WatcherRow[] = [];
  let afterId = 0;
  for (;;) {
    const { records } = await execute(page(afterId));
    const total = Number(records[0]?.[WATCHER_COLUMNS.length] ?? 0);
    for (const record of records) rows.push(rowFromRecord(record));
    const last = rows.at(-1);
    if (records.length === 0 || records.length >= total || !last) return rows;
    afterId = last.id;
  }
}

export class WatcherPages {
  constructor(
    private readonly execute: Execute,
    private readonly dialect: Dialect,
    private readonly peerIndex: PeerIndexDetector | undefined,
    private readonly budget = PAGE_BUDGET_BYTES,
  ) {}

  /** Candidate rows of one criteria part (peers through the index when there is a valid one). */
  async candidates(scope: NodeScope, criteria: WatcherCriteria): Promise<WatcherRow[]> {
    const peers: WatcherCriteria = { peers: criteria.peers, dialogs: [] };
    const rest: WatcherCriteria = { ...criteria, peers: [] };
    const read = (part: WatcherCriteria, indexed: boolean) =>
      readByBytes(this.execute, (after) =>
        candidatePageStatement(this.dialect, scope, part, after, indexed, this.budget),
      );
    const indexed =
      criteria.peers.length > 0 && this.peerIndex ? await this.peerIndex.hasValidIndex(scope.table) : false;
    if (!indexed) return read(criteria, false);
    let rows: WatcherRow[];
    try {
      rows = await read(peers, true);
    } catch {
      // The index went away in between (an unmigrate): forget it and scan this time.
      this.peerIndex?.forget(scope.table);
      rows = await read(peers, false);
    }
    if (rest.dialogs.length > 0 || rest.contacts) rows.push(...(await read(rest, false)));
    return rows;
  }

  /** Runs the guarded DELETE of these ids (the per-peer guard where the MySQL index allows it). */
  async deleteGuarded(
    scope: NodeScope,
    ids: readonly number[],
    criteria: WatcherCriteria,
  ): Promise<{ records: unknown[][]; updated: number }> {
    const run = (indexed: boolean) =>
      this.execute(indexedDeleteStatement(this.dialect, scope, ids, criteria, indexed)) as Promise<{
        records: unknown[][];
        updated: number;
      }>;
    const indexed =
      this.dialect.engine === "mysql" && criteria.peers.length > 0 && this.peerIndex
        ? await this.peerIndex.hasValidIndex(scope.table)
        : false;
    if (!indexed) return run(false);
    try {
      return await run(true);
    } catch {
      // The generated column went away in between (an unmigrate): forget the index, plain guard.
      this.peerIndex?.forget(scope.table);
      return run(false);
    }
  }

  byPresentity(scope: NodeScope, key: PresentityKey): Promise<WatcherRow[]> {
    return readByBytes(this.execute, (after) =>
      bytePageStatement(
        this.dialect,
        scope.table,
        WATCHER_COLUMNS,
        (params) => `${presentityKeyClause(key, params)} AND ${socketInfoClause(scope.socketInfo, params)}`,
        after,
        this.budget,
      ),
    );
  }
}
