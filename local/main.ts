/**
 * `npm start`: the whole pipeline on this machine, no AWS account.
 *
 *   npm start [-- --engine postgres|mysql] [--nodes 1|2] [--reconcile-every SECONDS]
 *             [--existing-kamailio STATUS_URL --rpc-url URL --socket-info tcp:IP:PORT]  (token: env KWC_RPC_TOKEN)
 *
 * Installs/starts what is missing through scripts/setup.sh and scripts/db.sh, prints where a
 * SIP-over-WebSocket client connects, keeps a live status line, and on Ctrl-C stops everything
 * it started (Kamailio process groups, servers, timers) before exiting.
 */
import { createWriteStream, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type Engine, MY_PORT, PG_PORT } from "./db.ts";
import { divertJsonLines, ensureServices, ROOT } from "./services.ts";
import { CLEANUP_FUNCTION_NAME, startLocalStack } from "./stack.ts";
import { statusLine } from "./status.ts";

const STATE_DIR = resolve(process.env.KWC_STATE_DIR ?? join(ROOT, ".state"), "local");

const { values } = parseArgs({
  options: {
    engine: { type: "string", default: "postgres" },
    nodes: { type: "string", default: "1" },
    "reconcile-every": { type: "string", default: "60" },
    "existing-kamailio": { type: "string" },
    "rpc-url": { type: "string" },
    "socket-info": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

if (values.help) {
  console.log(
    "npm start [-- --engine postgres|mysql] [--nodes 1|2] [--reconcile-every SECONDS]\n" +
      "          [--existing-kamailio STATUS_URL --rpc-url URL --socket-info tcp:IP:PORT]  (env KWC_RPC_TOKEN)",
  );
  process.exit(0);
}
const engine = values.engine as Engine;
if (engine !== "postgres" && engine !== "mysql") {
  console.error("--engine must be postgres or mysql");
  process.exit(2);
}

function say(line: string): void {
  process.stderr.write(`[kwc] ${line}\n`);
}

async function main(): Promise<void> {
  ensureServices(engine, say);
  // Handler logs (JSON lines from Powertools) go to a file; the terminal keeps the status line.
  mkdirSync(STATE_DIR, { recursive: true });
  const serviceLog = createWriteStream(join(STATE_DIR, "service.log"), { flags: "a" });
  divertJsonLines((text) => serviceLog.write(text));

  const existing = values["existing-kamailio"];
  if (existing && (!values["rpc-url"] || !values["socket-info"] || !process.env.KWC_RPC_TOKEN)) {
    say("--existing-kamailio needs --rpc-url, --socket-info and the node's token in KWC_RPC_TOKEN");
    process.exit(2);
  }
  say(`starting the local pipeline (${engine}, state in ${STATE_DIR}) …`);
  const started = Date.now();
  const stack = await startLocalStack({
    engine,
    database: process.env.KWC_DB_NAME ?? "kamailio",
    stateDir: STATE_DIR,
    nodes: Number(values.nodes),
    ...(existing && {
      existing: {
        statusUrl: existing,
        rpcUrl: values["rpc-url"] ?? "",
        socketInfo: values["socket-info"] ?? "",
        rpcToken: process.env.KWC_RPC_TOKEN ?? "",
      },
    }),
    reconcileEveryMs: Number(values["reconcile-every"]) * 1000,
    log: say,
  });

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
    await stack.stop();
    serviceLog.end();
    say("stopped; nothing left running");
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));

  const db = engine === "postgres" ? `PostgreSQL 127.0.0.1:${PG_PORT}` : `MariaDB 127.0.0.1:${MY_PORT}`;
  const lines = [
    `up in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    ...stack.nodes.map(
      (n) =>
        `node ${n.id}: SIP over WebSocket at ${n.wsUrl ?? "(existing)"} (socket ${n.socketInfo}, table ${n.watchersTable}); JSON-RPC ${n.rpcUrl}${n.logFile ? `; log ${n.logFile}` : ""}`,
    ),
    `ingest      POST ${stack.ingest.eventsUrl} (x-kwc-key in the Kamailio env)`,
    `SQS         ${stack.sqs.endpoint} queue ${stack.sqs.queueUrl} (DLQ after ${stack.sqs.maxReceiveCount} receives)`,
    `Data API    ${stack.dataApiEndpoint} → ${db}, database ${stack.database}`,
    `Lambda      ${stack.invoke.endpoint} function ${CLEANUP_FUNCTION_NAME}: try`,
    `            AWS_ENDPOINT_URL_LAMBDA=${stack.invoke.endpoint} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local npm run kwc -- --remote --function ${CLEANUP_FUNCTION_NAME} --help`,
    `fleet       ${stack.fleetConfigPath}; handler logs in ${join(STATE_DIR, "service.log")}`,
    "Ctrl-C stops everything.",
  ];
  for (const line of lines) say(line);

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

main().catch((error: unknown) => {
  say(`failed: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
