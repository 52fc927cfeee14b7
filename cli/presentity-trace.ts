/**
 * `kwc db trace` / `kwc db untrace`: install or remove the presentity deletion trace
 * (core/sql/presentity-trace.ts) in the fleet's database. It creates a table, a trigger on
 * `presentity` (PostgreSQL: and its function) and a view, so it needs the admin's credentials (a
 * fleet config whose database.secretArn is the admin's; PostgreSQL: the owner of `presentity`);
 * --dry-run prints the SQL for a DBA instead.
 */
import { DataApiExecutor } from "#adapters/data-api-store.ts";
import { traceInstallStatements, traceRemoveStatements } from "#core/sql/presentity-trace.ts";
import { dialectFor } from "#core/sql.ts";
import type { FleetRuntime } from "#handlers/functions.ts";
import { EXIT } from "./args.ts";

export interface PresentityTraceCommand {
  action: "install" | "remove";
  dryRun: boolean;
  json: boolean;
}

export async function runPresentityTrace(
  runtime: FleetRuntime,
  command: PresentityTraceCommand,
  out: (text: string) => void,
): Promise<number> {
  const fleet = await runtime.loadFleet();
  const { engine, name } = fleet.database;
  const dialect = dialectFor(engine);
  const statements =
    command.action === "install" ? traceInstallStatements(dialect, name) : traceRemoveStatements(dialect);
  if (!command.dryRun) {
    const executor = new DataApiExecutor(runtime.rdsData, fleet.database);
    for (const sql of statements) {
      if (!command.json) out(`${sql};`);
      await executor.execute({ sql, params: {} });
    }
  }
  const done =
    command.action === "install"
      ? "presentity deletion trace installed: the worker reads it from its next batch on (see docs/worker.md)"
      : "presentity deletion trace removed: every refresh owed after deletions is sent on 5.6-5.8.5";
  if (command.json)
    out(JSON.stringify({ engine, action: command.action, dryRun: command.dryRun, statements }, null, 2));
  else if (command.dryRun) out(statements.map((s) => `${s};`).join("\n"));
  else out(done);
  return EXIT.ok;
}
