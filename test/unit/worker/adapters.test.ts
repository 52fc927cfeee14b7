// Adapters with mocked edges: JSON-RPC client (fake fetch), fleet config/secret sources (mocked
// SSM and Secrets Manager), the SQS DLQ sink, the Data API store's statements and its MySQL
// deleted-id confirmation, and the fleet schema's validation.
import { ExecuteStatementCommand, RDSDataClient } from "@aws-sdk/client-rds-data";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { GetParametersByPathCommand, SSMClient } from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { cached, loadFleetConfig, resolveSecret } from "#adapters/config-source.ts";
import { DataApiWatcherStore, toSqlParameters } from "#adapters/data-api-store.ts";
import { KamailioRpcClient, parseNodeStatus } from "#adapters/kamailio-rpc.ts";
import { SqsDeadLetterSink } from "#adapters/sqs-dlq.ts";
import { RpcFaultError, RpcTransportError } from "#core/classify.ts";
import { FleetConfigSchema, isPrivateOrLoopbackHost } from "#core/fleet.ts";
import { assertIdentifier, escapeLike, likePattern, mysqlDialect, postgresDialect } from "#core/sql.ts";
import { deleteWatchersStatement, selectCandidatesStatement } from "#core/watcher-sql.ts";
import { nodeConfig } from "./fakes.ts";

const node = nodeConfig("node-1");

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
        : Response.json({
            node: "node-1",
            boot: "1-abcd",
            version: "5.6.3",
            subsDbMode: 3,
            notifierProcesses: 0,
            watchersTable: "aw",
          }),
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
    expect(await rpc.status(node)).toEqual({
      node: "node-1",
      boot: "1-abcd",
      version: "5.6.3",
      subsDbMode: 3,
      notifierProcesses: 0,
      watchersTable: "aw",
    });
    expect(parseNodeStatus({ version: "kamailio 5.8.6 (x86_64/linux)", subs_db_mode: "3" })).toEqual({
      version: "5.8.6",
      subsDbMode: 3,
    });
  });
});

describe("config source", () => {
  const global = {
    version: 1,
    database: { engine: "mysql", resourceArn: "arn:c", secretArn: "arn:s", name: "kamailio" },
    notifyFailureCodes: [481],
  };
  it("reads ssm-path: global + one parameter per node, across pages", async () => {
    const ssm = mockClient(SSMClient);
    ssm
      .on(GetParametersByPathCommand, { Path: "/kwc/fleet", NextToken: undefined })
      .resolves({
        Parameters: [
          { Name: "/kwc/fleet/global", Value: JSON.stringify(global) },
          { Name: "/kwc/fleet/nodes/node-2", Value: JSON.stringify(nodeConfig("node-2")) },
        ],
        NextToken: "p2",
      })
      .on(GetParametersByPathCommand, { Path: "/kwc/fleet", NextToken: "p2" })
      .resolves({ Parameters: [{ Name: "/kwc/fleet/nodes/node-1", Value: JSON.stringify(node) }] });
    const fleet = await loadFleetConfig("ssm-path:/kwc/fleet", { ssm: new SSMClient({}) });
    expect(fleet.nodes.map((n) => n.id)).toEqual(["node-1", "node-2"]);
    expect(fleet.database.engine).toBe("mysql");
    ssm.restore();
  });

  it("reads file: and rejects invalid configs with every problem named", async () => {
    const text = JSON.stringify({ ...global, nodes: [node] });
    const fleet = await loadFleetConfig("file:/etc/fleet.json", { readText: async () => text });
    expect(fleet.nodes[0]?.id).toBe("node-1");
    const bad = JSON.stringify({
      ...global,
      nodes: [
        { ...node, watchersTable: "aw; DROP TABLE x", rpcUrl: "http://203.0.113.5/RPC" },
        { ...node, id: "node-1" },
      ],
    });
    await expect(loadFleetConfig("file:/x", { readText: async () => bad })).rejects.toThrow(
      /nodes\.0\.rpcUrl: an https URL.*nodes\.0\.watchersTable: an SQL identifier.*duplicate node id node-1/,
    );
    await expect(loadFleetConfig("s3://x")).rejects.toThrow(/must start with file: or ssm-path:/);
  });

  it("resolves secret references; values never come from the reference text", async () => {
    expect(await resolveSecret("env:TOKEN_A", { env: { TOKEN_A: "abc" } })).toBe("abc");
    await expect(resolveSecret("env:TOKEN_B", { env: {} })).rejects.toThrow(/not set/);
    expect(await resolveSecret("file:/run/t", { readText: async () => "xyz\n" })).toBe("xyz");
    const sm = mockClient(SecretsManagerClient);
    sm.on(GetSecretValueCommand, { SecretId: "arn:aws:secretsmanager:eu-west-1:1:secret:kwc" }).resolves({
      SecretString: "from-sm",
    });
    expect(
      await resolveSecret("secretsmanager:arn:aws:secretsmanager:eu-west-1:1:secret:kwc", {
        secretsManager: new SecretsManagerClient({}),
      }),
    ).toBe("from-sm");
    sm.restore();
  });

  it("caches for the TTL and retries after a failure", async () => {
    let t = 0;
    let loads = 0;
    const get = cached(
      async () => {
        loads++;
        if (loads === 1) throw new Error("first fails");
        return loads;
      },
      1000,
      () => t,
    );
    await expect(get()).rejects.toThrow("first fails");
    expect(await get()).toBe(2);
    t = 999;
    expect(await get()).toBe(2);
    t = 2000;
    expect(await get()).toBe(3);
  });
});

describe("SqsDeadLetterSink", () => {
  it("sends one message per item with its reason as an attribute, in batches of 10; failures throw", async () => {
    const sqs = mockClient(SQSClient);
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const sink = new SqsDeadLetterSink(new SQSClient({}), "https://sqs/dlq");
    const items = Array.from({ length: 12 }, (_, i) => ({
      body: `b${i}`,
      reason: `r${i}`,
      sourceMessageId: "m",
      eventIndex: i,
    }));
    await sink.send(items);
    const calls = sqs.commandCalls(SendMessageBatchCommand);
    expect(calls.map((c) => c.args[0].input.Entries?.length)).toEqual([10, 2]);
    expect(calls[1]?.args[0].input.Entries?.[1]).toMatchObject({
      MessageBody: "b11",
      MessageAttributes: {
        "kwc-reason": { DataType: "String", StringValue: "r11" },
        "kwc-event-index": { DataType: "Number", StringValue: "11" },
      },
    });
    sqs.reset();
    sqs.on(SendMessageBatchCommand).resolves({ Failed: [{ Id: "0", Code: "Boom", SenderFault: false }] });
    await expect(sink.send(items.slice(0, 1))).rejects.toThrow(/Boom/);
    sqs.restore();
  });
});

describe("SQL helpers and statements", () => {
  it("escapes LIKE metacharacters and refuses unsafe identifiers", () => {
    expect(escapeLike("a%b_c!d")).toBe("a!%b!_c!!d");
    expect(likePattern(["", "@1.2.3.4:5;", ""])).toBe("%@1.2.3.4:5;%");
    expect(() => assertIdentifier('aw"; drop')).toThrow(/refusing/);
    expect(postgresDialect.ident("aw_a")).toBe('"aw_a"');
    expect(mysqlDialect.ident("aw_a")).toBe("`aw_a`");
  });

  it("MySQL compares dialog keys with `=` and BINARY `=` (index usable, byte-exact); no RETURNING", () => {
    const scope = {
      nodeId: "n",
      table: "aw",
      socketInfo: ["tcp:1.1.1.1:5080"],
      contactStyle: "nated" as const,
    };
    const criteria = { peers: [], dialogs: [{ callId: "C'%", toTag: "t", fromTag: "f" }] };
    const my = deleteWatchersStatement(mysqlDialect, scope, [1, 2], criteria);
    expect(my.sql).toContain("callid = :p");
    expect(my.sql).toMatch(/callid = :(p\d+) AND BINARY callid = :\1/);
    expect(my.sql).not.toMatch(/RETURNING/);
    expect(Object.values(my.params)).toContain("C'%");
    expect(my.sql).not.toContain("C'%");
    const pg = deleteWatchersStatement(postgresDialect, scope, [1], criteria);
    expect(pg.sql).toMatch(/RETURNING id$/);
    const sel = selectCandidatesStatement(
      postgresDialect,
      scope,
      { peers: [{ ip: "1.2.3.4", port: 5 }], dialogs: [] },
      0,
      59,
    );
    expect(sel.sql).toContain("LOWER(contact) LIKE :p");
    expect(sel.sql).toContain("ESCAPE '!'");
    expect(sel.sql).toMatch(/ORDER BY id LIMIT 59$/);
  });

  it("binds parameters as Data API fields", () => {
    expect(toSqlParameters({ a: "x", b: 5, c: null, d: true, e: 1.5 })).toEqual([
      { name: "a", value: { stringValue: "x" } },
      { name: "b", value: { longValue: 5 } },
      { name: "c", value: { isNull: true } },
      { name: "d", value: { booleanValue: true } },
      { name: "e", value: { doubleValue: 1.5 } },
    ]);
  });

  it("MySQL store confirms which ids a partial DELETE removed (third call only then)", async () => {
    const rds = mockClient(RDSDataClient);
    rds
      .on(ExecuteStatementCommand)
      .callsFake((input: { sql: string }) =>
        input.sql.startsWith("DELETE") ? { numberOfRecordsUpdated: 1 } : { records: [[{ longValue: 2 }]] },
      );
    const store = new DataApiWatcherStore(new RDSDataClient({}), {
      engine: "mysql",
      resourceArn: "arn:c",
      secretArn: "arn:s",
      name: "kamailio",
    });
    const scope = {
      nodeId: "n",
      table: "aw",
      socketInfo: ["tcp:1.1.1.1:5080"],
      contactStyle: "nated" as const,
    };
    // The peer-index detection is a call of its own, once per table (cached).
    await store.peerIndex.hasValidIndex("aw");
    const detection = rds.commandCalls(ExecuteStatementCommand).length;
    expect(
      await store.deleteWatchers(scope, [1, 2], { peers: [{ ip: "1.2.3.4", port: 5 }], dialogs: [] }),
    ).toEqual([1]);
    expect(rds.commandCalls(ExecuteStatementCommand).length - detection).toBe(2);
    rds.reset();
    rds.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 2 });
    expect(
      await store.deleteWatchers(scope, [1, 2], { peers: [{ ip: "1.2.3.4", port: 5 }], dialogs: [] }),
    ).toEqual([1, 2]);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
    rds.restore();
  });
});

describe("fleet schema", () => {
  it("accepts https anywhere and http only on loopback/private hosts", () => {
    expect(isPrivateOrLoopbackHost("10.1.2.3")).toBe(true);
    expect(isPrivateOrLoopbackHost("[fd00::1]")).toBe(true);
    expect(isPrivateOrLoopbackHost("172.32.0.1")).toBe(false);
    expect(isPrivateOrLoopbackHost("kamailio.example.com")).toBe(false);
    const base = {
      version: 1,
      database: { engine: "postgres", resourceArn: "a", secretArn: "s", name: "kamailio" },
    };
    const ok = FleetConfigSchema.safeParse({
      ...base,
      nodes: [{ ...node, rpcUrl: "https://kam.example.com/RPC" }],
    });
    expect(ok.success).toBe(true);
    expect(ok.data?.notifyFailureCodes).toContain(410); // the documented default
    const shared = FleetConfigSchema.safeParse({
      ...base,
      nodes: [node, { ...nodeConfig("node-2"), watchersTable: node.watchersTable }],
    });
    expect(shared.success).toBe(false);
    expect(shared.error?.issues[0]?.message).toMatch(/one watchers table per WS node/);
  });
});
