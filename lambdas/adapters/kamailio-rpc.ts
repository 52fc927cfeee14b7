/**
 * Kamailio client: JSON-RPC 2.0 (jsonrpcs over xhttp) and the cfg's status endpoint, over `fetch`.
 * Every request: a timeout, `Connection: close` (Kamailio closes reply sockets without saying so),
 * `Authorization: Bearer <token>`; replies parsed with zod. HTTP 500 carries the JSON-RPC `error`.
 * Never calls `presence.watcher_list` (it crashes 6.0.1 in DB-only mode).
 */
import { z } from "zod";
import { NodeOverloadedError, RpcFaultError, RpcTransportError } from "../core/classify.ts";
import type { NodeConfig } from "../core/fleet.ts";
import type { KamailioClient, NodeStatus, PeerStates, TcpConnection } from "../core/ports.ts";

export const DEFAULT_RPC_TIMEOUT_MS = 5000;

const RpcReplySchema = z.union([
  z.object({ jsonrpc: z.literal("2.0"), result: z.unknown(), id: z.unknown().optional() }),
  z.object({
    jsonrpc: z.literal("2.0"),
    error: z.object({ code: z.number(), message: z.string() }),
    id: z.unknown().optional(),
  }),
]);

const TcpListSchema = z.array(
  z.object({
    id: z.number(),
    type: z.string(),
    state: z.string(),
    src_ip: z.string(),
    src_port: z.number(),
    dst_ip: z.string(),
    dst_port: z.number(),
  }),
);

/** Lenient: the status endpoint (kamailio/ cfg) may name fields in camelCase or Kamailio's snake_case. */
const StatusSchema = z
  .object({
    node: z.string().optional(),
    nodeId: z.string().optional(),
    boot: z.string().optional(),
    bootId: z.string().optional(),
    version: z.string().optional(),
    kamailioVersion: z.string().optional(),
    subsDbMode: z.coerce.number().int().optional(),
    subs_db_mode: z.coerce.number().int().optional(),
    notifierProcesses: z.coerce.number().int().optional(),
    notifier_processes: z.coerce.number().int().optional(),
    watchersTable: z.string().optional(),
    watchers_table: z.string().optional(),
  })
  .loose();

/** `kamailio 5.6.3 (x86_64/linux)` or `5.6.3` → `5.6.3`. */
export function versionFromText(text: string | undefined): string | undefined {
  return text?.match(/\d+\.\d+\.\d+/)?.[0];
}

export function parseNodeStatus(raw: unknown): NodeStatus {
  const s = StatusSchema.parse(raw);
  const status: NodeStatus = {};
  const node = s.node ?? s.nodeId;
  const boot = s.boot ?? s.bootId;
  const version = versionFromText(s.version ?? s.kamailioVersion);
  const subsDbMode = s.subsDbMode ?? s.subs_db_mode;
  const notifierProcesses = s.notifierProcesses ?? s.notifier_processes;
  const watchersTable = s.watchersTable ?? s.watchers_table;
  if (node !== undefined) status.node = node;
  if (boot !== undefined) status.boot = boot;
  if (version !== undefined) status.version = version;
  if (subsDbMode !== undefined) status.subsDbMode = subsDbMode;
  if (notifierProcesses !== undefined) status.notifierProcesses = notifierProcesses;
  if (watchersTable !== undefined) status.watchersTable = watchersTable;
  return status;
}

export interface KamailioRpcOptions {
  /** Resolves a node's Bearer token from its secret reference (cached by the caller). */
  token: (node: NodeConfig) => Promise<string>;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

const PeerStatesSchema = z.object({
  live: z.array(z.string()),
  notFound: z.array(z.string()),
  refused: z.array(z.string()),
});

export class KamailioRpcClient implements KamailioClient {
  #nextId = 1;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  constructor(private readonly options: KamailioRpcOptions) {
    this.#fetch = options.fetch ?? fetch;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
  }

  async #request(
    node: NodeConfig,
    url: string,
    what: string,
    init: RequestInit,
  ): Promise<{ status: number; body: unknown }> {
    const token = await this.options.token(node);
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(url, {
        ...init,
        headers: {
          ...(init.headers as Record<string, string> | undefined),
          authorization: `Bearer ${token}`,
          connection: "close",
          accept: "application/json",
        },
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      const e = error as Error & { cause?: { code?: string } };
      const detail =
        e.name === "TimeoutError" ? `timed out after ${this.#timeoutMs} ms` : (e.cause?.code ?? e.message);
      throw new RpcTransportError(what, `node ${node.id} unreachable: ${detail}`);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: response.status, body: body ?? text };
  }

  /** Calls one JSON-RPC method with positional params; returns `result` or throws. */
  async call(node: NodeConfig, method: string, params: unknown[] = []): Promise<unknown> {
    const id = this.#nextId++;
    const { status, body } = await this.#request(node, node.rpcUrl, method, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", method, params, id }),
    });
    // kwc.cfg's refresh budget (route KWC_REFRESH_BUDGET): the node asks every caller to back off.
    if (status === 503) throw new NodeOverloadedError(method, node.id);
    const reply = RpcReplySchema.safeParse(body);
    if (!reply.success) {
      if (status === 401 || status === 403)
        throw new RpcFaultError(
          method,
          status,
          `not authorised (HTTP ${status}): check the node's token`,
          status,
        );
      throw new RpcTransportError(method, `node ${node.id} answered HTTP ${status} without JSON-RPC`, status);
    }
    if ("error" in reply.data)
      throw new RpcFaultError(method, reply.data.error.code, reply.data.error.message, status);
    return reply.data.result;
  }

  async tcpList(node: NodeConfig): Promise<TcpConnection[]> {
    const result = TcpListSchema.parse(await this.call(node, "core.tcp_list"));
    return result.map((c) => ({
      id: c.id,
      type: c.type,
      state: c.state,
      srcIp: c.src_ip,
      srcPort: c.src_port,
      dstIp: c.dst_ip,
      dstPort: c.dst_port,
    }));
  }

  async refreshWatchers(node: NodeConfig, presentityUri: string, event: string): Promise<void> {
    // Type 1 (re-send current state) must be a JSON number: the string "1" is read as 0.
    await this.call(node, "presence.refreshWatchers", [presentityUri, event, 1]);
  }

  async status(node: NodeConfig): Promise<NodeStatus> {
    const { status, body } = await this.#request(node, node.statusUrl, "status", { method: "GET" });
    if (status === 401 || status === 403)
      throw new RpcFaultError("status", status, `not authorised (HTTP ${status})`, status);
    if (status !== 200 || typeof body !== "object" || body === null)
      throw new RpcTransportError("status", `node ${node.id} status answered HTTP ${status}`, status);
    return parseNodeStatus(body);
  }

  /** `POST /kwc/peers` (kwc.cfg route KWC_PEERS); undefined when the node's cfg has no such route. */
  async peerStates(node: NodeConfig, peers: string[]): Promise<PeerStates | undefined> {
    const url = new URL("/kwc/peers", node.statusUrl).toString();
    const { status, body } = await this.#request(node, url, "peers", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ peers }),
    });
    if (status === 404) return undefined;
    if (status === 401 || status === 403)
      throw new RpcFaultError("peers", status, `not authorised (HTTP ${status})`, status);
    const parsed = PeerStatesSchema.safeParse(body);
    if (status !== 200 || !parsed.success)
      throw new RpcTransportError("peers", `node ${node.id} /kwc/peers answered HTTP ${status}`, status);
    return parsed.data;
  }
}
