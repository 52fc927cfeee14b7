/**
 * `npm run demo`: the problem and the fix in about a minute, on this machine.
 *
 *   npm run demo [-- --engine postgres|mysql] [--survivors N]
 *
 * Starts its OWN local stack in this process (local/stack.ts: two Kamailio nodes with the shipped
 * cfg, ingest, SQS, worker, Data API server) on a throwaway database `kwc_demo_*` and its own
 * loopback addresses and free ports, so it runs next to `npm start` without touching it (it does
 * not connect to the stack `npm start` runs: the demo must pause and restart the worker, which
 * only an in-process stack allows). Then runs local/demo-scenario.ts with the project's own
 * SIP-over-WebSocket client and prints a before/after table. Everything is stopped and the
 * database dropped at the end.
 */
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createTestDb } from "../test/helpers/db.ts";
import { loopbackAddress } from "../test/helpers/ports.ts";
import type { Engine } from "./db.ts";
import { formatDemoTable, runDemoScenario } from "./demo-scenario.ts";
import { ensureServices } from "./services.ts";
import { startLocalStack } from "./stack.ts";

const HELP = `npm run demo [-- --engine postgres|mysql] [--survivors N] [--json]

Shows the stale-watcher problem of Kamailio 5.6.3 (notifier_processes 0) and the fix, through the
real local pipeline. Starts its own stack in-process (two Kamailio nodes, ingest, SQS, worker,
Data API server) on a throwaway database kwc_demo_*; it does not use or disturb a running
\`npm start\`. Prints a before/after table (--json: the raw result).`;

const { values } = parseArgs({
  options: {
    engine: { type: "string", default: "postgres" },
    survivors: { type: "string", default: "3" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const engine = values.engine as Engine;
if (engine !== "postgres" && engine !== "mysql") {
  console.error("--engine must be postgres or mysql");
  process.exit(2);
}
const survivors = Number(values.survivors);
if (!Number.isInteger(survivors) || survivors < 1 || survivors > 20) {
  console.error("--survivors must be 1..20");
  process.exit(2);
}

const say = (line: string) => process.stderr.write(`[demo] ${line}\n`);

async function main(): Promise<number> {
  ensureServices(engine, say);
  const stateDir = mkdtempSync(join(tmpdir(), "kwc-demo-"));
  const serviceLog = createWriteStream(join(stateDir, "service.log"));
  const db = await createTestDb(engine, "demo");
  let stack: Awaited<ReturnType<typeof startLocalStack>> | undefined;
  try {
    say(`starting a local stack with two Kamailio nodes on ${engine} (database ${db.name}) …`);
    stack = await startLocalStack({
      engine,
      database: db.name,
      stateDir,
      nodes: 2,
      listenIps: [loopbackAddress(), loopbackAddress()],
      // Short enough that a message taken by the paused poller's last long poll comes back soon.
      visibilityTimeoutSeconds: 2,
      waitTimeSeconds: 1,
      reconcileEveryMs: 0,
      log: () => {},
      handlerLog: (line) => serviceLog.write(`${line}\n`),
    });
    for (const n of stack.nodes) say(`node ${n.id}: ${n.wsUrl} (table ${n.watchersTable})`);
    const result = await runDemoScenario({ stack, engine, query: db.query, survivors, log: say });
    if (values.json) console.log(JSON.stringify(result, null, 2));
    else console.log(`\n${formatDemoTable(result)}\n`);
    const ok =
      result.oneNode.withService.rowGone &&
      result.oneNode.withService.survivorsNotified === result.oneNode.withService.survivors &&
      result.twoNodes.withService.survivorsNotified === result.twoNodes.withService.survivors;
    return ok ? 0 : 1;
  } finally {
    await stack?.stop();
    await db.drop();
    serviceLog.end();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    say(`failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);
