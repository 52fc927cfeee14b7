// The JSON-RPC client against a fake fetch: requests, auth, answers and the faults it classifies.
import { describe, expect, it } from "vitest";
import { KamailioRpcClient, parseNodeStatus } from "#adapters/kamailio-rpc.ts";
import { RpcFaultError, RpcTransportError } from "#core/classify.ts";
import { nodeConfig } from "../../helpers/fakes.ts";

const node = nodeConfig("node-1");
const STATUS = {
  node: "node-1",
  boot: "1-abcd",
  version: "5.6.3",
  subsDbMode: 3,
  notifierProcesses: 0,
  watchersTable: "aw",
};

function fakeFetch(reply: (url: string, init: RequestInit) => Response | Promise<Response>) {
  const calls: { url: string; init: RequestInit; body: unknown }[] = [];
  const f = (async (url: string, init: RequestInit) => {
    calls.push({ url, init, body: init.body ? JSON.parse(String(init.body)) : undefined });
    return reply(url, init);
  }) as unknown as typeof fetch;
  return { f, calls };
}

describe("KamailioRpcClient", () => {
  it("sends positional refreshWatchers params with a numeric type, Bearer token and Connection: close", async () => {
    const { f, calls } = fakeFetch(() => Response.json({ jsonrpc: "2.0", result: {}, id: 1 }));
    const rpc = new KamailioRpcClient({ token: async () => "s3cret", fetch: f });
    await rpc.refreshWatchers(node, "sip:a@example.com", "dialog");
    expect(calls[0]?.body).toMatchObject({
      jsonrpc: "2.0",
      method: "presence.refreshWatchers",
      params: ["sip:a@example.com", "dialog", 1],
    });
    const headers = calls[0]?.init.headers as Record<string, string>;
    expect(headers.authorization).toBe("Bearer s3cret");
    expect(headers.connection).toBe("close");
    expect(calls[0]?.url).toBe(node.rpcUrl);
  });

  it("maps HTTP 500 JSON-RPC errors, non-JSON answers and network failures", async () => {
    const err500 = fakeFetch(() =>
      Response.json(
        { jsonrpc: "2.0", error: { code: 500, message: "Execution failed" }, id: 1 },
        { status: 500 },
      ),
    );
    await expect(
      new KamailioRpcClient({ token: async () => "t", fetch: err500.f }).refreshWatchers(
        node,
        "u",
        "presence",
      ),
    ).rejects.toMatchObject({ name: "RpcFaultError", code: 500, rpcMessage: "Execution failed" });
    const html = fakeFetch(() => new Response("<html>bad gateway</html>", { status: 502 }));
    await expect(
      new KamailioRpcClient({ token: async () => "t", fetch: html.f }).tcpList(node),
    ).rejects.toBeInstanceOf(RpcTransportError);
    const denied = fakeFetch(() => new Response("denied", { status: 403 }));
    await expect(
      new KamailioRpcClient({ token: async () => "t", fetch: denied.f }).tcpList(node),
    ).rejects.toBeInstanceOf(RpcFaultError);
    const down = fakeFetch(() => {
      throw Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNREFUSED" } });
    });
    await expect(
      new KamailioRpcClient({ token: async () => "t", fetch: down.f }).tcpList(node),
    ).rejects.toThrow(/ECONNREFUSED/);
  });

  it("times out a node that does not answer", async () => {
    const hang = fakeFetch(
      (_u, init) =>
        new Promise((_resolve, reject) =>
          init.signal?.addEventListener("abort", () => reject(init.signal?.reason)),
        ),
    );
    const rpc = new KamailioRpcClient({ token: async () => "t", fetch: hang.f, timeoutMs: 50 });
    await expect(rpc.tcpList(node)).rejects.toThrow(/timed out after 50 ms/);
  });

  it("parses core.tcp_list and the status endpoint", async () => {
    const { f } = fakeFetch((url) =>
      url.endsWith("/RPC")
        ? Response.json({
            jsonrpc: "2.0",
            result: [
              {
                id: 2,
                type: "WS",
                state: "CONN_OK",
                timeout: 4,
                lifetime: 3605,
                ref_count: 2,
                src_ip: "127.0.0.1",
                src_port: 44114,
                dst_ip: "127.0.0.1",
                dst_port: 5080,
              },
            ],
            id: 1,
          })
        : Response.json(STATUS),
    );
    const rpc = new KamailioRpcClient({ token: async () => "t", fetch: f });
    expect(await rpc.tcpList(node)).toEqual([
      {
        id: 2,
        type: "WS",
        state: "CONN_OK",
        srcIp: "127.0.0.1",
        srcPort: 44114,
        dstIp: "127.0.0.1",
        dstPort: 5080,
      },
    ]);
    expect(await rpc.status(node)).toEqual(STATUS); // kwc.cfg's /kwc/status answer, as is
    expect(parseNodeStatus({ version: "kamailio 5.8.6 (x86_64/linux)", subs_db_mode: "3" })).toEqual({
      version: "5.8.6",
      subsDbMode: 3,
    });
  });
});
