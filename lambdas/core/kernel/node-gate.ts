/**
 * One gate for every use case: may this node's rows be deleted now? Each use case passes its
 * policy, so what is refused where is stated here once (README "Kamailio versions", table test in
 * test/unit/kernel/node-gate.test.ts):
 *
 * | set-up                                    | worker (events)           | sweep (reconciler, cleanup, kwc) |
 * | subs_db_mode ≠ 3                          | refused (DLQ, with why)   | refused                          |
 * | notifier mode, PostgreSQL, Kamailio ≥ 5.7 | allowed: deletes by exact | refused: every refresh fails,    |
 * |                                           | peer/dialog, reports the  | a sweep cannot help              |
 * |                                           | refresh 500's meaning     |                                  |
 * | status names another watchers table       | warned (the node wins)    | refused (fix the config)         |
 * | the table holds another node's sockets    | not checked (hot path)    | refused; unknown sockets warned  |
 */
import { type ContactStyle, type DatabaseEngine, type NodeFacts, versionAtLeast } from "../fleet.ts";
import { foreignSocketCheck, modeRefusals, type NodeMode } from "../reconcile.ts";

export interface GatePolicy {
  notifierOnPostgres57: "refuse" | "allow";
  tableMismatch: "refuse" | "warn";
  foreignSockets: "check" | "skip";
}

export const WORKER_POLICY: GatePolicy = {
  notifierOnPostgres57: "allow",
  tableMismatch: "warn",
  foreignSockets: "skip",
};

export const SWEEP_POLICY: GatePolicy = {
  notifierOnPostgres57: "refuse",
  tableMismatch: "refuse",
  foreignSockets: "check",
};

/** What the gate reads of a node's config. */
export interface GatedNode {
  id: string;
  socketInfo: string[];
  watchersTable: string;
  contactStyle: ContactStyle;
}

/** The node's mode now (its status wins over the config), and where it came from. */
type GatedMode = NodeMode & Partial<Pick<NodeFacts, "watchersTable" | "source">>;

export interface GateVerdict {
  refusal?: string;
  warnings: string[];
}

export function gateNode(
  node: GatedNode,
  mode: GatedMode,
  engine: DatabaseEngine,
  policy: GatePolicy,
  fleet: readonly GatedNode[] = [],
  socketsInTable: readonly string[] = [],
): GateVerdict {
  const refusals: string[] = [];
  const warnings: string[] = [];
  const refuseOrWarn = (how: "refuse" | "warn" | "allow", message: string) => {
    if (how === "refuse") refusals.push(message);
    else if (how === "warn") warnings.push(message);
  };
  const table = mode.watchersTable;
  if (table && table.toLowerCase() !== node.watchersTable.toLowerCase())
    refuseOrWarn(
      policy.tableMismatch,
      `node ${node.id} reports watchers table ${table}, the fleet config says ${node.watchersTable}; fix the config`,
    );
  for (const message of modeRefusals(node.id, mode, engine)) {
    const notifier = mode.subsDbMode === 3 && isNotifierOnPostgres57(mode, engine);
    refuseOrWarn(notifier ? policy.notifierOnPostgres57 : "refuse", withSource(message, mode));
  }
  if (policy.foreignSockets === "check") {
    const foreign = foreignSocketCheck(node, fleet, socketsInTable);
    warnings.push(...foreign.warnings);
    if (foreign.refusal) refusals.push(foreign.refusal);
  }
  return refusals.length > 0 ? { refusal: refusals.join("\n"), warnings } : { warnings };
}

function isNotifierOnPostgres57(mode: GatedMode, engine: DatabaseEngine): boolean {
  return (
    engine === "postgres" && mode.notifierProcesses > 0 && versionAtLeast(mode.kamailioVersion, [5, 7, 0])
  );
}

/** `subs_db_mode=2` → `subs_db_mode=2 (from its status)`: says which source the verdict read. */
function withSource(message: string, mode: GatedMode): string {
  if (!mode.source) return message;
  return message.replace(/(subs_db_mode=\d+|notifier_processes=\d+)/, `$1 (from its ${mode.source})`);
}
