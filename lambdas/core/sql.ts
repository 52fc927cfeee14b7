/**
 * SQL building blocks shared by the worker's store and the reconcile queries: dialects
 * (PostgreSQL / MySQL 8), strict identifier quoting, LIKE escaping, named-parameter building and
 * page sizing under the Data API's 1 MiB response limit. Pure: produces `{ sql, params }` only.
 */
import type { DialogKey } from "./contract.ts";
import { type DatabaseEngine, SQL_IDENTIFIER_RE } from "./fleet.ts";

export type SqlValue = string | number | boolean | null;
export type SqlParams = Record<string, SqlValue>;

export interface Dialect {
  engine: DatabaseEngine;
  /** Quotes a validated identifier (throws on anything else: identifiers are never parameters). */
  ident(name: string): string;
  /** Whether `DELETE … RETURNING` exists (PostgreSQL yes; MySQL 8 / Aurora MySQL no). */
  supportsReturning: boolean;
  /** Byte-exact equality of a text column with a parameter that keeps the column's index usable. */
  exactEquals(column: string, param: string): string;
}

export function assertIdentifier(name: string): string {
  if (!SQL_IDENTIFIER_RE.test(name)) throw new Error(`refusing SQL identifier ${JSON.stringify(name)}`);
  return name;
}

export const postgresDialect: Dialect = {
  engine: "postgres",
  ident: (name) => `"${assertIdentifier(name)}"`,
  supportsReturning: true,
  // Deterministic collations compare bytes already.
  exactEquals: (column, param) => `${column} = :${param}`,
};

export const mysqlDialect: Dialect = {
  engine: "mysql",
  ident: (name) => `\`${assertIdentifier(name)}\``,
  supportsReturning: false,
  // `_ci` collations fold case: the plain `=` uses the index, the BINARY one makes it byte-exact.
  exactEquals: (column, param) => `${column} = :${param} AND BINARY ${column} = :${param}`,
};

export function dialectFor(engine: DatabaseEngine): Dialect {
  return engine === "postgres" ? postgresDialect : mysqlDialect;
}

/** Escape character for every LIKE we build (`ESCAPE '!'` works the same on PostgreSQL and MySQL). */
export const LIKE_ESCAPE = "!";

/** Escapes `%`, `_` and the escape character itself so that the text matches literally. */
export function escapeLike(text: string): string {
  return text.replace(/[!%_]/g, (c) => `${LIKE_ESCAPE}${c}`);
}

/** Joins literal pieces with `%` wildcards: ["", "@1.2.3.4:5;", ""] → `%@1.2.3.4:5;%`. */
export function likePattern(parts: string[]): string {
  return parts.map(escapeLike).join("%");
}

/** Collects named parameters (`:p0`, `:p1`, …) while SQL is assembled. */
export class ParamBuilder {
  readonly params: SqlParams = {};
  #next = 0;
  constructor(private readonly prefix = "p") {}
  /** Adds a value and returns its placeholder name (without the colon). */
  name(value: SqlValue): string {
    const key = `${this.prefix}${this.#next++}`;
    this.params[key] = value;
    return key;
  }
  /** Adds a value and returns `:name`. */
  add(value: SqlValue): string {
    return `:${this.name(value)}`;
  }
  /** `(:p0, :p1, …)` for an IN list; never empty (callers skip empty lists). */
  list(values: readonly SqlValue[]): string {
    if (values.length === 0) throw new Error("empty IN list");
    return `(${values.map((v) => this.add(v)).join(", ")})`;
  }
}

/** `LOWER(contact) LIKE :p ESCAPE '!'` for one pattern. */
export function likeClause(column: string, pattern: string, params: ParamBuilder): string {
  return `${column} LIKE ${params.add(pattern)} ESCAPE '${LIKE_ESCAPE}'`;
}

/** Byte-exact match of one dialog key, written so the unique (callid, to_tag, from_tag) index is used. */
export function dialogKeyClause(dialect: Dialect, key: DialogKey, params: ParamBuilder): string {
  return [
    dialect.exactEquals("callid", params.name(key.callId)),
    dialect.exactEquals("to_tag", params.name(key.toTag)),
    dialect.exactEquals("from_tag", params.name(key.fromTag)),
  ]
    .map((c) => `(${c})`)
    .join(" AND ");
}

/**
 * Widest `active_watchers` row the watcher queries return, in bytes of JSON: the selected columns'
 * widths (255·3 + 128·2 + 64·4 characters) at 12 bytes per character (a `\uXXXX\uXXXX` pair) plus
 * the Field wrappers. Pages sized from it stay under the 1 MiB response limit whatever the data.
 */
export const MAX_WATCHER_ROW_JSON_BYTES = (255 * 3 + 128 * 2 + 64 * 4) * 12 + 600;
export const DATA_API_RESPONSE_LIMIT = 1024 * 1024;

/** Rows per page for a row size, with a safety margin of 10 %. */
export function pageRowsFor(maxRowBytes: number, limitBytes = DATA_API_RESPONSE_LIMIT): number {
  return Math.max(1, Math.floor((limitBytes * 0.9) / maxRowBytes));
}

export const WATCHER_PAGE_ROWS = pageRowsFor(MAX_WATCHER_ROW_JSON_BYTES);

/** Splits a list into chunks (statement size bounds: parameters, request bytes). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
