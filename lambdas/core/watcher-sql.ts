/**
 * The worker's statements over a node's watchers table, for both dialects. Pure: each function
 * returns `{ sql, params }`. Every statement is scoped to the node's table and socket_info values.
 */

import { contactLikeShapes } from "./peer.ts";
import type { NodeScope, PresentityKey, WatcherCriteria, WatcherRow } from "./ports.ts";
import type { Dialect, SqlParams } from "./sql.ts";
import { dialogKeyClause, likeClause, likePattern, ParamBuilder } from "./sql.ts";

export interface Statement {
  sql: string;
  params: SqlParams;
}

/** Selected columns, in the order rowFromRecord() reads them. */
export const WATCHER_COLUMNS = [
  "id",
  "presentity_uri",
  "event",
  "contact",
  "callid",
  "to_tag",
  "from_tag",
  "watcher_username",
  "watcher_domain",
  "socket_info",
  "expires",
] as const;

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
    watcherUsername: text(7),
    watcherDomain: text(8),
    socketInfo: text(9),
    expires: Number(values[10]),
  };
}

export function scopeClause(scope: NodeScope, params: ParamBuilder): string {
  return `socket_info IN ${params.list(scope.socketInfo)}`;
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
  for (const dialog of criteria.dialogs) alternatives.push(`(${dialogKeyClause(dialect, dialog, params)})`);
  if (criteria.contacts && criteria.contacts.contacts.length > 0) {
    const { presentityUri, event, contacts } = criteria.contacts;
    const exactContacts = contacts.map((c) => `(${dialect.exactEquals("contact", params.name(c))})`);
    alternatives.push(
      `(presentity_uri = ${params.add(presentityUri)} AND event = ${params.add(event)} AND (${exactContacts.join(" OR ")}))`,
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
  const params = new ParamBuilder();
  const sql =
    `SELECT ${WATCHER_COLUMNS.join(", ")} FROM ${dialect.ident(scope.table)}` +
    ` WHERE ${scopeClause(scope, params)} AND id > ${params.add(afterId)}` +
    ` AND ${criteriaClause(dialect, scope, criteria, params)}` +
    ` ORDER BY id LIMIT ${Math.trunc(limit)}`;
  return { sql, params: params.params };
}

export function selectByPresentityStatement(
  dialect: Dialect,
  scope: NodeScope,
  key: PresentityKey,
  afterId: number,
  limit: number,
): Statement {
  const params = new ParamBuilder();
  const sql =
    `SELECT ${WATCHER_COLUMNS.join(", ")} FROM ${dialect.ident(scope.table)}` +
    ` WHERE presentity_uri = ${params.add(key.presentityUri)} AND event = ${params.add(key.event)}` +
    ` AND ${scopeClause(scope, params)} AND id > ${params.add(afterId)} ORDER BY id LIMIT ${Math.trunc(limit)}`;
  return { sql, params: params.params };
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
    ` AND ${scopeClause(scope, params)} AND ${criteriaClause(dialect, scope, criteria, params)}`;
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
    const keyClauses = keys.map(
      (k) => `(presentity_uri = ${params.add(k.presentityUri)} AND event = ${params.add(k.event)})`,
    );
    return (
      `SELECT DISTINCT ${index} AS scope_index, presentity_uri, event FROM ${dialect.ident(scope.table)}` +
      ` WHERE ${scopeClause(scope, params)} AND (${keyClauses.join(" OR ")})`
    );
  });
  return { sql: parts.join(" UNION ALL "), params: params.params };
}
