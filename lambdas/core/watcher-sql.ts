/**
 * The worker's statements over a node's watchers table, for both dialects. Pure: each function
 * returns `{ sql, params }`. Every statement is scoped to the node's table and socket_info values.
 */

import { contactLikeShapes } from "./peer.ts";
import type { DialogMatch, NodeScope, PresentityKey, WatcherCriteria, WatcherRow } from "./ports.ts";
import type { Dialect, SqlParams } from "./sql.ts";
import { dialogKeyClause, likeClause, likePattern, ParamBuilder } from "./sql.ts";

export interface Statement {
  sql: string;
  params: SqlParams;
}

/**
 * Selected columns, in the order rowFromRecord() reads them. The reconcile sweep reads only the
 * first eight (its watcher and socket filters run in SQL): keep those first.
 */
export const WATCHER_COLUMNS = [
  "id",
  "presentity_uri",
  "event",
  "contact",
  "callid",
  "to_tag",
  "from_tag",
  "expires",
  "watcher_username",
  "watcher_domain",
  "socket_info",
  "version",
] as const;

/** The integer columns of WATCHER_COLUMNS (every other one is text). */
export const INTEGER_WATCHER_COLUMNS: ReadonlySet<string> = new Set(["id", "expires", "version"]);

/** Maps one record of a WATCHER_COLUMNS select (or a shorter prefix of it: missing columns read as ""). */
export function rowFromRecord(values: readonly unknown[]): WatcherRow {
  const text = (i: number) => String(values[i] ?? "");
  return {
    id: Number(values[0]),
    presentityUri: text(1),
    event: text(2),
    contact: text(3),
    callId: text(4),
    toTag: text(5),
    fromTag: text(6),
    expires: Number(values[7]),
    watcherUsername: text(8),
    watcherDomain: text(9),
    socketInfo: text(10),
    version: Number(values[11] ?? 0),
  };
}

/** Rows of these listeners only (a node's scope within a table that may hold other nodes' rows). */
export function socketInfoClause(socketInfo: readonly string[], params: ParamBuilder): string {
  return `socket_info IN ${params.list(socketInfo)}`;
}

export function presentityKeyClause(key: PresentityKey, params: ParamBuilder): string {
  return `presentity_uri = ${params.add(key.presentityUri)} AND event = ${params.add(key.event)}`;
}

/**
 * One keyset page: `SELECT <columns> FROM <table> WHERE id > :after AND <where> ORDER BY id LIMIT n`
 * (every paged read of the worker and the reconcile sweep).
 */
export function keysetPageStatement(
  dialect: Dialect,
  table: string,
  columns: readonly string[],
  where: (params: ParamBuilder) => string,
  afterId: number,
  limit: number,
): Statement {
  const params = new ParamBuilder();
  const sql =
    `SELECT ${columns.join(", ")} FROM ${dialect.ident(table)}` +
    ` WHERE id > ${params.add(afterId)} AND ${where(params)}` +
    ` ORDER BY id LIMIT ${Math.max(1, Math.trunc(limit))}`;
  return { sql, params: params.params };
}

/** The exact dialog key, and the row's version when the match carries one (the compare guard). */
export function dialogMatchClause(dialect: Dialect, dialog: DialogMatch, params: ParamBuilder): string {
  const key = dialogKeyClause(dialect, dialog, params);
  return dialog.version === undefined ? key : `${key} AND version = ${params.add(dialog.version)}`;
}

/** OR of every criterion; `1 = 0` when there is none (selects nothing, deletes nothing). */
export function criteriaClause(
  dialect: Dialect,
  scope: NodeScope,
  criteria: WatcherCriteria,
  params: ParamBuilder,
): string {
  const alternatives: string[] = [];
  for (const peer of criteria.peers) {
    for (const shape of contactLikeShapes(peer, scope.contactStyle)) {
      alternatives.push(likeClause("LOWER(contact)", likePattern(shape.parts), params));
    }
  }
  for (const dialog of criteria.dialogs) alternatives.push(`(${dialogMatchClause(dialect, dialog, params)})`);
  if (criteria.contacts && criteria.contacts.contacts.length > 0) {
    const { presentityUri, event, contacts } = criteria.contacts;
    const exactContacts = contacts.map((c) => `(${dialect.exactEquals("contact", params.name(c))})`);
    alternatives.push(
      `(${presentityKeyClause({ presentityUri, event }, params)} AND (${exactContacts.join(" OR ")}))`,
    );
  }
  return alternatives.length > 0 ? `(${alternatives.join(" OR ")})` : "1 = 0";
}

/** One page of candidate rows, ordered by id, after `afterId`. */
export function selectCandidatesStatement(
  dialect: Dialect,
  scope: NodeScope,
  criteria: WatcherCriteria,
  afterId: number,
  limit: number,
): Statement {
  return keysetPageStatement(
    dialect,
    scope.table,
    WATCHER_COLUMNS,
    (params) =>
      `${socketInfoClause(scope.socketInfo, params)} AND ${criteriaClause(dialect, scope, criteria, params)}`,
    afterId,
    limit,
  );
}

export function selectByPresentityStatement(
  dialect: Dialect,
  scope: NodeScope,
  key: PresentityKey,
  afterId: number,
  limit: number,
): Statement {
  return keysetPageStatement(
    dialect,
    scope.table,
    WATCHER_COLUMNS,
    (params) => `${presentityKeyClause(key, params)} AND ${socketInfoClause(scope.socketInfo, params)}`,
    afterId,
    limit,
  );
}

/** DELETE by id AND the same criteria; PostgreSQL returns the deleted ids. */
export function deleteWatchersStatement(
  dialect: Dialect,
  scope: NodeScope,
  ids: readonly number[],
  criteria: WatcherCriteria,
): Statement {
  const params = new ParamBuilder();
  let sql =
    `DELETE FROM ${dialect.ident(scope.table)} WHERE id IN ${params.list(ids)}` +
    ` AND ${socketInfoClause(scope.socketInfo, params)} AND ${criteriaClause(dialect, scope, criteria, params)}`;
  if (dialect.supportsReturning) sql += " RETURNING id";
  return { sql, params: params.params };
}

/** Which of these ids still exist (MySQL: tells which rows a DELETE without RETURNING removed). */
export function existingIdsStatement(dialect: Dialect, scope: NodeScope, ids: readonly number[]): Statement {
  const params = new ParamBuilder();
  return {
    sql: `SELECT id FROM ${dialect.ident(scope.table)} WHERE id IN ${params.list(ids)}`,
    params: params.params,
  };
}

/**
 * One statement over several node tables: which scopes hold watchers of which (presentity, event).
 * The node is identified by its position in `scopes` (a generated integer, not user data).
 */
export function findWatchingStatement(
  dialect: Dialect,
  scopes: readonly NodeScope[],
  keys: readonly PresentityKey[],
): Statement {
  const params = new ParamBuilder();
  const parts = scopes.map((scope, index) => {
    const keyClauses = keys.map((k) => `(${presentityKeyClause(k, params)})`);
    return (
      `SELECT DISTINCT ${index} AS scope_index, presentity_uri, event FROM ${dialect.ident(scope.table)}` +
      ` WHERE ${socketInfoClause(scope.socketInfo, params)} AND (${keyClauses.join(" OR ")})`
    );
  });
  return { sql: parts.join(" UNION ALL "), params: params.params };
}
