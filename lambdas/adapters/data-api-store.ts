/**
 * WatcherStore over the RDS Data API (`@aws-sdk/client-rds-data`), PostgreSQL and MySQL 8 dialects.
 * Statements come from core/watcher-sql.ts; this file only executes them, pages reads under the
 * 1 MiB response limit and, on MySQL (no RETURNING), confirms which ids a DELETE removed.
 * Errors are thrown as they come (core/classify.ts decides transient vs permanent).
 */
import {
  ExecuteStatementCommand,
  type Field,
  type RDSDataClient,
  type SqlParameter,
} from "@aws-sdk/client-rds-data";
import type { DatabaseConfig } from "../core/fleet.ts";
import type { NodeScope, PresentityKey, WatcherCriteria, WatcherRow, WatcherStore } from "../core/ports.ts";
import { chunk, type Dialect, dialectFor, type SqlParams, WATCHER_PAGE_ROWS } from "../core/sql.ts";
import {
  existingIdsStatement,
  findWatchingStatement,
  rowFromRecord,
  type Statement,
} from "../core/watcher-sql.ts";
import { PeerIndexDetector } from "./peer-index.ts";
import { DataApiPresentityTrace } from "./presentity-trace.ts";
import { WatcherPages } from "./watcher-pages.ts";

/** Peers / dialogs per statement: keeps parameter counts and request bytes far below the 4 MiB limit. */
export const CRITERIA_PER_STATEMENT = 50;
/** Ids per DELETE. */
export const IDS_PER_DELETE = 1000;

export function toSqlParameters(params: SqlParams): SqlParameter[] {
  return Object.entries(params).map(([name, value]) => {
    if (value === null) return { name, value: { isNull: true } };
    if (typeof value === "boolean") return { name, value: { booleanValue: value } };
    if (typeof value === "number")
      return Number.isInteger(value)
        ? { name, value: { longValue: value } }
        : { name, value: { doubleValue: value } };
    return { name, value: { stringValue: value } };
  });
}

export function fieldValue(field: Field): string | number | boolean | null {
  if (field.isNull) return null;
  if (field.stringValue !== undefined) return field.stringValue;
  if (field.longValue !== undefined) return field.longValue;
  if (field.doubleValue !== undefined) return field.doubleValue;
  if (field.booleanValue !== undefined) return field.booleanValue;
  if (field.blobValue !== undefined) return Buffer.from(field.blobValue).toString("utf8");
  return null;
}

/** Runs statements against one database through the Data API. Exported for the reconcile queries. */
export class DataApiExecutor {
  readonly dialect: Dialect;
  constructor(
    private readonly client: RDSDataClient,
    readonly database: DatabaseConfig,
  ) {
    this.dialect = dialectFor(database.engine);
  }

  async execute(statement: Statement): Promise<{ records: unknown[][]; updated: number }> {
    const out = await this.client.send(
      new ExecuteStatementCommand({
        resourceArn: this.database.resourceArn,
        secretArn: this.database.secretArn,
        database: this.database.name,
        sql: statement.sql,
        parameters: toSqlParameters(statement.params),
      }),
    );
    return {
      records: (out.records ?? []).map((row) => row.map(fieldValue)),
      updated: out.numberOfRecordsUpdated ?? 0,
    };
  }

  /** Reads every page of a keyset-paged query (`id > :after ORDER BY id LIMIT n`). */
  async readPaged(
    page: (afterId: number, limit: number) => Statement,
    limit = WATCHER_PAGE_ROWS,
  ): Promise<WatcherRow[]> {
    const rows: WatcherRow[] = [];
    let afterId = 0;
    for (;;) {
      const { records } = await this.execute(page(afterId, limit));
      const batch = records.map(rowFromRecord);
      rows.push(...batch);
      const last = batch.at(-1);
      if (batch.length < limit || !last) return rows;
      afterId = last.id;
    }
  }
}

function criteriaChunks(criteria: WatcherCriteria): WatcherCriteria[] {
  const out: WatcherCriteria[] = [];
  for (const peers of chunk(criteria.peers, CRITERIA_PER_STATEMENT)) out.push({ peers, dialogs: [] });
  for (const dialogs of chunk(criteria.dialogs, CRITERIA_PER_STATEMENT)) out.push({ peers: [], dialogs });
  if (criteria.contacts) out.push({ peers: [], dialogs: [], contacts: criteria.contacts });
  // Small batches (the common case) go in one statement.
  if (out.length > 1 && criteria.peers.length + criteria.dialogs.length <= CRITERIA_PER_STATEMENT)
    return [criteria];
  return out;
}

export interface WatcherStoreOptions {
  /** Told when a node table has no valid peer index and its rows are found by a scan. */
  onScan?: (table: string, state: string) => void;
  /** Response budget per page (tests); default 90 % of the 1 MiB limit. */
  pageBudgetBytes?: number;
  /** Told when the presentity deletion trace is missing or unreadable (the worker then refreshes every presentity). */
  onTraceAbsent?: (reason: string) => void;
}

export class DataApiWatcherStore implements WatcherStore {
  readonly executor: DataApiExecutor;
  readonly peerIndex: PeerIndexDetector;
  readonly presentityTrace: DataApiPresentityTrace;
  readonly #pages: WatcherPages;
  constructor(client: RDSDataClient, database: DatabaseConfig, options: WatcherStoreOptions = {}) {
    this.executor = new DataApiExecutor(client, database);
    const execute = (s: Statement) => this.executor.execute(s);
    this.peerIndex = new PeerIndexDetector(
      execute,
      database,
      options.onScan ? { onScan: options.onScan } : {},
    );
    this.presentityTrace = new DataApiPresentityTrace(
      execute,
      database,
      options.onTraceAbsent ? { onAbsent: options.onTraceAbsent } : {},
    );
    this.#pages = new WatcherPages(execute, this.executor.dialect, this.peerIndex, options.pageBudgetBytes);
  }

  get dialect(): Dialect {
    return this.executor.dialect;
  }

  async selectCandidates(scope: NodeScope, criteria: WatcherCriteria): Promise<WatcherRow[]> {
    const byId = new Map<number, WatcherRow>();
    for (const part of criteriaChunks(criteria)) {
      for (const row of await this.#pages.candidates(scope, part)) byId.set(row.id, row);
    }
    return [...byId.values()].sort((a, b) => a.id - b.id);
  }

  selectByPresentity(scope: NodeScope, key: PresentityKey): Promise<WatcherRow[]> {
    return this.#pages.byPresentity(scope, key);
  }

  async deleteWatchers(scope: NodeScope, ids: number[], criteria: WatcherCriteria): Promise<number[]> {
    const deleted: number[] = [];
    for (const idChunk of chunk([...new Set(ids)], IDS_PER_DELETE)) {
      const { records, updated } = await this.#pages.deleteGuarded(scope, idChunk, criteria);
      if (this.dialect.supportsReturning) {
        deleted.push(...records.map((r) => Number(r[0])));
      } else if (updated === idChunk.length) {
        deleted.push(...idChunk);
      } else if (updated > 0) {
        // Some rows changed or vanished in between: ask which ids are left (the third call on MySQL).
        const { records: left } = await this.executor.execute(
          existingIdsStatement(this.dialect, scope, idChunk),
        );
        const remaining = new Set(left.map((r) => Number(r[0])));
        deleted.push(...idChunk.filter((id) => !remaining.has(id)));
      }
    }
    return deleted;
  }

  async findWatchingScopes(
    scopes: NodeScope[],
    keys: PresentityKey[],
  ): Promise<{ nodeId: string; presentityUri: string; event: string }[]> {
    if (scopes.length === 0 || keys.length === 0) return [];
    const { records } = await this.executor.execute(findWatchingStatement(this.dialect, scopes, keys));
    const out: { nodeId: string; presentityUri: string; event: string }[] = [];
    for (const r of records) {
      const scope = scopes[Number(r[0])];
      if (scope) out.push({ nodeId: scope.nodeId, presentityUri: String(r[1]), event: String(r[2]) });
    }
    return out;
  }
}
