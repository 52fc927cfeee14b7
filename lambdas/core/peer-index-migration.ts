/**
 * `kwc db migrate` / `kwc db unmigrate`: add or remove the peer index of one node table, online,
 * through a port that runs one DDL statement and reads the index state (the adapter runs them over
 * the Data API with continueAfterTimeout). Decides what to run from the state found: a valid index
 * is left alone, an INVALID leftover of a failed build is dropped first, a build in progress is
 * waited for, and a statement that outlasts the Data API's 45 s timeout is followed by polling.
 */
import type { DatabaseEngine, NodeFacts } from "./fleet.ts";
import {
  migrateStatements,
  type PeerIndexState,
  peerIndexName,
  unmigrateStatements,
} from "./sql/peer-index.ts";
import { type Dialect, dialectFor } from "./sql.ts";

export interface PeerIndexPort {
  /** Runs one DDL statement; resolves `timedOut` when the Data API gave up waiting but it runs on. */
  run(sql: string): Promise<"done" | "timedOut">;
  state(): Promise<PeerIndexState>;
  sleep(ms: number): Promise<void>;
}

export interface MigrationOptions {
  /** Poll interval while a build outlives the statement timeout (ms). */
  pollMs?: number;
  /** Give up waiting for a build after this long (ms); the build itself is not stopped. */
  waitMs?: number;
  /** After a timeout, how long a state other than the expected one may be a build not yet visible (ms). */
  graceMs?: number;
  /** Progress lines for the operator. */
  say?: (line: string) => void;
}

export interface MigrationResult {
  table: string;
  index: string;
  before: PeerIndexState;
  after: PeerIndexState;
  /** The statements that ran, in order. */
  ran: string[];
}

export class MigrationError extends Error {
  override name = "MigrationError";
}

/**
 * Why building the index on this engine would stall Kamailio: on PostgreSQL, presence in notifier
 * mode (notifier_processes > 0) takes `LOCK TABLE … IN EXCLUSIVE MODE`, which waits for the SHARE
 * UPDATE EXCLUSIVE lock CREATE INDEX CONCURRENTLY holds for its whole build. Sync mode takes none.
 */
export function stallReasons(
  engine: DatabaseEngine,
  nodes: readonly { id: string; facts: Pick<NodeFacts, "notifierProcesses" | "source"> }[],
): string[] {
  if (engine !== "postgres") return [];
  return nodes
    .filter((n) => n.facts.notifierProcesses > 0)
    .map(
      (n) =>
        `node ${n.id} runs presence in notifier mode (notifier_processes=${n.facts.notifierProcesses}, from its ${n.facts.source}): its LOCK TABLE … IN EXCLUSIVE MODE waits for the whole CREATE INDEX CONCURRENTLY, so its NOTIFYs stall until the build ends`,
    );
}

/** Polls while a build runs (before anything else is done). */
async function waitWhileBuilding(port: PeerIndexPort, options: MigrationOptions): Promise<PeerIndexState> {
  const deadline = Date.now() + (options.waitMs ?? 6 * 3600_000);
  for (;;) {
    const state = await port.state();
    if (state !== "building") return state;
    if (Date.now() > deadline)
      throw new MigrationError("an index build still runs; run kwc db migrate again later to check it");
    options.say?.("index build in progress …");
    await port.sleep(options.pollMs ?? 5_000);
  }
}

/**
 * After a statement outlasted the Data API's timeout (it runs on): polls until the index reaches
 * the state the statement leads to. Another state is final only once no build runs and a short
 * grace has passed (a statement that has just started may not show yet).
 */
async function waitForState(
  port: PeerIndexPort,
  expected: PeerIndexState,
  options: MigrationOptions,
): Promise<void> {
  const start = Date.now();
  const deadline = start + (options.waitMs ?? 6 * 3600_000);
  for (;;) {
    const state = await port.state();
    if (state === expected) return;
    if (state !== "building" && Date.now() - start > (options.graceMs ?? 10_000))
      throw new MigrationError(`the statement ended with the index ${state}, not ${expected}`);
    if (Date.now() > deadline)
      throw new MigrationError("the index build still runs; run kwc db migrate again later to check it");
    options.say?.("index build in progress …");
    await port.sleep(options.pollMs ?? 5_000);
  }
}

/** Each DDL statement with the state it leads to (see migrateStatements / unmigrateStatements). */
type Step = { sql: string; leadsTo: PeerIndexState };

function stepsOf(statements: string[], outcomes: PeerIndexState[]): Step[] {
  return statements.map((sql, i) => ({ sql, leadsTo: outcomes[i] ?? "valid" }));
}

async function runAll(port: PeerIndexPort, steps: Step[], ran: string[], options: MigrationOptions) {
  for (const { sql, leadsTo } of steps) {
    options.say?.(`${sql};`);
    ran.push(sql);
    if ((await port.run(sql)) === "timedOut") {
      options.say?.("the Data API stopped waiting (45 s); the statement runs on, polling its state");
      await waitForState(port, leadsTo, options);
    }
  }
}

function migrateSteps(dialect: Dialect, table: string): Step[] {
  const outcomes: PeerIndexState[] = dialect.engine === "postgres" ? ["valid"] : ["invalid", "valid"];
  return stepsOf(migrateStatements(dialect, table), outcomes);
}

function unmigrateSteps(dialect: Dialect, table: string): Step[] {
  const outcomes: PeerIndexState[] = dialect.engine === "postgres" ? ["absent"] : ["invalid", "absent"];
  return stepsOf(unmigrateStatements(dialect, table), outcomes);
}

/** Adds the peer index to a table (idempotent). */
export async function migratePeerIndex(
  port: PeerIndexPort,
  engine: DatabaseEngine,
  table: string,
  options: MigrationOptions = {},
): Promise<MigrationResult> {
  const dialect: Dialect = dialectFor(engine);
  const index = peerIndexName(engine, table);
  const ran: string[] = [];
  const before = await port.state();
  let state = before === "building" ? await waitWhileBuilding(port, options) : before;
  if (state === "valid") return { table, index, before, after: state, ran };
  let steps = migrateSteps(dialect, table);
  if (state === "invalid") {
    if (engine === "postgres") {
      options.say?.(`dropping the INVALID index ${index} a failed build left behind`);
      await runAll(port, unmigrateSteps(dialect, table), ran, options);
    } else {
      // MySQL: the generated column is there without its index (the second ALTER did not finish).
      steps = steps.slice(1);
    }
  }
  try {
    await runAll(port, steps, ran, options);
  } catch (error) {
    throw new MigrationError(`building ${index} on ${table} failed: ${(error as Error).message}`);
  }
  state = await port.state();
  if (state !== "valid") {
    throw new MigrationError(
      `building ${index} on ${table} ended with the index ${state}${state === "invalid" ? " (run kwc db migrate again: it drops the leftover and rebuilds)" : ""}`,
    );
  }
  return { table, index, before, after: state, ran };
}

/** Removes the peer index (and the MySQL generated column) from a table (idempotent). */
export async function unmigratePeerIndex(
  port: PeerIndexPort,
  engine: DatabaseEngine,
  table: string,
  options: MigrationOptions = {},
): Promise<MigrationResult> {
  const dialect = dialectFor(engine);
  const index = peerIndexName(engine, table);
  const ran: string[] = [];
  const before = await port.state();
  if (before === "building") throw new MigrationError(`${index} is being built now; unmigrate once it ends`);
  if (before !== "absent") {
    let steps = unmigrateSteps(dialect, table);
    // MySQL leftover: the column without its index.
    if (engine === "mysql" && before === "invalid") steps = steps.slice(1);
    await runAll(port, steps, ran, options);
  }
  return { table, index, before, after: await port.state(), ran };
}
