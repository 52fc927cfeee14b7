/**
 * Pages sized by the rows' actual bytes, not by a worst-case row. One statement returns the rows
 * after `:after` (in id order) whose running total of JSON bytes stays under the budget (at least
 * one row), plus how many rows match in all, so a reader knows when it has everything: 1,000
 * BLF rows of a few hundred bytes come back in one round trip instead of 17 pages of 59.
 * Pure: SQL text and parameters only.
 */
import type { DatabaseEngine } from "../fleet.ts";
import type { Peer } from "../peer.ts";
import type { NodeScope, WatcherCriteria } from "../ports.ts";
import { DATA_API_RESPONSE_LIMIT, type Dialect, ParamBuilder } from "../sql.ts";
import {
  criteriaClause,
  deleteWatchersStatement,
  INTEGER_WATCHER_COLUMNS,
  type Statement,
  socketInfoClause,
  WATCHER_COLUMNS,
} from "../watcher-sql.ts";
import { peerKeyClause } from "./peer-index.ts";

/** `{"stringValue":""},` is 19 bytes, `{"longValue":-9223372036854775808},` 36: 40 covers any field. */
const FIELD_BYTES = 40;
/** `[` `]` `,` around a record, and the trailing count column. */
const RECORD_BYTES = 8 + FIELD_BYTES;
/** The budget per page: 90 % of the 1 MiB response limit (the envelope and rounding fit in the rest). */
export const PAGE_BUDGET_BYTES = Math.floor(DATA_API_RESPONSE_LIMIT * 0.9);

/**
 * SQL for an upper bound of one record's bytes in the Data API's JSON response: the text columns'
 * UTF-8 bytes, times 6 when any of them holds a character outside printable ASCII or a quote or
 * backslash (JSON escapes a quote or backslash in 2 bytes, a control character in 6, and a Data
 * API that escaped non-ASCII would take at most 3 per UTF-8 byte), plus the field wrappers. One
 * regular expression per row: real rows are printable ASCII, and for them the bound is exact.
 */
export function recordBytesSql(engine: DatabaseEngine, columns: readonly string[]): string {
  const text = columns.filter((c) => !INTEGER_WATCHER_COLUMNS.has(c)); // an integer is a fixed-width {"longValue":…}
  const fixed = RECORD_BYTES + FIELD_BYTES * columns.length;
  if (engine === "postgres") {
    const octets = text.map((c) => `COALESCE(octet_length(${c}), 0)`).join(" + ");
    return `(${fixed} + (${octets}) * CASE WHEN concat(${text.join(", ")}) ~ '[^ -~]|["\\\\]' THEN 6 ELSE 1 END)`;
  }
  const octets = text.map((c) => `COALESCE(OCTET_LENGTH(${c}), 0)`).join(" + ");
  return `(${fixed} + (${octets}) * CASE WHEN CONCAT_WS('', ${text.join(", ")}) REGEXP '[^ -~]|["\\\\\\\\]' THEN 6 ELSE 1 END)`;
}

/**
 * One byte-sized page: `columns…, total` for the rows with `id > :after AND <where>`, in id order,
 * as many as fit in `budget` bytes (always at least one). `total` counts every row matching from
 * `:after` on, so the page is the last one when it holds `total` rows.
 */
export function bytePageStatement(
  dialect: Dialect,
  table: string,
  columns: readonly string[],
  where: (params: ParamBuilder) => string,
  afterId: number,
  budget = PAGE_BUDGET_BYTES,
): Statement {
  const params = new ParamBuilder();
  const cols = columns.join(", ");
  const inner =
    `SELECT ${cols}, SUM(${recordBytesSql(dialect.engine, columns)}) OVER (ORDER BY id) AS kwc_run,` +
    " ROW_NUMBER() OVER (ORDER BY id) AS kwc_n, COUNT(*) OVER () AS kwc_total" +
    ` FROM ${dialect.ident(table)} WHERE id > ${params.add(afterId)} AND ${where(params)}`;
  const sql =
    `SELECT ${cols}, kwc_total FROM (${inner}) kwc_page` +
    ` WHERE kwc_run <= ${params.add(Math.max(1, Math.trunc(budget)))} OR kwc_n = 1 ORDER BY id`;
  return { sql, params: params.params };
}

/**
 * MariaDB / MySQL read the generated column once per row: each row is held to its own peer's LIKE
 * shapes (8) instead of every peer's (80 for 10 peers, each lower-casing the contact). Narrower
 * than the plain OR only for a contact whose key names one peer and whose text another.
 */
function perPeerGuard(
  dialect: Dialect,
  scope: NodeScope,
  peers: readonly Peer[],
  params: ParamBuilder,
): string {
  const each = peers.map(
    (peer) =>
      `(${peerKeyClause("mysql", [peer], params)} AND ${criteriaClause(dialect, scope, { peers: [peer], dialogs: [] }, params)})`,
  );
  return `(${each.join(" OR ")})`;
}

/**
 * The guarded DELETE (by id AND the predicate) with the per-peer guard, for MySQL tables with a
 * valid index and peer criteria; otherwise the statement of watcher-sql.ts.
 */
export function indexedDeleteStatement(
  dialect: Dialect,
  scope: NodeScope,
  ids: readonly number[],
  criteria: WatcherCriteria,
  indexed: boolean,
): Statement {
  if (
    !indexed ||
    dialect.engine !== "mysql" ||
    criteria.peers.length === 0 ||
    criteria.dialogs.length > 0 ||
    criteria.contacts
  )
    return deleteWatchersStatement(dialect, scope, ids, criteria);
  const params = new ParamBuilder();
  return {
    sql:
      `DELETE FROM ${dialect.ident(scope.table)} WHERE id IN ${params.list(ids)}` +
      ` AND ${socketInfoClause(scope.socketInfo, params)} AND ${perPeerGuard(dialect, scope, criteria.peers, params)}`,
    params: params.params,
  };
}

/**
 * One byte-sized page of candidate rows. With `indexed`, the peers' rows are found through the
 * peer index (`<peer key> IN (…)`) and the exact LIKE predicate stays as the guard (on MySQL each
 * row against its own peer's shapes); without it, the predicate alone decides (a scan). Criteria
 * mixing peers and dialogs: call once per kind.
 */
export function candidatePageStatement(
  dialect: Dialect,
  scope: NodeScope,
  criteria: WatcherCriteria,
  afterId: number,
  indexed: boolean,
  budget = PAGE_BUDGET_BYTES,
): Statement {
  return bytePageStatement(
    dialect,
    scope.table,
    WATCHER_COLUMNS,
    (params) => {
      const socket = socketInfoClause(scope.socketInfo, params);
      if (!indexed || criteria.peers.length === 0)
        return `${socket} AND ${criteriaClause(dialect, scope, criteria, params)}`;
      const driving = peerKeyClause(dialect.engine, criteria.peers, params);
      if (dialect.engine === "postgres")
        return `${driving} AND ${socket} AND ${criteriaClause(dialect, scope, criteria, params)}`;
      return `${driving} AND ${socket} AND ${perPeerGuard(dialect, scope, criteria.peers, params)}`;
    },
    afterId,
    budget,
  );
}
