/**
 * The optional peer index (`kwc db migrate`): one SQL expression per dialect that computes a row's
 * WebSocket peer from its contact, as `<host>:<port>` text, the way contactPeer(contact, "auto")
 * reads it (core/reconcile.ts): `;alias=<ip>~<port>~5|6` first, else the nated `host:port` of a
 * `;transport=ws|wss` contact, else NULL. PostgreSQL indexes the expression itself (built
 * CONCURRENTLY); MariaDB / MySQL 8 have no functional-index syntax there, so a VIRTUAL generated
 * column holds it and an index is added on the column (each ALTER online: INPLACE, LOCK=NONE).
 *
 * The key is the host text as written (lower case, brackets and port zeros stripped), not a
 * canonical address: the store asks for every text form an address may take (peerKeyForms), the
 * same forms the LIKE shapes of peer.ts match. The exact LIKE predicate stays in every statement as
 * the guard and the TS matcher re-checks each row, so the key may be wider, never the only judge.
 * Pure: SQL text and parameters only.
 */
import type { DatabaseEngine } from "../fleet.ts";
import { canonicalIp, ipv6TextForms, isIpv6, type Peer } from "../peer.ts";
import { assertIdentifier, type Dialect, type ParamBuilder, type SqlParams } from "../sql.ts";

export interface Statement {
  sql: string;
  params: SqlParams;
}

/** Version of the expression: a changed expression gets a new column / index name. */
export const PEER_KEY_VERSION = 1;
/** MariaDB / MySQL: the VIRTUAL generated column and its index share this name. */
export const PEER_KEY_COLUMN = `kwc_peer${PEER_KEY_VERSION}`;

const OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const V4 = `${OCTET}(?:[.]${OCTET}){3}`;
/** Loose on purpose (hex, colons, a dotted tail): the forms the store asks for are exact. */
const V6 = "[0-9A-Fa-f]*:[0-9A-Fa-f:.]*";
/** 1-65535, leading zeros allowed (parsePort reads "05060" as 5060). */
const PORT = "0*(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})";
/** What may follow a port or a URI parameter value (peer.ts NATED_PORT_END, reconcile.ts WS_*). */
const END = "(?=$|[;>?])";

/** set_contact_alias(): `;alias=<ip>~<port>~5|6` (case-sensitive `;alias=`, as WS_ALIAS is). */
const ALIAS_MATCH = `;alias=(?:\\[${V6}\\]|${V6}|${V4})~${PORT}~[56]${END}`;
/** The match above → `<ip>~<port>`: prefix, brackets, protocol and port zeros removed. */
const ALIAS_STRIP = "^;alias=|\\[|\\]|~[56]$|(?<=~)0+(?=[1-9])";
/** fix_nated_contact(): `sip:user@<ip>:<port>` (IPv6 bracketed), the userinfo up to the last `@`. */
const NATED_MATCH = `(?i)^\\s*<?\\s*sips?:(?:.*@)?(?:\\[${V6}\\]|${V4}):${PORT}${END}`;
const NATED_STRIP = "(?i)^.*@|^\\s*<?\\s*sips?:|\\[|\\]|(?<=:)0+(?=[1-9][0-9]*$)";
/** The nated style counts only for WebSocket contacts (reconcile.ts WS_TRANSPORT). */
const WS_TRANSPORT = `(?i);transport=wss?${END}`;

/** A string literal of the dialect (MySQL reads backslashes as escapes, PostgreSQL does not). */
function literal(engine: DatabaseEngine, text: string): string {
  const body = engine === "mysql" ? text.replace(/\\/g, "\\\\") : text;
  return `'${body.replace(/'/g, "''")}'`;
}

/** The peer key of `column` (default `contact`): `10.0.0.1:5491`, `2001:db8::1:5491`, or NULL. */
export function peerKeyExpression(engine: DatabaseEngine, column = "contact"): string {
  const c = assertIdentifier(column);
  const q = (text: string) => literal(engine, text);
  if (engine === "postgres") {
    const alias = `lower(replace(regexp_replace((regexp_match(${c}, ${q(`(${ALIAS_MATCH.slice(0, -END.length)})${END}`)}))[1], ${q(ALIAS_STRIP)}, '', 'g'), '~', ':'))`;
    const nated = `lower(regexp_replace((regexp_match(${c}, ${q(`(?i)(${NATED_MATCH.slice(4, -END.length)})${END}`)}))[1], ${q(NATED_STRIP)}, '', 'g'))`;
    return `COALESCE(${alias}, CASE WHEN ${c} ~ ${q(WS_TRANSPORT)} THEN ${nated} END)`;
  }
  // MariaDB's REGEXP_SUBSTR returns '' (not NULL) without a match; matching follows the column's
  // (case-insensitive) collation unless the pattern says (?-i).
  const alias = `NULLIF(LOWER(REPLACE(REGEXP_REPLACE(REGEXP_SUBSTR(${c}, ${q(`(?-i)${ALIAS_MATCH}`)}), ${q(ALIAS_STRIP)}, ''), '~', ':')), '')`;
  const nated = `NULLIF(LOWER(REGEXP_REPLACE(REGEXP_SUBSTR(${c}, ${q(NATED_MATCH)}), ${q(NATED_STRIP)}, '')), '')`;
  return `COALESCE(${alias}, CASE WHEN ${c} REGEXP ${q(WS_TRANSPORT)} THEN ${nated} END)`;
}

/** The text forms of a peer's key that the expression can produce (IPv6: every form peer.ts matches). */
export function peerKeyForms(peer: Peer): string[] {
  const canonical = canonicalIp(peer.ip) ?? peer.ip.toLowerCase();
  const hosts = isIpv6(canonical) ? ipv6TextForms(canonical) : [canonical];
  return hosts.map((h) => `${h.toLowerCase()}:${peer.port}`);
}

/** What the store compares against: the indexed expression (PostgreSQL) or the generated column. */
export function peerKeyOperand(engine: DatabaseEngine): string {
  return engine === "postgres" ? `(${peerKeyExpression(engine)})` : PEER_KEY_COLUMN;
}

/** `<peer key> IN (:forms…)` for these peers. */
export function peerKeyClause(engine: DatabaseEngine, peers: readonly Peer[], params: ParamBuilder): string {
  const forms = [...new Set(peers.flatMap(peerKeyForms))];
  return `${peerKeyOperand(engine)} IN ${params.list(forms)}`;
}

/** Index name per table (PostgreSQL names are schema-wide and at most 63 bytes). */
export function peerIndexName(engine: DatabaseEngine, table: string): string {
  assertIdentifier(table);
  if (engine === "mysql") return PEER_KEY_COLUMN;
  const name = `${PEER_KEY_COLUMN}_${table}`;
  if (name.length <= 63) return name.toLowerCase();
  let hash = 2166136261;
  for (const ch of table) hash = Math.imul(hash ^ ch.charCodeAt(0), 16777619) >>> 0;
  return `${PEER_KEY_COLUMN}_${table.slice(0, 40)}_${hash.toString(16)}`.toLowerCase();
}

/** The DDL that adds the index, in order (each one statement, none in a transaction). */
export function migrateStatements(dialect: Dialect, table: string): string[] {
  const t = dialect.ident(table);
  const index = peerIndexName(dialect.engine, table);
  if (dialect.engine === "postgres") {
    return [`CREATE INDEX CONCURRENTLY ${dialect.ident(index)} ON ${t} (${peerKeyOperand("postgres")})`];
  }
  return [
    `ALTER TABLE ${t} ADD COLUMN ${PEER_KEY_COLUMN} VARCHAR(255) AS (${peerKeyExpression("mysql")}) VIRTUAL, ALGORITHM=INPLACE, LOCK=NONE`,
    `ALTER TABLE ${t} ADD INDEX ${index} (${PEER_KEY_COLUMN}), ALGORITHM=INPLACE, LOCK=NONE`,
  ];
}

/** The DDL that removes the index (and on MariaDB / MySQL the generated column). */
export function unmigrateStatements(dialect: Dialect, table: string): string[] {
  const index = peerIndexName(dialect.engine, table);
  if (dialect.engine === "postgres") return [`DROP INDEX CONCURRENTLY IF EXISTS ${dialect.ident(index)}`];
  const t = dialect.ident(table);
  return [
    `ALTER TABLE ${t} DROP INDEX ${index}, ALGORITHM=INPLACE, LOCK=NONE`,
    `ALTER TABLE ${t} DROP COLUMN ${PEER_KEY_COLUMN}, ALGORITHM=INPLACE, LOCK=NONE`,
  ];
}

/**
 * One row describing the index: `(valid, building)`. PostgreSQL: the named index's `indisvalid`
 * and whether CREATE INDEX CONCURRENTLY works on it now (no row = no index). MySQL: column and
 * index present, and whether an ALTER adding the index runs now.
 */
export function peerIndexStateStatement(dialect: Dialect, table: string): Statement {
  const index = peerIndexName(dialect.engine, table);
  if (dialect.engine === "postgres") {
    return {
      sql:
        "SELECT i.indisvalid, (SELECT count(*) FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid) AS building" +
        " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid" +
        " WHERE ic.relname = :index AND t.relname = :table AND pg_table_is_visible(t.oid)",
      params: { index, table },
    };
  }
  return {
    sql:
      "SELECT (SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table AND COLUMN_NAME = :column) AS has_column," +
      " (SELECT count(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table AND INDEX_NAME = :index) AS has_index," +
      " (SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE :alter) AS building",
    params: {
      table,
      column: PEER_KEY_COLUMN,
      index,
      alter: `ALTER TABLE \`${table}\` ADD %${PEER_KEY_COLUMN}%`,
    },
  };
}

/**
 * - `valid`: the store uses it.
 * - `building`: a build runs now (PostgreSQL: INVALID while CREATE INDEX CONCURRENTLY works).
 * - `invalid`: a failed build's leftover (PostgreSQL INVALID index; MySQL column without index).
 * - `absent`: nothing of it.
 */
export type PeerIndexState = "valid" | "building" | "invalid" | "absent";

export function peerIndexStateFrom(engine: DatabaseEngine, records: readonly unknown[][]): PeerIndexState {
  const row = records[0];
  if (engine === "postgres") {
    if (!row) return "absent";
    if (row[0] === true || row[0] === "t" || row[0] === 1) return "valid";
    return Number(row[1]) > 0 ? "building" : "invalid";
  }
  const hasColumn = Number(row?.[0] ?? 0) > 0;
  const hasIndex = Number(row?.[1] ?? 0) > 0;
  if (hasColumn && hasIndex) return "valid";
  if (Number(row?.[2] ?? 0) > 0) return "building";
  return hasColumn || hasIndex ? "invalid" : "absent";
}
