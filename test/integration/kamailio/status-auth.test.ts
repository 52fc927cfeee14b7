// The status endpoint reports the node's real settings, and both it and JSON-RPC refuse callers
// without the Bearer token (401) or from a source outside KWC_RPC_ALLOW (403). On kwc's listener
// only the methods the service calls are dispatched; everything else is 403, even with the token.
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BootIdSchema } from "#core/contract.ts";
import { createTestDb, type TestDb } from "../../helpers/db.ts";
import { httpRequest, type KamailioNode, startKamailio } from "../../helpers/kamailio.ts";

let pgDb: TestDb;
let myDb: TestDb;
let syncNode: KamailioNode;
let notifierNode: KamailioNode;
const NEXT_TOKEN = `next-${"n".repeat(20)}`;

beforeAll(async () => {
  [pgDb, myDb] = await Promise.all([
    createTestDb("postgres", "kamstatus"),
    createTestDb("mysql", "kamstatus"),
  ]);
  await myDb.createNodeTable("aw_status_b");
  syncNode = await startKamailio({
    nodeId: "status-a",
    db: pgDb,
    listenIp: "127.0.0.6",
    notifierProcesses: 0,
    // only 127.0.0.1 may call; 127.0.0.7 is refused with 403
    rpcAllow: "^127\\.0\\.0\\.1$",
    rpcTokenNext: NEXT_TOKEN,
  });
  notifierNode = await startKamailio({
    nodeId: "status-b",
    db: myDb,
    listenIp: "127.0.0.6",
    notifierProcesses: 1,
    watchersTable: "aw_status_b",
    contactStyle: "alias",
  });
});

afterAll(async () => {
  await syncNode?.stop();
  await notifierNode?.stop();
  await pgDb?.drop();
  await myDb?.drop();
});

describe("status endpoint", () => {
  it("reports node id, boot id, version and presence settings as configured", async () => {
    const a = await syncNode.status();
    expect(a).toMatchObject({
      node: "status-a",
      boot: syncNode.bootId,
      version: "5.6.3",
      subsDbMode: 3,
      notifierProcesses: 0,
      sendFastNotify: 1,
      contactStyle: "nated",
      watchersTable: "active_watchers",
    });
    expect(BootIdSchema.safeParse(a.boot).success).toBe(true);
    expect(a.versionFull).toMatch(/^kamailio 5\.6\.3 /);
    expect(a.counters).toMatchObject({ postFailures: 0, droppedEnvelopes: 0, evicted: 0 });
    const b = await notifierNode.status();
    expect(b).toMatchObject({
      node: "status-b",
      notifierProcesses: 1,
      watchersTable: "aw_status_b",
      subsDbMode: 3,
      contactStyle: "alias",
    });
    expect(b.boot).not.toBe(a.boot);
  });

  it("gets a new boot id on restart", async () => {
    const before = notifierNode.bootId;
    await notifierNode.restart();
    expect(notifierNode.bootId).not.toBe(before);
    expect((await notifierNode.status()).boot).toBe(notifierNode.bootId);
  });
});

describe("JSON-RPC and status authentication", () => {
  const rpcBody = JSON.stringify({ jsonrpc: "2.0", method: "core.tcp_list", id: 1 });

  it("answers with the right token", async () => {
    const r = await syncNode.rpc("core.tcp_list");
    expect(r.status).toBe(200);
    expect(Array.isArray(r.body.result)).toBe(true);
  });

  it("accepts the second token of a rotation (KWC_RPC_TOKEN_NEXT) as well", async () => {
    const next = await syncNode.http({
      path: "/RPC",
      body: rpcBody,
      headers: { authorization: `Bearer ${NEXT_TOKEN}` },
    });
    expect(next.status).toBe(200);
    // control: the node without a next token refuses it
    const other = await notifierNode.http({
      path: "/RPC",
      body: rpcBody,
      headers: { authorization: `Bearer ${NEXT_TOKEN}` },
    });
    expect(other.status).toBe(401);
  });

  it("refuses without a token or with a wrong one (401), for /RPC and /kwc/status", async () => {
    for (const path of ["/RPC", "/kwc/status"]) {
      const body = path === "/RPC" ? rpcBody : undefined;
      const none = await syncNode.http({ path, body });
      expect(none.status).toBe(401);
      const wrong = await syncNode.http({
        path,
        body,
        headers: { authorization: `Bearer ${syncNode.rpcToken}x` },
      });
      expect(wrong.status).toBe(401);
      const basic = await syncNode.http({ path, body, headers: { authorization: syncNode.rpcToken } });
      expect(basic.status).toBe(401);
      // the token of another node is not this node's token
      const other = await syncNode.http({
        path,
        body,
        headers: { authorization: `Bearer ${notifierNode.rpcToken}` },
      });
      expect(other.status).toBe(401);
      expect(JSON.stringify(none.body)).not.toContain("result");
    }
  });

  it("refuses a source outside the allowed list (403) even with the right token", async () => {
    const auth = { authorization: `Bearer ${syncNode.rpcToken}` };
    const refused = await syncNode.http({
      path: "/RPC",
      body: rpcBody,
      headers: auth,
      localAddress: "127.0.0.7",
    });
    expect(refused.status).toBe(403);
    const status = await syncNode.http({ path: "/kwc/status", headers: auth, localAddress: "127.0.0.7" });
    expect(status.status).toBe(403);
    // control: the same request from the allowed source passes
    const allowed = await syncNode.http({
      path: "/RPC",
      body: rpcBody,
      headers: auth,
      localAddress: "127.0.0.1",
    });
    expect(allowed.status).toBe(200);
  });
});

describe("JSON-RPC allow-list on kwc's listener (fails closed)", () => {
  const auth = () => ({ authorization: `Bearer ${syncNode.rpcToken}` });
  const post = (body: string) => syncNode.http({ path: "/RPC", body, headers: auth() });

  it("dispatches the methods the service calls", async () => {
    expect((await syncNode.rpc("core.tcp_list")).status).toBe(200);
    const refresh = await syncNode.rpc("presence.refreshWatchers", ["sip:nobody@example.com", "presence", 1]);
    // dispatched: Kamailio itself answers (no watchers is success)
    expect(refresh.status).toBe(200);
    expect(refresh.body).toHaveProperty("result");
  });

  it("refuses every other method, batches and bodies that are not one JSON-RPC object, even with the token", async () => {
    const refused = [
      JSON.stringify({ jsonrpc: "2.0", method: "core.version", id: 1 }),
      JSON.stringify({ jsonrpc: "2.0", method: "core.kill", id: 1 }),
      JSON.stringify({ jsonrpc: "2.0", method: "tm.t_uac_start", id: 1 }),
      JSON.stringify([{ jsonrpc: "2.0", method: "core.tcp_list", id: 1 }]),
      JSON.stringify("core.tcp_list"),
      "not json",
      "",
      '{"jsonrpc":"2.0","id":1}',
      '{"jsonrpc":"2.0","method":["core.tcp_list"],"id":1}',
      // two parsers must never read two different methods from one body
      '{"jsonrpc":"2.0","method":"core.kill","method":"core.tcp_list","id":1}',
      '{"jsonrpc":"2.0","METHOD":"core.kill","method":"core.tcp_list","id":1}',
      '{"jsonrpc":"2.0","m\\u0065thod":"core.kill","method":"core.tcp_list","id":1}',
      '{"jsonrpc":"2.0","method":"core.tcp_list","id":1} {"method":"core.kill"}',
    ];
    for (const body of refused) {
      const r = await post(body);
      expect(r.status, body).toBe(403);
      expect(JSON.stringify(r.body), body).not.toContain("result");
    }
    // control: the same token and path with an allowed method passes
    expect((await post(rpcBody())).status).toBe(200);
  });

  it("answers only GET on /kwc/status and POST on /RPC", async () => {
    expect(
      (await syncNode.http({ method: "POST", path: "/kwc/status", body: "{}", headers: auth() })).status,
    ).toBe(404);
    expect((await syncNode.http({ method: "GET", path: "/RPC", headers: auth() })).status).toBe(404);
  });
});

function rpcBody(): string {
  return JSON.stringify({ jsonrpc: "2.0", method: "core.tcp_list", id: 1 });
}

/** Sends one SIP OPTIONS over TCP and resolves with what came back within `ms` ("" for nothing). */
function sipOptions(host: string, port: number, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let got = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      got += d;
      if (got.includes("\r\n\r\n")) socket.end();
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(got));
    setTimeout(() => socket.destroy(), ms);
    socket.on("connect", () => {
      const { port: local } = socket.address() as { port: number };
      socket.write(
        `OPTIONS sip:${host}:${port} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:${local};branch=z9hG4bK-kwc-${local}\r\n` +
          `Max-Forwards: 70\r\nFrom: <sip:probe@example.com>;tag=p1\r\nTo: <sip:${host}>\r\n` +
          `Call-ID: kwc-no-sip-${local}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`,
      );
    });
  });
}

describe("kwc's listener handles no SIP", () => {
  it("drops SIP that reaches it (route(KWC_NO_SIP)); the SIP socket answers the same request", async () => {
    // control first: the node's SIP socket answers OPTIONS with 200
    expect(await sipOptions(syncNode.listenIp, syncNode.sipPort, 3000)).toMatch(/^SIP\/2\.0 200/);
    expect(await sipOptions(syncNode.listenIp, syncNode.rpcPort, 1500)).toBe("");
  });
});

describe("kwc's listener over TLS (KWC_HTTP_TLS: listen=tls:)", () => {
  it("serves status and the allow-listed JSON-RPC over HTTPS, verified against the node's certificate; plain HTTP gets nothing", async () => {
    const node = await startKamailio({
      nodeId: "status-tls",
      db: pgDb,
      listenIp: "127.0.0.6",
      tls: true,
      httpTls: true,
    });
    try {
      expect(node.statusUrl).toMatch(/^https:/);
      expect(await node.status()).toMatchObject({ node: "status-tls", subsDbMode: 3 });
      expect((await node.rpc("core.tcp_list")).status).toBe(200);
      expect((await node.rpc("core.version")).status).toBe(403);
      // control: the same listener does not answer plain HTTP
      await expect(
        httpRequest(node.statusUrl.replace("https:", "http:"), {
          path: "/kwc/status",
          headers: { authorization: `Bearer ${node.rpcToken}` },
        }),
      ).rejects.toThrow();
    } finally {
      await node.stop();
    }
  });
});
