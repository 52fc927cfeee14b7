/**
 * `kwc nodes check`: per node, can it be reached, what does it run (version, presence mode, boot id),
 * how many connections it holds, and is its topology one the service can safely clean.
 */

import { factsFromStatus } from "./ports.ts";
import { foreignSocketCheck, modeRefusals, sharedTableRefusals } from "./reconcile.ts";
import type { SweepDeps } from "./reconcile-sweep.ts";

export interface NodeCheck {
  node: string;
  ok: boolean;
  reachable: boolean;
  bootId?: string;
  kamailioVersion?: string;
  subsDbMode?: number;
  notifierProcesses?: number;
  watchersTable: string;
  connections?: number;
  /** Why the service refuses this node, or why it could not be checked. */
  problems: string[];
  warnings: string[];
}

export async function checkNodes(deps: Omit<SweepDeps, "hooks">, nodeId?: string): Promise<NodeCheck[]> {
  const nodes = nodeId ? deps.fleet.filter((n) => n.id === nodeId) : deps.fleet;
  const shared = sharedTableRefusals(deps.fleet);
  const out: NodeCheck[] = [];
  for (const node of nodes) {
    const check: NodeCheck = {
      node: node.id,
      ok: false,
      reachable: false,
      watchersTable: node.watchersTable,
      problems: [],
      warnings: [],
    };
    const sharedMessage = shared.get(node.id);
    if (sharedMessage) check.problems.push(sharedMessage);
    try {
      const status = factsFromStatus(node, await deps.kamailio.status(node));
      check.reachable = true;
      check.bootId = status.bootId;
      check.kamailioVersion = status.kamailioVersion;
      check.subsDbMode = status.subsDbMode;
      check.notifierProcesses = status.notifierProcesses;
      if (status.watchersTable && status.watchersTable.toLowerCase() !== node.watchersTable.toLowerCase()) {
        check.problems.push(
          `node reports watchers table ${status.watchersTable}, the fleet config says ${node.watchersTable}`,
        );
      }
      check.problems.push(...modeRefusals(node.id, status, deps.engine));
      check.connections = (await deps.kamailio.tcpList(node)).length;
    } catch (error) {
      check.problems.push(`node ${node.id} unreachable: ${(error as Error).message}`);
    }
    try {
      const foreign = foreignSocketCheck(
        node,
        deps.fleet,
        await deps.store.socketsInTable(node.watchersTable),
      );
      if (foreign.refusal) check.problems.push(foreign.refusal);
      check.warnings.push(...foreign.warnings);
    } catch (error) {
      check.problems.push(`table ${node.watchersTable}: ${(error as Error).message}`);
    }
    check.ok = check.problems.length === 0;
    out.push(check);
  }
  return out;
}
