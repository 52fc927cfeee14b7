// The status endpoint reports the node's real settings, and both it and JSON-RPC refuse callers
// without the Bearer token (401) or from a source outside KWC_RPC_ALLOW (403).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BootIdSchema } from "../../../lambdas/core/contract.ts";
import { createTestDb, type TestDb } from "../../helpers/db.ts";
import { type KamailioNode, startKamailio } from "../../helpers/kamailio.ts";

let pgDb: TestDb;
let myDb: TestDb;
let syncNode: KamailioNode;
let notifierNode: KamailioNode;

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
  const rpcBody = JSON.stringify({ jsonrpc: "2.0", method: "core.version", id: 1 });

  it("answers with the right token", async () => {
    const r = await syncNode.rpc("core.version");
    expect(r.status).toBe(200);
    expect(r.body.result).toMatch(/^kamailio 5\.6\.3/);
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
