// WSS (SIP over secure WebSocket) on real Kamailio 5.6.3 (PostgreSQL, notifier_processes=0,
// set_contact_alias()): the node has a TLS listener (KWC_WITH_TLS, tls.so) with a self-signed
// certificate made at test time; watchers connect over wss:// and verify it. An abrupt death
// (terminate: no close frame) gives connection.closed with transport wss; the row's alias ends in
// `~6`; the worker deletes exactly that row and the survivors (one over WSS, one over plain WS) are
// notified. Control: Kamailio alone keeps the row and the refresh starves them.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { loopbackAddress } from "../../helpers/ports.ts";
import { SipWsClient } from "../../helpers/sip-ws-client.ts";
import { startDataApi } from "../worker/harness.ts";
import { deadWatcherScenario, rowsOf, watchOn } from "./scenario.ts";

describe("WSS watchers, alias contacts", () => {
  let bed: NodeBed;
  let api: { server: DataApiServer; client: RDSDataClient };

  beforeAll(async () => {
    bed = await startNodeBed("postgres", "txwss", {
      nodeId: "txwss",
      listenIp: loopbackAddress(),
      tls: true,
      contactStyle: "alias",
      notifierProcesses: 0,
    });
    api = await startDataApi();
  });

  afterAll(async () => {
    await api?.server.close();
    await bed?.close();
  });

  it("a client that does not trust the node's certificate cannot connect (the listener really is TLS)", async () => {
    const wss = bed.node.listeners.find((l) => l.transport === "wss");
    await expect(SipWsClient.connect(wss?.url ?? "", { user: "untrusting" })).rejects.toThrow(/self.signed/i);
  });

  it("the dead WSS watcher's row (alias ~6) goes on its connection.closed (transport wss), survivors notified", async () => {
    const wss = bed.node.listeners.find((l) => l.transport === "wss");
    expect(wss?.socketInfo).toMatch(/^tls:127\.[0-9.]+:\d+$/);
    const url = wss?.url ?? "";
    const presentity = "sip:bosswss@example.com";
    const publisher = await bed.connect("bosswss");
    expect(await publisher.publish(presentity)).toBe(200);

    const overWss = await watchOn(bed, url, "swss", presentity);
    const overWs = await watchOn(bed, bed.node.wsUrl, "sws", presentity);
    const dead = await watchOn(bed, url, "deadwss", presentity);
    expect([overWss.c.transport, overWs.c.transport, dead.c.transport]).toEqual(["wss", "ws", "wss"]);

    const [deadRow] = await rowsOf(bed, dead.sub);
    expect(deadRow?.socket_info).toBe(wss?.socketInfo);
    expect(deadRow?.contact).toMatch(
      new RegExp(`;alias=${dead.c.localAddress.replaceAll(".", "\\.")}~${dead.c.localPort}~6$`),
    );

    const closed = await deadWatcherScenario({
      bed,
      api,
      style: "alias",
      presentity,
      dead,
      survivors: [overWss, overWs],
      how: "terminate",
      messageId: "wss-1",
    });
    expect(closed).toMatchObject({
      peer: { ip: dead.c.localAddress, port: dead.c.localPort },
      transport: "wss",
      cause: "tcp:closed",
    });
  });
});
