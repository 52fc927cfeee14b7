// The narrow liveness check: kwc.cfg's POST /kwc/peers (route KWC_PEERS) on real Kamailio 5.6.3
// answers about the peers asked only (live / notFound / refused: IP literals only, a bounded
// list), behind the same token as /RPC; and core/peer-liveness.ts trusts "live", confirms every
// "notFound" with core.tcp_list, and falls back to core.tcp_list where the route is missing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KamailioRpcClient } from "#adapters/kamailio-rpc.ts";
import type { NodeConfig } from "#core/fleet.ts";
import { peerKey } from "#core/peer.ts";
import { livePeersAmong } from "#core/peer-liveness.ts";
import { createTestDb, type TestDb } from "../../helpers/db.ts";
import { runningNodeConfig } from "../../helpers/fakes.ts";
import { type KamailioNode, startKamailio } from "../../helpers/kamailio.ts";
import { SipWsClient } from "../../helpers/sip-ws-client.ts";
import { waitUntil } from "../../helpers/wait.ts";

describe("POST /kwc/peers on Kamailio 5.6.3", () => {
  let db: TestDb;
  let node: KamailioNode;
  let config: NodeConfig;
  let client: KamailioRpcClient;
  const phones: SipWsClient[] = [];

  beforeAll(async () => {
    db = await createTestDb("postgres", "peersroute");
    node = await startKamailio({ nodeId: "peers-a", db, listenIp: "127.0.0.61", notifierProcesses: 0 });
    for (let i = 0; i < 5; i++)
      phones.push(await SipWsClient.connect(node.wsUrl, { user: `p${i}`, localAddress: "127.0.0.62" }));
    config = runningNodeConfig(node);
    client = new KamailioRpcClient({ token: async () => node.rpcToken });
  });
  afterAll(async () => {
    for (const p of phones) p.close();
    await node?.stop();
    await db?.drop();
  });

  const key = (p: SipWsClient) => peerKey({ ip: "127.0.0.62", port: p.localPort });

  it("says which of the peers asked are connected; refuses what is not an IP literal", async () => {
    const live = phones.map(key);
    const dead = ["127.0.0.62:9", "10.1.2.3:5060", "[::1]:5060"];
    const answer = await client.peerStates(config, [...live, ...dead, "localhost:5060", "a b", ""]);
    expect(answer).toEqual({ live, notFound: dead, refused: ["localhost:5060", "a b", ""] });
    // Control: core.tcp_list agrees on the same connections.
    const listed = new Set(
      (await client.tcpList(config)).map((c) => peerKey({ ip: c.srcIp, port: c.srcPort })),
    );
    for (const k of live) expect(listed.has(k)).toBe(true);
    for (const k of dead) expect(listed.has(k)).toBe(false);
  });

  it("needs the token, a POST and a bounded list", async () => {
    const body = JSON.stringify({ peers: [key(phones[0] as SipWsClient)] });
    const headers = { authorization: `Bearer ${node.rpcToken}`, "content-type": "application/json" };
    const noToken = await node.http({ path: "/kwc/peers", method: "POST", body });
    expect(noToken.status).toBe(401);
    const ok = await node.http({ path: "/kwc/peers", method: "POST", body, headers });
    expect(ok.status).toBe(200);
    const get = await node.http({ path: "/kwc/peers", method: "GET", headers });
    expect(get.status).toBe(404);
    const tooMany = Array.from({ length: 201 }, (_, i) => `10.0.0.1:${i + 1}`);
    const big = await node.http({ path: "/kwc/peers", body: JSON.stringify({ peers: tooMany }), headers });
    expect(big.status).toBe(400);
    const notJson = await node.http({ path: "/kwc/peers", body: "peers=1", headers });
    expect(notJson.status).toBe(400);
  });

  it("liveness: the route alone when every peer is live, core.tcp_list for any peer not found", async () => {
    let listCalls = 0;
    const fullList = async () => {
      listCalls++;
      return new Set((await client.tcpList(config)).map((c) => peerKey({ ip: c.srcIp, port: c.srcPort })));
    };
    const peers = phones.map((p) => ({ ip: "127.0.0.62", port: p.localPort }));
    const allLive = await livePeersAmong(client, config, peers, fullList);
    expect(allLive.via).toBe("route");
    expect(listCalls).toBe(0);
    const gone = phones.pop() as SipWsClient;
    await gone.die("fin");
    const goneKey = key(gone);
    // Wait until Kamailio has handled the close (the route asks it about connections it knows).
    await waitUntil(async () => (await client.peerStates(config, [goneKey]))?.notFound.length === 1, {
      timeoutMs: 10_000,
      what: `${goneKey} gone from ${node.nodeId}`,
    });
    // The closed peer is not found and the full list confirms it; the others stay live.
    const mixed = await livePeersAmong(client, config, peers, fullList);
    expect(mixed.via).toBe("route+tcp_list");
    expect(listCalls).toBe(1);
    expect(mixed.live.has(goneKey)).toBe(false);
    for (const p of phones) expect(mixed.live.has(key(p))).toBe(true);
  });

  it("a node whose cfg has no /kwc/peers route gets core.tcp_list", async () => {
    const stale = new KamailioRpcClient({
      token: async () => node.rpcToken,
      // What a node with the older cfg answers on /kwc/peers: the catch-all 404 of route(KWC_HTTP).
      fetch: async (url, init) =>
        String(url).endsWith("/kwc/peers")
          ? new Response('{"error":"use /RPC or /kwc/status"}', { status: 404 })
          : fetch(url, init),
    });
    expect(await stale.peerStates(config, ["127.0.0.62:1"])).toBeUndefined();
    let listCalls = 0;
    const out = await livePeersAmong(
      stale,
      config,
      [{ ip: "127.0.0.62", port: phones[0]?.localPort ?? 0 }],
      async () => {
        listCalls++;
        return new Set((await client.tcpList(config)).map((c) => peerKey({ ip: c.srcIp, port: c.srcPort })));
      },
    );
    expect(out.via).toBe("tcp_list");
    expect(listCalls).toBe(1);
    expect(out.live.has(key(phones[0] as SipWsClient))).toBe(true);
  });
});
