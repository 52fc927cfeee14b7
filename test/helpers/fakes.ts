// The one fake of each port the kernel's use cases share (Kamailio) and the one node/fleet
// builder: worker, sweep and gate tests build their nodes and fleets here.
import type { FleetConfig, NodeConfig } from "#core/fleet.ts";
import type { KamailioClient, NodeStatus, TcpConnection } from "#core/ports.ts";

/** The boot id every fake node reports unless a test sets another. */
export const BOOT = "1795621085-9f3a61c2";

export function nodeConfig(id: string, overrides: Partial<NodeConfig> = {}): NodeConfig {
  const n = Number(id.replace(/\D/g, "") || 1);
  return {
    id,
    rpcUrl: `http://127.0.0.${n + 1}:5081/RPC`,
    statusUrl: `http://127.0.0.${n + 1}:5081/kwc/status`,
    tokenSecret: "env:KWC_TOKEN",
    socketInfo: [`tcp:127.0.0.${n + 1}:5080`],
    watchersTable: `aw_${id.replace(/[^A-Za-z0-9]/g, "_")}`,
    contactStyle: "nated",
    kamailioVersion: "5.6.3",
    subsDbMode: 3,
    notifierProcesses: 0,
    ...overrides,
  };
}

export function fleetOf(nodes: NodeConfig[], overrides: Partial<FleetConfig> = {}): FleetConfig {
  return {
    version: 1,
    database: {
      engine: "postgres",
      resourceArn: "arn:aws:rds:eu-west-1:1:cluster:c",
      secretArn: "arn:s",
      name: "kamailio",
    },
    notifyFailureCodes: [404, 405, 408, 410, 416, 481, 482, 483, 484, 485, 489, 501, 502, 604],
    nodes,
    ...overrides,
  };
}

export class FakeKamailio implements KamailioClient {
  live = new Map<string, { ip: string; port: number }[]>();
  refreshCalls: { node: string; presentityUri: string; event: string }[] = [];
  tcpListCalls: string[] = [];
  /** Queued outcomes per method; an Error is thrown, undefined succeeds. */
  refreshFailures: unknown[] = [];
  tcpListFailures: unknown[] = [];
  statusOf = new Map<string, NodeStatus | Error>();
  /** Every call in order ("status", "tcp_list", "refresh <presentity> <event>"): the sweep's order tests. */
  journal: string[] = [];
  /** A fault for one presentity's refresh (thrown), besides the queued refreshFailures. */
  refreshFaultFor?: (presentityUri: string) => unknown;
  async tcpList(node: NodeConfig): Promise<TcpConnection[]> {
    this.tcpListCalls.push(node.id);
    this.journal.push("tcp_list");
    const f = this.tcpListFailures.shift();
    if (f) throw f;
    return (this.live.get(node.id) ?? []).map((p, i) => ({
      id: i + 1,
      type: "WS",
      state: "CONN_OK",
      srcIp: p.ip,
      srcPort: p.port,
      dstIp: "127.0.0.1",
      dstPort: 5080,
    }));
  }
  async refreshWatchers(node: NodeConfig, presentityUri: string, event: string): Promise<void> {
    this.refreshCalls.push({ node: node.id, presentityUri, event });
    this.journal.push(`refresh ${presentityUri} ${event}`);
    const f = this.refreshFailures.shift() ?? this.refreshFaultFor?.(presentityUri);
    if (f) throw f;
  }
  statusCalls = 0;
  async status(node: NodeConfig): Promise<NodeStatus> {
    this.statusCalls++;
    this.journal.push("status");
    const s = this.statusOf.get(node.id);
    if (s instanceof Error) throw s;
    return s ?? { boot: BOOT };
  }
}

/**
 * `port` with `action` run once, right before the first call of `method`: the seam for races
 * ("a client reconnects between the liveness check and the DELETE", "between the row read and
 * core.tcp_list") at the port the use case calls, so the production code carries no test hook.
 */
export function actBeforeFirst<P extends object>(
  port: P,
  method: keyof P & string,
  action: () => unknown,
): P {
  let pending: (() => unknown) | undefined = action;
  return new Proxy(port, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== "function") return value;
      if (key !== method) return value.bind(target);
      return async (...args: unknown[]) => {
        const run = pending;
        pending = undefined;
        await run?.();
        return value.apply(target, args);
      };
    },
  });
}
