/**
 * `npm start`: the whole pipeline on this machine, no AWS account.
 *
 *   npm start [-- --engine postgres|mysql] [--nodes 1|2] [--reconcile-every SECONDS]
 *             [--database-url URL]                      (or DATABASE_URL, PG*, MYSQL_* conventions)
 *             [--existing-kamailio STATUS_URL --socket-info tcp:IP:PORT[,…] [--rpc-url URL]
 *              [--ingest-host IP] [--ingest-port PORT] [--wait-for-node SECONDS]]
 *                                                       (token: env KWC_RPC_TOKEN; key: env
 *                                                        KWC_INGEST_KEY or <state>/ingest-key)
 *
 * Without --existing-kamailio it starts its own Kamailio nodes (kamailio/kamailio.cfg). With it, it
 * prints what the operator's Kamailio needs, waits for the node's status endpoint, refuses set-ups
 * the service cannot help, and cross-checks the declared contact style with the rows. Without a
 * database URL it installs/starts the project's own instance (scripts/setup.sh, scripts/db.sh); with
 * one it connects there and creates nothing. Ctrl-C stops everything it started.
 */
import { createWriteStream, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type DbTarget, describeTarget, resolveDbTarget } from "./database.ts";
import { type DbConnectionSettings, type Engine, MY_PORT, PG_PORT } from "./db.ts";
import {
  contactStyleWatch,
  DEFAULT_EXISTING_INGEST_PORT,
  ingestKey,
  kamailioInstructions,
  type NodeReport,
  refusalsFor,
  waitForNode,
} from "./existing.ts";
import { ensureServices, ROOT } from "./services.ts";
import { CLEANUP_FUNCTION_NAME, type LocalStack, startLocalStack } from "./stack.ts";
import { statusLine } from "./status.ts";

const STATE_DIR = resolve(process.env.KWC_STATE_DIR ?? join(ROOT, ".state"), "local");
const USAGE =
  "npm start [-- --engine postgres|mysql] [--nodes 1|2] [--reconcile-every SECONDS] [--database-url URL]\n" +
  "          [--existing-kamailio STATUS_URL --socket-info tcp:IP:PORT[,...] [--rpc-url URL]\n" +
  "           [--ingest-host IP] [--ingest-port PORT] [--wait-for-node SECONDS]]  (env KWC_RPC_TOKEN)";

const { values } = parseArgs({
  options: {
    engine: { type: "string" },
    nodes: { type: "string", default: "1" },
    "reconcile-every": { type: "string", default: "60" },
    "database-url": { type: "string" },
    "existing-kamailio": { type: "string" },
    "rpc-url": { type: "string" },
    "socket-info": { type: "string" },
    "ingest-host": { type: "string" },
    "ingest-port": { type: "string" },
    "wait-for-node": { type: "string", default: "120" },
    help: { type: "boolean", short: "h" },
  },
});

function say(line: string): void {
  process.stderr.write(`[kwc] ${line}\n`);
}

function usage(problem: string): never {
  say(problem);
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

let dbTarget: DbTarget | undefined;
try {
  dbTarget = resolveDbTarget(values["database-url"], process.env);
} catch (error) {
  usage((error as Error).message);
}
const engine = (values.engine ?? dbTarget?.engine ?? "postgres") as Engine;
if (engine !== "postgres" && engine !== "mysql") usage("--engine must be postgres or mysql");
if (dbTarget && dbTarget.engine !== engine)
  usage(`--engine ${engine} but the database (${dbTarget.source}) is ${dbTarget.engine}`);
const existingUrl = values["existing-kamailio"];
const ingestPort = Number(values["ingest-port"] ?? (existingUrl ? DEFAULT_EXISTING_INGEST_PORT : 0));
if (!Number.isInteger(ingestPort) || ingestPort < 0 || ingestPort > 65535)
  usage("--ingest-port must be a port number");
const ingestHost = values["ingest-host"] ?? "127.0.0.1";

function dbSettings(t: DbTarget): DbConnectionSettings {
  return { host: t.host, port: t.port, user: t.user, password: t.password, ...(t.ssl ? { ssl: t.ssl } : {}) };
}

/** --existing-kamailio: key, instructions, the node's own report, refusals. Exits on a refusal. */
async function prepareExisting(statusUrl: string) {
  const token = process.env.KWC_RPC_TOKEN;
  if (!values["socket-info"] || !token)
    usage("--existing-kamailio needs --socket-info and the node's token in KWC_RPC_TOKEN");
  const key = ingestKey(STATE_DIR, process.env);
  const ingestUrl = `http://${ingestHost.includes(":") ? `[${ingestHost}]` : ingestHost}:${ingestPort}/events`;
  for (const line of kamailioInstructions({ ingestUrl, statusUrl, key })) say(line);
  const report = await waitForNode(statusUrl, token, say, Number(values["wait-for-node"]) * 1000);
  const refusals = refusalsFor(report, engine);
  if (refusals.length > 0) {
    for (const r of refusals) say(`refused: ${r}`);
    say("not starting: fix the node's set-up as said above, restart Kamailio, then npm start again");
    process.exit(3);
  }
  return { key, report, token };
}

function nodeLine(r: NodeReport): string {
  return (
    `node ${r.node}: Kamailio ${r.kamailioVersion}, subs_db_mode ${r.subsDbMode}, notifier_processes ` +
    `${r.notifierProcesses}, send_fast_notify ${r.sendFastNotify ?? "?"}, contact style ${r.contactStyle}, table ${r.watchersTable}`
  );
}

async function main(): Promise<void> {
  if (!dbTarget) ensureServices(engine, say);
  mkdirSync(STATE_DIR, { recursive: true });
  const existing = existingUrl ? await prepareExisting(existingUrl) : undefined;
  // Handler logs and metrics (JSON lines) go to a file; the terminal keeps the status line.
  const serviceLog = createWriteStream(join(STATE_DIR, "service.log"), { flags: "a" });

  say(`starting the local pipeline (${engine}, state in ${STATE_DIR}) …`);
  const started = Date.now();
  const socketInfo = (values["socket-info"] ?? "").split(",").filter(Boolean);
  const stack = await startLocalStack({
    engine,
    database: dbTarget?.database ?? process.env.KWC_DB_NAME ?? "kamailio",
    stateDir: STATE_DIR,
    nodes: Number(values.nodes),
    ...(dbTarget && { db: dbSettings(dbTarget) }),
    ...(existing &&
      existingUrl && {
        ingestKey: existing.key.key,
        ingestHost,
        ingestPort,
        existing: {
          statusUrl: existingUrl,
          rpcUrl: values["rpc-url"] ?? new URL("/RPC", existingUrl).href,
          socketInfo: socketInfo[0] ?? "",
          rpcToken: existing.token,
          ...(existing.report.contactStyle && { contactStyle: existing.report.contactStyle }),
          kamailioVersion: existing.report.kamailioVersion,
          notifierProcesses: existing.report.notifierProcesses,
        },
      }),
    reconcileEveryMs: Number(values["reconcile-every"]) * 1000,
    log: say,
    handlerLog: (line) => serviceLog.write(`${line}\n`),
  });
  const watch = existing ? watchContactStyle(stack, existing.report, socketInfo) : undefined;

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      say(`${signal} again: exiting now`);
      process.exit(130);
    }
    stopping = true;
    process.stderr.write("\n");
    say(`${signal}: stopping (finishing the batch in flight) …`);
    clearInterval(ticker);
    clearInterval(watch);
    await stack.stop();
    serviceLog.end();
    say("stopped; nothing left running");
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));

  for (const line of startedLines(stack, started, existing?.report)) say(line);

  const tty = process.stderr.isTTY;
  let last = "";
  const ticker = setInterval(() => {
    void statusLine(stack).then((line) => {
      if (stopping) return;
      if (tty) process.stderr.write(`\r\x1b[2K${line}`);
      else if (line !== last) process.stderr.write(`${line}\n`);
      last = line;
    });
  }, 1000);
}

/** Every 5 s: the node's WebSocket rows against its declared contact style; each problem said once. */
function watchContactStyle(stack: LocalStack, report: NodeReport, socketInfo: string[]): NodeJS.Timeout {
  const watch = contactStyleWatch({
    engine,
    database: stack.database,
    ...(dbTarget && { db: dbSettings(dbTarget) }),
    nodeId: report.node,
    table: report.watchersTable,
    socketInfo,
    style: report.contactStyle ?? "nated",
  });
  const run = () =>
    void watch
      .check()
      .then((warnings) => {
        for (const w of warnings) say(`warning: ${w}`);
      })
      .catch((error: unknown) => say(`warning: contact style check failed: ${(error as Error).message}`));
  run();
  return setInterval(run, 5000);
}

function startedLines(stack: LocalStack, started: number, report: NodeReport | undefined): string[] {
  const db = dbTarget
    ? describeTarget(dbTarget)
    : engine === "postgres"
      ? `PostgreSQL 127.0.0.1:${PG_PORT}`
      : `MariaDB 127.0.0.1:${MY_PORT}`;
  return [
    `up in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    ...(report ? [nodeLine(report)] : []),
    ...stack.nodes.map(
      (n) =>
        `node ${n.id}: SIP over WebSocket at ${n.wsUrl ?? "(existing)"} (socket ${n.socketInfo}, table ${n.watchersTable}); JSON-RPC ${n.rpcUrl}${n.logFile ? `; log ${n.logFile}` : ""}`,
    ),
    `ingest      POST ${stack.ingest.eventsUrl} (x-kwc-key in the Kamailio env); GET ${stack.ingest.url}/healthz`,
    `SQS         ${stack.sqs.endpoint} queue ${stack.sqs.queueUrl} (DLQ after ${stack.sqs.maxReceiveCount} receives)`,
    `Data API    ${stack.dataApiEndpoint} → ${db}, database ${stack.database}`,
    `Lambda      ${stack.invoke.endpoint} function ${CLEANUP_FUNCTION_NAME}: try`,
    `            AWS_ENDPOINT_URL_LAMBDA=${stack.invoke.endpoint} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local npm run kwc -- --remote --function ${CLEANUP_FUNCTION_NAME} --help`,
    `fleet       ${stack.fleetConfigPath}; handler logs in ${join(STATE_DIR, "service.log")}`,
    `ready: ingest ${stack.ingest.eventsUrl}, health ${stack.ingest.url}/healthz`,
    "Ctrl-C stops everything.",
  ];
}

main().catch((error: unknown) => {
  say(`failed: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
