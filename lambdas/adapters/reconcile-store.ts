/**
 * The reconcile queries over the Data API (the worker's DataApiExecutor, dialects and helpers):
 * scoped, keyset-paged reads sized from what the data really weighs (every response under the
 * 1 MiB limit, halving on a too-large answer), deletes by id + unchanged `expires` + the same
 * scope, the distinct sockets of a table, and the per-node watchers table DDL.
 */
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { isResponseTooLarge } from "../core/classify.ts";
import type { DatabaseConfig } from "../core/fleet.ts";
import type { DeletedRow } from "../core/kernel/delete-guarded.ts";
import type { RowFilter, SweepStore, WatcherRow } from "../core/ports.ts";

import { DATA_API_RESPONSE_LIMIT, type Dialect, dialogKeyClause, ParamBuilder } from "../core/sql.ts";
import {
  existingIdsStatement,
  keysetPageStatement,
  rowFromRecord,
  type Statement,
  socketInfoClause,
  WATCHER_COLUMNS,
} from "../core/watcher-sql.ts";
import { DataApiExecutor } from "./data-api-store.ts";

/** Pages aim at half the response limit, so one unusually wide row cannot push a page over it. */
const TARGET_PAGE_BYTES = DATA_API_RESPONSE_LIMIT / 2;
const MIN_PAGE_ROWS = 16;
const MAX_PAGE_ROWS = 4000;
const FIRST_PAGE_ROWS = 500;
/** JSON bytes the Data API adds around each value (`{"stringValue":…},`). */
const FIELD_OVERHEAD_BYTES = 18;
const ACTIVE_WATCHERS_VERSION = 12;

export interface ReadStats {
  pages: number;
  rows: number;
  /** Estimated JSON size of the largest page read (values + the Field wrappers). */
  largestResponseBytes: number;
  /** Pages retried smaller after a too-large answer. */
  shrinks: number;
}

/** Estimated wire size of one record of the Data API's `records` array. */
export function recordBytes(values: readonly unknown[]): number {
  let bytes = 2;
  for (const v of values) bytes += FIELD_OVERHEAD_BYTES + (JSON.stringify(v ?? null)?.length ?? 4);
  return bytes;
}

/**
 * What a sweep reads per row: the first columns of the worker's WATCHER_COLUMNS, without
 * watcher and socket_info (those filters run in SQL), since 100k rows per node cross the Data API
 * on every sweep.
 */
export const SWEEP_COLUMNS = WATCHER_COLUMNS.slice(0, WATCHER_COLUMNS.indexOf("expires") + 1);

export function filterClause(dialect: Dialect, filter: RowFilter, params: ParamBuilder): string {
  const where = [socketInfoClause(filter.socketInfo, params)];
  if (filter.presentity !== undefined)
    where.push(`(${dialect.exactEquals("presentity_uri", params.name(filter.presentity))})`);
  if (filter.event !== undefined) where.push(`event = ${params.add(filter.event)}`);
  if (filter.watcher) {
    where.push(`(${dialect.exactEquals("watcher_username", params.name(filter.watcher.username))})`);
    where.push(`LOWER(watcher_domain) = LOWER(${params.add(filter.watcher.domain)})`);
  }
  if (filter.dialog) where.push(dialogKeyClause(dialect, filter.dialog, params));
  if (filter.expiresBefore !== undefined) where.push(`expires < ${params.add(filter.expiresBefore)}`);
  return where.join(" AND ");
}

export function selectPageStatement(
  dialect: Dialect,
  table: string,
  filter: RowFilter,
  afterId: number,
  limit: number,
): Statement {
  return keysetPageStatement(
    dialect,
    table,
    SWEEP_COLUMNS,
    (params) => filterClause(dialect, filter, params),
    afterId,
    limit,
  );
}

export function deleteStatement(
  dialect: Dialect,
  table: string,
  rows: readonly Pick<WatcherRow, "id" | "expires">[],
  filter: RowFilter,
): Statement {
  const params = new ParamBuilder();
  const ids = params.list(rows.map((r) => r.id));
  // A re-SUBSCRIBE between the read and this DELETE rewrites `expires`: such a row no longer matches.
  const unchanged = rows.map((r) => `(${params.add(r.id)}, ${params.add(r.expires)})`).join(", ");
  let sql =
    `DELETE FROM ${dialect.ident(table)} WHERE id IN ${ids} AND (id, expires) IN (${unchanged})` +
    ` AND ${filterClause(dialect, filter, params)}`;
  if (dialect.supportsReturning) sql += ` RETURNING ${DELETED_COLUMNS.join(", ")}`;
  return { sql, params: params.params };
}

/** What a delete reports per row (the audit record's watcher; the sweep does not read it per row). */
export const DELETED_COLUMNS = ["id", "watcher_username", "watcher_domain"] as const;

/** The watcher of these ids (MySQL: read before a DELETE, which cannot return them). */
export function watchersOfStatement(dialect: Dialect, table: string, ids: readonly number[]): Statement {
  const params = new ParamBuilder();
  return {
    sql: `SELECT ${DELETED_COLUMNS.join(", ")} FROM ${dialect.ident(table)} WHERE id IN ${params.list(ids)}`,
    params: params.params,
  };
}

const deletedRowOf = (r: readonly unknown[]): DeletedRow => ({
  id: Number(r[0]),
  watcherUsername: String(r[1] ?? ""),
  watcherDomain: String(r[2] ?? ""),
});

/** The statements that create a node's own watchers table (Kamailio schema v12) and its version row. */
export function createNodeTableStatements(dialect: Dialect, table: string): Statement[] {
  const t = dialect.ident(table);
  const versionRow: Statement = {
    sql:
      `INSERT INTO version (table_name, table_version) SELECT :t, :v${dialect.engine === "mysql" ? " FROM DUAL" : ""}` +
      " WHERE NOT EXISTS (SELECT 1 FROM version WHERE table_name = :t)",
    params: { t: table, v: ACTIVE_WATCHERS_VERSION },
  };
  if (dialect.engine === "mysql") {
    // MySQL copies columns, indexes and AUTO_INCREMENT from Kamailio's own table.
    return [{ sql: `CREATE TABLE IF NOT EXISTS ${t} LIKE active_watchers`, params: {} }, versionRow];
  }
  // PostgreSQL: explicit DDL so the table gets its own id sequence (LIKE … INCLUDING ALL would share it).
  const base = table.slice(0, 40);
  const index = (suffix: string, cols: string) => ({
    sql: `CREATE INDEX IF NOT EXISTS ${dialect.ident(`${base}_${suffix}`)} ON ${t} (${cols})`,
    params: {},
  });
  return [
    {
      sql:
        `CREATE TABLE IF NOT EXISTS ${t} (id SERIAL PRIMARY KEY NOT NULL, presentity_uri VARCHAR(255) NOT NULL, ` +
        "watcher_username VARCHAR(64) NOT NULL, watcher_domain VARCHAR(64) NOT NULL, to_user VARCHAR(64) NOT NULL, " +
        "to_domain VARCHAR(64) NOT NULL, event VARCHAR(64) DEFAULT 'presence' NOT NULL, event_id VARCHAR(64), " +
        "to_tag VARCHAR(128) NOT NULL, from_tag VARCHAR(128) NOT NULL, callid VARCHAR(255) NOT NULL, " +
        "local_cseq INTEGER NOT NULL, remote_cseq INTEGER NOT NULL, contact VARCHAR(255) NOT NULL, record_route TEXT, " +
        "expires INTEGER NOT NULL, status INTEGER DEFAULT 2 NOT NULL, reason VARCHAR(64), version INTEGER DEFAULT 0 NOT NULL, " +
        "socket_info VARCHAR(64) NOT NULL, local_contact VARCHAR(255) NOT NULL, from_user VARCHAR(64) NOT NULL, " +
        "from_domain VARCHAR(64) NOT NULL, updated INTEGER NOT NULL, updated_winfo INTEGER NOT NULL, " +
        "flags INTEGER DEFAULT 0 NOT NULL, user_agent VARCHAR(255) DEFAULT '', " +
        `CONSTRAINT ${dialect.ident(`${base}_watchers_idx`)} UNIQUE (callid, to_tag, from_tag))`,
      params: {},
    },
    index("expires", "expires"),
    index("pres", "presentity_uri, event"),
    index("updated_idx", "updated"),
    index("updated_winfo_idx", "updated_winfo, presentity_uri"),
    versionRow,
  ];
}

export class DataApiReconcileStore implements SweepStore {
  readonly executor: DataApiExecutor;
  readonly stats: ReadStats = { pages: 0, rows: 0, largestResponseBytes: 0, shrinks: 0 };
  #pageRows = FIRST_PAGE_ROWS;

  constructor(client: RDSDataClient, database: DatabaseConfig) {
    this.executor = new DataApiExecutor(client, database);
  }

  get dialect(): Dialect {
    return this.executor.dialect;
  }

  async socketsInTable(table: string): Promise<string[]> {
    const { records } = await this.executor.execute({
      sql: `SELECT DISTINCT socket_info FROM ${this.dialect.ident(table)}`,
      params: {},
    });
    return records.map((r) => String(r[0]));
  }

  async readPage(
    table: string,
    filter: RowFilter,
    afterId: number,
  ): Promise<{ rows: WatcherRow[]; done: boolean }> {
    for (;;) {
      const limit = this.#pageRows;
      let records: unknown[][];
      try {
        ({ records } = await this.executor.execute(
          selectPageStatement(this.dialect, table, filter, afterId, limit),
        ));
      } catch (error) {
        if (!isResponseTooLarge(error) || limit <= MIN_PAGE_ROWS) throw error;
        this.stats.shrinks++;
        this.#pageRows = Math.max(MIN_PAGE_ROWS, Math.floor(limit / 2));
        continue;
      }
      let bytes = 2;
      let widest = 0;
      for (const r of records) {
        const b = recordBytes(r);
        bytes += b;
        widest = Math.max(widest, b);
      }
      this.stats.pages++;
      this.stats.rows += records.length;
      this.stats.largestResponseBytes = Math.max(this.stats.largestResponseBytes, bytes);
      // Next page sized from the widest row seen so far on this page.
      if (widest > 0) {
        this.#pageRows = Math.min(
          MAX_PAGE_ROWS,
          Math.max(MIN_PAGE_ROWS, Math.floor(TARGET_PAGE_BYTES / widest)),
        );
      }
      // socket_info is not read back: every row matched one of the node's sockets in SQL.
      const socket = filter.socketInfo[0] ?? "";
      const rows = records.map(rowFromRecord);
      for (const row of rows) row.socketInfo = socket;
      return { rows, done: records.length < limit };
    }
  }

  async deleteRows(
    table: string,
    rows: readonly Pick<WatcherRow, "id" | "expires">[],
    filter: RowFilter,
  ): Promise<DeletedRow[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    if (this.dialect.supportsReturning) {
      const { records } = await this.executor.execute(deleteStatement(this.dialect, table, rows, filter));
      return records.map(deletedRowOf);
    }
    // MySQL: read the watchers, delete, and if not every row went, ask which are left.
    const { records: read } = await this.executor.execute(watchersOfStatement(this.dialect, table, ids));
    const { updated } = await this.executor.execute(deleteStatement(this.dialect, table, rows, filter));
    const candidates = read.map(deletedRowOf);
    if (updated === 0) return [];
    if (updated === candidates.length) return candidates;
    const { records: left } = await this.executor.execute(
      existingIdsStatement(
        this.dialect,
        { nodeId: "", table, socketInfo: filter.socketInfo, contactStyle: "auto" },
        ids,
      ),
    );
    const remaining = new Set(left.map((r) => Number(r[0])));
    return candidates.filter((c) => !remaining.has(c.id));
  }

  async createNodeTable(table: string): Promise<Statement[]> {
    const statements = createNodeTableStatements(this.dialect, table);
    for (const s of statements) await this.executor.execute(s);
    return statements;
  }
}
