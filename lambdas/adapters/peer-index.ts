/**
 * The peer index over the Data API: the migration's port (DDL with continueAfterTimeout, so that a
 * build longer than the 45 s statement timeout goes on and is polled) and the store's detector (is
 * there a valid index on this table? cached per table, re-read after a TTL or a failure).
 */
import { ExecuteStatementCommand, type RDSDataClient } from "@aws-sdk/client-rds-data";
import type { DatabaseConfig } from "../core/fleet.ts";
import type { PeerIndexPort } from "../core/peer-index-migration.ts";
import { type PeerIndexState, peerIndexStateFrom, peerIndexStateStatement } from "../core/sql/peer-index.ts";
import { dialectFor } from "../core/sql.ts";
import type { Statement } from "../core/watcher-sql.ts";

type Execute = (statement: Statement) => Promise<{ records: unknown[][] }>;

export async function readPeerIndexState(
  execute: Execute,
  database: Pick<DatabaseConfig, "engine">,
  table: string,
): Promise<PeerIndexState> {
  const { records } = await execute(peerIndexStateStatement(dialectFor(database.engine), table));
  return peerIndexStateFrom(database.engine, records);
}

/** The migration's port for one table. */
export function dataApiPeerIndexPort(
  client: RDSDataClient,
  database: DatabaseConfig,
  table: string,
  execute: Execute,
): PeerIndexPort {
  return {
    async run(sql) {
      try {
        await client.send(
          new ExecuteStatementCommand({
            resourceArn: database.resourceArn,
            secretArn: database.secretArn,
            database: database.name,
            sql,
            continueAfterTimeout: true,
          }),
        );
        return "done";
      } catch (error) {
        if ((error as Error).name === "StatementTimeoutException") return "timedOut";
        throw error;
      }
    },
    state: () => readPeerIndexState(execute, database, table),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
}

/**
 * Whether each table has a valid peer index, as the store needs it per batch: read once, trusted
 * for `ttlMs`, forgotten when a statement that relied on it failed (an unmigrate in between).
 */
export class PeerIndexDetector {
  readonly #known = new Map<string, { at: number; valid: Promise<boolean> }>();
  constructor(
    private readonly execute: Execute,
    private readonly database: Pick<DatabaseConfig, "engine">,
    private readonly options: {
      ttlMs?: number;
      now?: () => number;
      /** Told once per read that found no valid index (the store then scans). */
      onScan?: (table: string, state: PeerIndexState) => void;
    } = {},
  ) {}

  hasValidIndex(table: string): Promise<boolean> {
    const now = (this.options.now ?? Date.now)();
    const hit = this.#known.get(table);
    if (hit && now - hit.at < (this.options.ttlMs ?? 60_000)) return hit.valid;
    const valid = readPeerIndexState(this.execute, this.database, table).then((state) => {
      if (state !== "valid") this.options.onScan?.(table, state);
      return state === "valid";
    });
    valid.catch(() => this.#known.delete(table));
    this.#known.set(table, { at: now, valid });
    return valid;
  }

  forget(table: string): void {
    this.#known.delete(table);
  }
}
