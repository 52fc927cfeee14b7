// A connection.closed never deletes a UDP watcher: the peer match selects WS/WSS rows only. A
// real UDP subscriber (a few lines of dgram) on real Kamailio 5.6.3, the real worker over the Data
// API. Attack: a connection.closed naming the UDP watcher's address and port (which the worker
// deleted before: its peer match ignored the transport). Control: the same event for a dead WS
// watcher deletes its row.
import { createSocket, type Socket } from "node:dgram";
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FleetConfig } from "#core/fleet.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { testDbConfig } from "../../helpers/dataapi.ts";
import { createTestDb, type TestDb } from "../../helpers/db.ts";
import { type KamailioNode, startKamailio } from "../../helpers/kamailio.ts";
import { SipWsClient } from "../../helpers/sip-ws-client.ts";
import { waitUntil } from "../../helpers/wait.ts";
import { killAndWaitGone } from "../reconcile/setup.ts";
import { envelopeOf, nodeConfigOf, startDataApi, workerFor } from "./harness.ts";

const LISTEN_IP = "127.0.0.46";
const PRESENTITY = "sip:uma@example.com";

/** A UDP SIP subscriber: SUBSCRIBE, then 200 OK to every NOTIFY (so tm never times it out). */
class UdpSubscriber {
  readonly callId = `udp-${Math.random().toString(16).slice(2)}`;
  readonly socket: Socket = createSocket("udp4");
  notifies = 0;
  subscribed = false;
  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}
  get localPort(): number {
    return this.socket.address().port;
  }
  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.bind(0, "127.0.0.1", resolve));
    this.socket.on("message", (buf) => this.onMessage(buf.toString()));
    const p = this.localPort;
    this.send(
      [
        `SUBSCRIBE ${PRESENTITY} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${p};branch=z9hG4bK${this.callId};rport`,
        "Max-Forwards: 70",
        `From: <sip:udpw@example.com>;tag=f${this.callId}`,
        `To: <${PRESENTITY}>`,
        `Call-ID: ${this.callId}`,
        "CSeq: 1 SUBSCRIBE",
        `Contact: <sip:udpw@127.0.0.1:${p}>`,
        "Event: presence",
        "Expires: 600",
        "Accept: application/pidf+xml",
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n"),
    );
  }
  private send(text: string): void {
    this.socket.send(text, this.port, this.host);
  }
  private onMessage(text: string): void {
    const [start, ...rest] = text.split("\r\n");
    if (start?.startsWith("SIP/2.0 2")) this.subscribed = true;
    if (!start?.startsWith("NOTIFY")) return;
    this.notifies++;
    const headers = rest.slice(0, rest.indexOf(""));
    const keep = headers.filter((h) => /^(via|from|to|call-id|cseq):/i.test(h));
    this.send(["SIP/2.0 200 OK", ...keep, "Content-Length: 0", "", ""].join("\r\n"));
  }
  close(): void {
    this.socket.close();
  }
}

let db: TestDb;
let node: KamailioNode;
let api: { server: DataApiServer; client: RDSDataClient };
let fleet: FleetConfig;
let tokens: Map<string, string>;
const closers: (() => void)[] = [];

beforeAll(async () => {
  db = await createTestDb("postgres", "wudp");
  await db.createNodeTable("aw_udp");
  node = await startKamailio({
    db,
    nodeId: "udp-node",
    watchersTable: "aw_udp",
    listenIp: LISTEN_IP,
    defines: { KWC_LISTEN_UDP: true },
  });
  api = await startDataApi();
  tokens = new Map([[node.nodeId, node.rpcToken]]);
  const config = nodeConfigOf(node, "nated");
  fleet = {
    version: 1,
    database: testDbConfig(db),
    notifyFailureCodes: [408, 481],
    // the node's WS listener and its UDP listener: the UDP rows are in the worker's scope
    nodes: [{ ...config, socketInfo: [node.socketInfo, `udp:${LISTEN_IP}:${node.sipPort}`] }],
  };
});

afterAll(async () => {
  for (const close of closers) close();
  await node?.stop();
  await api?.server.close();
  await db?.drop();
});

const rowsOf = async (callId: string) =>
  db.query<{ contact: string; socket_info: string }>(
    "SELECT contact, socket_info FROM aw_udp WHERE callid = $1",
    [callId],
  );
const closedAt = (peer: { ip: string; port: number }) => ({
  type: "connection.closed",
  node: node.nodeId,
  boot: node.bootId,
  peer,
  transport: "ws",
  cause: "tcp:reset",
  at: Math.floor(Date.now() / 1000),
});

describe("a UDP watcher and a WebSocket peer's close", () => {
  it("a connection.closed naming the UDP watcher's address never deletes it; control: a dead WS watcher's row goes", async () => {
    const publisher = await SipWsClient.connect(node.wsUrl, { user: "uma" });
    closers.push(() => publisher.close());
    expect(await publisher.publish(PRESENTITY)).toBe(200);
    const udp = new UdpSubscriber(LISTEN_IP, node.sipPort);
    closers.push(() => udp.close());
    await udp.start();
    await waitUntil(() => udp.subscribed && udp.notifies > 0, { what: "the UDP SUBSCRIBE and its NOTIFY" });
    const [row] = await rowsOf(udp.callId);
    expect(row?.socket_info).toBe(`udp:${LISTEN_IP}:${node.sipPort}`);
    expect(row?.contact).toContain(`@127.0.0.1:${udp.localPort}`); // what the peer match's SQL selects

    const worker = workerFor(fleet, api.client, tokens);
    const attack = await worker.run([
      { messageId: "m1", body: envelopeOf(closedAt({ ip: "127.0.0.1", port: udp.localPort })) },
    ]);
    expect(attack.failedMessageIds).toEqual([]);
    expect(await rowsOf(udp.callId)).toHaveLength(1);
    expect(worker.tel.counts.GuardKeepsNoPeer).toBe(1);

    // control: a WS watcher of the same presentity dies; the same event type deletes its row
    const ws = await SipWsClient.connect(node.wsUrl, { user: "wes" });
    const sub = await ws.subscribe(PRESENTITY);
    await ws.waitForNotify((n) => n.callId === sub.callId);
    const peer = { ip: ws.localAddress, port: ws.localPort };
    await killAndWaitGone(node, ws, "rst");
    const control = await worker.run([{ messageId: "m2", body: envelopeOf(closedAt(peer)) }]);
    expect(control.deleted).toBe(1);
    expect(await rowsOf(sub.callId)).toHaveLength(0);
    expect(await rowsOf(udp.callId)).toHaveLength(1);
  });
});
