/**
 * The reconcile NodeProbe over the worker's KamailioClient port (JSON-RPC + status endpoint).
 * What the node's status endpoint reports wins over the fleet config; the config fills the gaps.
 */
import { RpcFaultError } from "./classify.ts";
import type { NodeConfig } from "./fleet.ts";
import { factsFromStatus, type KamailioClient } from "./ports.ts";
import type { NodeProbe, NodeStatus } from "./reconcile-sweep.ts";

export function kamailioProbe(client: KamailioClient, nodes: readonly NodeConfig[]): NodeProbe {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const config = (id: string): NodeConfig => {
    const node = byId.get(id);
    if (!node) throw new Error(`node ${id} is not in the fleet config`);
    return node;
  };
  return {
    async status(n): Promise<NodeStatus> {
      const node = config(n.id);
      const s = await client.status(node);
      const facts = factsFromStatus(node, s);
      return {
        bootId: facts.bootId ?? "unknown",
        kamailioVersion: facts.kamailioVersion,
        subsDbMode: facts.subsDbMode,
        notifierProcesses: facts.notifierProcesses,
        ...(s.watchersTable ? { watchersTable: s.watchersTable } : {}),
      };
    },
    async connections(n) {
      const list = await client.tcpList(config(n.id));
      return list.map((c) => ({ ip: c.srcIp, port: c.srcPort, type: c.type }));
    },
    async refresh(n, presentity, event) {
      try {
        await client.refreshWatchers(config(n.id), presentity, event);
        return { ok: true };
      } catch (error) {
        // A JSON-RPC fault (e.g. 500 "Execution failed": a NOTIFY could not be sent) is an outcome
        // to report; a transport fault propagates and is reported by the sweep the same way.
        if (error instanceof RpcFaultError) return { ok: false, message: error.message };
        throw error;
      }
    },
  };
}
