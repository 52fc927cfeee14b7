// Each way a WebSocket watcher can die produces the expected connection.closed event(s), posted
// by the shipped cfg and valid under the event contract (5.6.3: tcpops events for FIN/RST/close,
// only the keepalive's websocket:closed for a silent peer).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectionClosed, KamailioEvent } from "#core/contract.ts";
import type { KamailioNode } from "../../helpers/kamailio.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import type { EventReceiver } from "../../helpers/receiver.ts";
import { type DieMode, SipWsClient } from "../../helpers/sip-ws-client.ts";

const PRESENTITY = "sip:alice@example.com";
let bed: NodeBed;
let rx: EventReceiver;
let node: KamailioNode;
let clients: SipWsClient[];

const closedFor = (client: SipWsClient) => (e: KamailioEvent) =>
  e.type === "connection.closed" && e.peer.ip === client.localAddress && e.peer.port === client.localPort;

// The keepalive is the only reporter of a silent peer, so this file shortens it to 2 s and keeps
// every other peer busy: Kamailio's keepalive race can close an idle live peer (docs/browsers.md).
const watcher = async (user: string) => {
  const { c } = await bed.watch(user, PRESENTITY);
  c.keepBusy();
  return c;
};

beforeAll(async () => {
  bed = await startNodeBed("postgres", "kamconn", {
    nodeId: "conn-node",
    listenIp: "127.0.0.2",
    defines: { KWC_WS_KEEPALIVE: 2 },
  });
  ({ rx, node, clients } = bed);
});

afterAll(() => bed?.close());

describe("connection.closed on Kamailio 5.6.3", () => {
  it("reports every way of dying, each as valid contract events with node, boot and peer", async () => {
    const modes: DieMode[] = ["close-frame", "terminate", "fin", "rst", "silent"];
    const byMode = new Map<DieMode, SipWsClient>();
    for (const mode of modes) byMode.set(mode, await watcher(`w-${mode}`));
    const survivor = await watcher("survivor");
    const t0 = Date.now();
    await Promise.all(modes.map((mode) => byMode.get(mode)?.die(mode)));

    const get = (mode: DieMode) => byMode.get(mode) as SipWsClient;
    // abrupt drops: tcpops fires at once with the peer as Kamailio saw it
    const fin = (await rx.waitFor(closedFor(get("fin")))) as ConnectionClosed;
    const terminate = (await rx.waitFor(closedFor(get("terminate")))) as ConnectionClosed;
    const rst = (await rx.waitFor(closedFor(get("rst")))) as ConnectionClosed;
    expect(fin.cause).toBe("tcp:closed");
    expect(terminate.cause).toBe("tcp:closed");
    expect(rst.cause).toBe("tcp:reset");
    for (const e of [fin, terminate, rst]) {
      expect(e).toMatchObject({ node: "conn-node", boot: node.bootId, transport: "ws" });
      expect(e.conid ?? null).toBeNull(); // 5.6.3: $conid is null in tcp:* routes
    }
    // close handshake: a tcp:* event at once, websocket:closed (no transport: $proto is tcp) later
    const closeFrame = get("close-frame");
    const tcpForClose = (await rx.waitFor(
      (e) => closedFor(closeFrame)(e) && e.type === "connection.closed" && e.cause !== "websocket:closed",
    )) as ConnectionClosed;
    expect(["tcp:closed", "tcp:timeout"]).toContain(tcpForClose.cause);
    const wsForClose = (await rx.waitFor(
      (e) => closedFor(closeFrame)(e) && e.type === "connection.closed" && e.cause === "websocket:closed",
      15_000,
    )) as ConnectionClosed;
    expect(wsForClose.transport).toBeUndefined();
    expect(wsForClose.conid).toBeGreaterThan(0);

    // silent peer (no FIN, no RST, no Pong): nothing is reported until the keepalive gives up;
    // then websocket:closed, plus a tcp:timeout when Kamailio's forced close of that socket is
    // processed first (order depends on the timers, seen both ways). Never tcp:closed/reset.
    const silent = get("silent");
    const wsForSilent = (await rx.waitFor(
      (e) => closedFor(silent)(e) && e.type === "connection.closed" && e.cause === "websocket:closed",
      30_000,
    )) as ConnectionClosed;
    const silentAfterMs = Date.now() - t0;
    expect(wsForSilent.boot).toBe(node.bootId);
    expect(silentAfterMs).toBeGreaterThan(2_000); // not before the first keepalive period ends
    console.log(`silent peer reported by websocket:closed after ${silentAfterMs} ms (keepalive 2 s)`);

    // barrier: the survivor's connection still works, so everything queued before has been drained
    await survivor.ping();
    const forSilent = rx.events.filter(closedFor(silent)).map((e) => (e as ConnectionClosed).cause);
    expect(forSilent).toContain("websocket:closed");
    expect(forSilent.every((cause) => cause === "websocket:closed" || cause === "tcp:timeout")).toBe(true);
    // abrupt drops never produce websocket:closed on 5.6.3
    for (const mode of ["terminate", "fin", "rst"] as const) {
      const causes = rx.events.filter(closedFor(get(mode))).map((e) => (e as ConnectionClosed).cause);
      expect(causes).not.toContain("websocket:closed");
    }
    // the survivor and the JSON-RPC/HTTP connections are never reported
    expect(rx.events.filter(closedFor(survivor))).toEqual([]);
    const ourPeers = new Set(clients.map((c) => c.peer));
    for (const e of rx.events) {
      if (e.type === "connection.closed") expect(ourPeers.has(`${e.peer.ip}:${e.peer.port}`)).toBe(true);
    }
    expect(rx.rejections).toEqual([]);
    // every POST carried the ingest key and a JSON content type
    for (const r of rx.requests) {
      expect(r.headers["x-kwc-key"]).toBe(rx.key);
      expect(r.headers["content-type"]).toBe("application/json");
    }
  });

  it("reports a mass disconnect completely, in envelopes within the default bounds (50 events, 16 KiB)", async () => {
    const count = 120;
    const crowd = await Promise.all(
      Array.from({ length: count }, (_, i) => SipWsClient.connect(node.wsUrl, { user: `crowd${i}` })),
    );
    for (const c of crowd) c.keepBusy();
    clients.push(...crowd);
    const before = rx.requests.length;
    await Promise.all(crowd.map((c) => c.die("rst")));
    for (const c of crowd) await rx.waitFor(closedFor(c), 15_000);
    const bodies = rx.requests.slice(before).filter((r) => r.status === 200);
    const sizes = bodies.map((r) => (JSON.parse(r.body) as { events: unknown[] }).events.length);
    expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(count);
    for (const r of bodies) expect(Buffer.byteLength(r.body)).toBeLessThanOrEqual(16_384);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(50);
    expect(bodies.length).toBeLessThan(count); // batched, not one POST per event
    expect(rx.rejections).toEqual([]);
    console.log(`mass disconnect: ${count} events in ${bodies.length} envelopes (${sizes.join(" ")})`);
  });
});
