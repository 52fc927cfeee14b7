/**
 * `kwc db migrate` / `kwc db unmigrate`: the optional peer index on each node table in scope
 * (core/peer-index-migration.ts over the Data API). On PostgreSQL, migrate refuses while a node
 * of the table runs presence in notifier mode (the build would stall its NOTIFYs) unless
 * --allow-stall; --dry-run prints the SQL a DBA can run instead.
 */
import { DataApiExecutor } from "#adapters/data-api-store.ts";
import { dataApiPeerIndexPort, readPeerIndexState } from "#adapters/peer-index.ts";
import { type DatabaseConfig, factsFromConfig, type NodeConfig, type NodeFacts } from "#core/fleet.ts";
import {
  type MigrationResult,
  migratePeerIndex,
  stallReasons,
  unmigratePeerIndex,
} from "#core/peer-index-migration.ts";
import { factsFromStatus } from "#core/ports.ts";
import { migrateStatements, type PeerIndexState, unmigrateStatements } from "#core/sql/peer-index.ts";
import { dialectFor } from "#core/sql.ts";
import type { FleetRuntime } from "#handlers/functions.ts";
import { EXIT, UsageError } from "./args.ts";

export interface PeerIndexCommand {
  action: "migrate" | "unmigrate";
  node?: string;
  dryRun: boolean;
  allowStall: boolean;
  json: boolean;
}

/** The node's facts from its status endpoint, else from the fleet config (said in `source`). */
async function factsOf(runtime: FleetRuntime, node: NodeConfig): Promise<NodeFacts> {
  try {
    return factsFromStatus(node, await runtime.kamailio.status(node));
  } catch {
    return factsFromConfig(node);
  }
}

export async function runPeerIndex(
  runtime: FleetRuntime,
  command: PeerIndexCommand,
  out: (text: string) => void,
): Promise<number> {
  const fleet = await runtime.loadFleet();
  const engine = fleet.database.engine;
  if (command.node && !fleet.nodes.some((n) => n.id === command.node))
    throw new UsageError(
      `unknown node "${command.node}"; the fleet config has: ${fleet.nodes.map((n) => n.id).join(", ")}`,
    );
  const inScope = fleet.nodes.filter((n) => !command.node || n.id === command.node);
  const tables = [...new Set(inScope.map((n) => n.watchersTable))];
  const dialect = dialectFor(engine);
  const say = (line: string) => {
    if (!command.json) out(line);
  };
  if (command.dryRun) {
    const sql = tables.flatMap((t) =>
      (command.action === "migrate" ? migrateStatements(dialect, t) : unmigrateStatements(dialect, t)).map(
        (s) => `${s};`,
      ),
    );
    out(
      command.json
        ? JSON.stringify({ engine, tables, dryRun: true, statements: sql }, null, 2)
        : sql.join("\n"),
    );
    return EXIT.ok;
  }
  const executor = new DataApiExecutor(runtime.rdsData, fleet.database);
  const results: MigrationResult[] = [];
  for (const table of tables) {
    const port = dataApiPeerIndexPort(runtime.rdsData, fleet.database, table, (s) => executor.execute(s));
    if (command.action === "unmigrate") {
      results.push(await unmigratePeerIndex(port, engine, table, { say }));
      continue;
    }
    const users = fleet.nodes.filter((n) => n.watchersTable === table);
    const reasons = stallReasons(
      engine,
      await Promise.all(users.map(async (n) => ({ id: n.id, facts: await factsOf(runtime, n) }))),
    );
    if (reasons.length > 0 && !command.allowStall) {
      throw new UsageError(
        `refusing to build the peer index on ${table} now:\n  ${reasons.join("\n  ")}\nrun it in a quiet hour with --allow-stall, or have a DBA run the SQL of --dry-run`,
      );
    }
    for (const reason of reasons) say(`warning (--allow-stall): ${reason}`);
    results.push(await migratePeerIndex(port, engine, table, { say }));
  }
  if (command.json) out(JSON.stringify({ engine, results }, null, 2));
  else for (const r of results) out(`${r.table}: peer index ${r.index} ${r.before} -> ${r.after}`);
  return EXIT.ok;
}

/**
 * For `kwc nodes check`: each table's peer index state, and a recommendation where it is not valid
 * (the worker then finds a batch's rows by a scan whose cost grows with the table).
 */
export async function peerIndexAdvice(
  runtime: FleetRuntime,
  database: DatabaseConfig,
  tables: readonly string[],
): Promise<Map<string, { state: PeerIndexState | "unknown"; warning?: string }>> {
  const executor = new DataApiExecutor(runtime.rdsData, database);
  const out = new Map<string, { state: PeerIndexState | "unknown"; warning?: string }>();
  for (const table of new Set(tables)) {
    try {
      const state = await readPeerIndexState((s) => executor.execute(s), database, table);
      out.set(
        table,
        state === "valid"
          ? { state }
          : {
              state,
              warning: `table ${table} has no valid peer index (${state}): the worker finds a batch's rows by a table scan whose cost grows with the table; run kwc db migrate (see docs/peer-index.md)`,
            },
      );
    } catch (error) {
      out.set(table, {
        state: "unknown",
        warning: `table ${table}: peer index state unknown: ${(error as Error).message}`,
      });
    }
  }
  return out;
}
