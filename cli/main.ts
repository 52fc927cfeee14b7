/**
 * `kwc`: on-demand cleanup, reconcile and checks for operators (see HELP in args.ts).
 * Runs the same core as the Lambdas, here (Data API + JSON-RPC from this machine), or invokes the
 * deployed cleanup Lambda with --remote.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { createNodeTableStatements } from "#adapters/reconcile-store.ts";
import type { CleanupReport, CleanupRequest } from "#core/cleanup-request.ts";
import { checkNodes } from "#core/reconcile-check.ts";
import { RequestError } from "#core/reconcile-sweep.ts";
import { awsClientConfig, fleetRuntime } from "#handlers/compose.ts";
import { EnvError, KwcEnvSchema, parseEnv } from "#handlers/env.ts";
import { type CleanupResponse, type FleetRuntime, runRequest, sweepPorts } from "#handlers/functions.ts";
import { describeTarget, resolveDbTarget } from "../local/database.ts";
import { checkDbPrivileges, renderDbCheck } from "../local/db-check.ts";
import { type Command, EXIT, type GlobalOptions, helpFor, parseCommandLine, UsageError } from "./args.ts";
import { exitCodeOf, progressBar, renderReport, table } from "./output.ts";
import { peerIndexAdvice, runPeerIndex } from "./peer-index.ts";
import { runPresentityTrace } from "./presentity-trace.ts";

export interface Io {
  out(text: string): void;
  err(text: string): void;
  stderr?: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

/** The fleet's clients, wired by the Lambdas' composition root from this process's environment. */
function runtimeOf(io: Io, global: GlobalOptions): FleetRuntime {
  return fleetRuntime(parseEnv("kwc", KwcEnvSchema, io.env), global.fleet, "kwc");
}

async function invokeRemote(io: Io, global: GlobalOptions, request: CleanupRequest): Promise<CleanupReport> {
  const env = parseEnv("kwc", KwcEnvSchema, io.env);
  const client = new LambdaClient(awsClientConfig(env, env.AWS_ENDPOINT_URL_LAMBDA));
  const out = await client.send(
    new InvokeCommand({
      FunctionName: global.functionName,
      InvocationType: "RequestResponse",
      Payload: new TextEncoder().encode(JSON.stringify(request)),
    }),
  );
  const text = out.Payload ? new TextDecoder().decode(out.Payload) : "";
  if (out.FunctionError) {
    let message = text;
    try {
      const e = JSON.parse(text) as { errorType?: string; errorMessage?: string };
      message = `${e.errorType ?? "Error"}: ${e.errorMessage ?? text}`;
    } catch {}
    throw new Error(`the cleanup function failed: ${message}`);
  }
  const answer = JSON.parse(text) as CleanupResponse;
  if (!answer.ok) {
    if (answer.error.type === "BadRequest") throw new UsageError(answer.error.message);
    throw new Error(answer.error.message);
  }
  return answer.report;
}

async function runCleanupCommand(command: Extract<Command, { kind: "cleanup" }>, io: Io): Promise<number> {
  let report: CleanupReport;
  if (command.global.remote) {
    report = await invokeRemote(io, command.global, command.request);
  } else {
    const runtime = runtimeOf(io, command.global);
    const bar = command.global.progress && io.stderr?.isTTY ? progressBar(io.stderr) : undefined;
    try {
      const { store: _stats, ...local } = await runRequest(runtime, command.request, {
        ...(bar ? { hooks: { onProgress: (e) => bar.update(e) } } : {}),
      });
      report = local;
    } finally {
      bar?.end();
    }
  }
  io.out(command.global.json ? JSON.stringify(report, null, 2) : renderReport(report));
  return exitCodeOf(report, command.verb === "watchers-list");
}

async function fleetDeps(runtime: FleetRuntime) {
  const fleet = await runtime.loadFleet();
  return { ...sweepPorts(runtime, fleet), fleet };
}

async function runNodesCheck(command: Extract<Command, { kind: "nodes-check" }>, io: Io): Promise<number> {
  const runtime = runtimeOf(io, command.global);
  const { fleet, store, kamailio, engine } = await fleetDeps(runtime);
  if (command.node && !fleet.nodes.some((n) => n.id === command.node)) {
    throw new UsageError(
      `unknown node "${command.node}"; the fleet config has: ${fleet.nodes.map((n) => n.id).join(", ")}`,
    );
  }
  const checked = await checkNodes({ store, kamailio, engine, fleet: fleet.nodes }, command.node);
  const advice = await peerIndexAdvice(
    runtime,
    fleet.database,
    checked.map((c) => c.watchersTable),
  );
  const checks = checked.map((c) => {
    const a = advice.get(c.watchersTable);
    return {
      ...c,
      peerIndex: a?.state ?? "unknown",
      warnings: [...c.warnings, ...(a?.warning ? [a.warning] : [])],
    };
  });
  if (command.global.json) {
    io.out(JSON.stringify({ engine, nodes: checks }, null, 2));
  } else {
    io.out(
      table(
        [
          "node",
          "ok",
          "reachable",
          "version",
          "subs_db_mode",
          "notifier",
          "boot",
          "table",
          "peer index",
          "connections",
        ],
        checks.map((c) => [
          c.node,
          c.ok ? "yes" : "NO",
          c.reachable ? "yes" : "no",
          c.kamailioVersion ?? "-",
          String(c.subsDbMode ?? "-"),
          String(c.notifierProcesses ?? "-"),
          c.bootId ?? "-",
          c.watchersTable,
          c.peerIndex,
          String(c.connections ?? "-"),
        ]),
      ),
    );
    for (const c of checks) {
      for (const p of c.problems) io.out(`\n${c.node}: ${p}`);
      for (const w of c.warnings) io.out(`warning: ${w}`);
    }
  }
  return checks.every((c) => c.ok) ? EXIT.ok : EXIT.error;
}

async function runCreateNodeTable(
  command: Extract<Command, { kind: "create-node-table" }>,
  io: Io,
): Promise<number> {
  const { fleet, store } = await fleetDeps(runtimeOf(io, command.global));
  const node = fleet.nodes.find((n) => n.id === command.node);
  if (!node) {
    throw new UsageError(
      `unknown node "${command.node}"; the fleet config has: ${fleet.nodes.map((n) => n.id).join(", ")}`,
    );
  }
  const statements = command.dryRun
    ? createNodeTableStatements(store.dialect, node.watchersTable)
    : await store.createNodeTable(node.watchersTable);
  if (command.global.json) {
    io.out(
      JSON.stringify(
        { node: node.id, table: node.watchersTable, dryRun: command.dryRun, statements },
        null,
        2,
      ),
    );
  } else {
    io.out(statements.map((s) => `${s.sql};`).join("\n"));
    io.out(
      command.dryRun
        ? `\ndry run: table ${node.watchersTable} for node ${node.id} not created`
        : `\ntable ${node.watchersTable} for node ${node.id} ready; now set modparam("presence", "active_watchers_table", "${node.watchersTable}") on ${node.id}`,
    );
  }
  return EXIT.ok;
}

/** `kwc db check`: local/db-check.ts, with the credentials given; exit 1 when a runtime privilege is missing. */
async function runDbCheck(command: Extract<Command, { kind: "db-check" }>, io: Io): Promise<number> {
  const target = resolveDbTarget(command.databaseUrl, io.env);
  if (!target) throw new UsageError("db check needs --database-url (or DATABASE_URL, PG*, MYSQL_*)");
  const report = await checkDbPrivileges(target, command.tables);
  io.out(
    command.global.json ? JSON.stringify(report, null, 2) : renderDbCheck(report, describeTarget(target)),
  );
  return report.runtimeOk ? EXIT.ok : EXIT.error;
}

/** One runner per Command kind (cli/commands.ts): tsc refuses a kind without one. */
const RUNNERS: {
  [K in Command["kind"]]: (command: Extract<Command, { kind: K }>, io: Io) => Promise<number>;
} = {
  help: async (command, io) => {
    io.out(helpFor(command.verb));
    return EXIT.ok;
  },
  cleanup: runCleanupCommand,
  "nodes-check": runNodesCheck,
  "create-node-table": runCreateNodeTable,
  "db-check": runDbCheck,
  "presentity-trace": (command, io) =>
    runPresentityTrace(runtimeOf(io, command.global), { ...command, json: command.global.json }, io.out),
  "peer-index": (command, io) =>
    runPeerIndex(runtimeOf(io, command.global), { ...command, json: command.global.json }, io.out),
};

export async function main(argv: readonly string[], io: Io): Promise<number> {
  let command: Command;
  try {
    command = parseCommandLine(argv, io.env);
  } catch (error) {
    io.err(`kwc: ${(error as Error).message}\n(see kwc --help)`);
    return EXIT.usage;
  }
  try {
    return await (RUNNERS[command.kind] as (c: Command, io: Io) => Promise<number>)(command, io);
  } catch (error) {
    if (error instanceof UsageError || error instanceof RequestError || error instanceof EnvError) {
      io.err(`kwc: ${error.message}`);
      return EXIT.usage;
    }
    io.err(`kwc: ${(error as Error).message ?? String(error)}`);
    return EXIT.error;
  }
}

/** Runs `kwc` with the process's arguments and stdio (cli/bin.mjs, `npm run kwc`). */
export async function run(): Promise<void> {
  process.exitCode = await main(process.argv.slice(2), {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    stderr: process.stderr,
    env: process.env,
  });
}

// Started directly (`tsx cli/main.ts`), not imported by bin.mjs or a test.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) await run();
