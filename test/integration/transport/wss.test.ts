// WSS (SIP over secure WebSocket) on real Kamailio 5.6.3 (PostgreSQL, notifier_processes=0): the
// node has TLS listeners (KWC_WITH_TLS, tls.so) on its IPv4 address and on [::1], with a
// self-signed certificate made at test time; watchers connect over wss:// and verify it. An abrupt
// death (terminate: no close frame) gives connection.closed with transport wss; the worker deletes
// exactly that row and the survivors (WSS over IPv4 and IPv6, plain WS) are notified. Control:
// Kamailio alone keeps the row and the refresh starves them.
//   alias style: the dead watcher is on IPv4, its row's alias ends in `~6`;
//   nated style: the dead watcher is on wss://[::1], its row is `sip:u@[::1]:port;transport=ws`.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { loopbackAddress } from "../../helpers/ports.ts";
import { SipWsClient } from "../../helpers/sip-ws-client.ts";
import { startDataApi } from "../worker/harness.ts";
import { deadWatcherScenario, rowsOf, watchOn } from "./scenario.ts";

describe.each([{ style: "alias" as const }, { style: "nated" as const }])(
  "WSS watchers, $style contacts",
  ({ style }) => {
    let bed: NodeBed;
    let api: { server: DataApiServer; client: RDSDataClient };

    beforeAll(async () => {
      bed = await startNodeBed("postgres", "txwss", {
        nodeId: `txwss-${style}`,
        listenIp: loopbackAddress(),
        listenIpv6: "::1",
        tls: true,
        contactStyle: style,
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
      await expect(SipWsClient.connect(wss?.url ?? "", { user: "untrusting" })).rejects.toThrow(
        /self.signed/i,
      );
    });

    it("the dead WSS watcher's row goes on its connection.closed (transport wss), survivors notified", async () => {
      const wss4 = bed.node.listeners.find((l) => l.transport === "wss" && !l.ip.includes(":"));
      const wss6 = bed.node.listeners.find((l) => l.transport === "wss" && l.ip === "::1");
      expect(wss4?.socketInfo).toMatch(/^tls:127\.[0-9.]+:\d+$/);
      expect(wss6?.socketInfo).toMatch(/^tls:\[::1\]:\d+$/);
      const presentity = `sip:bosswss-${style}@example.com`;
      const publisher = await bed.connect(`bosswss-${style}`);
      expect(await publisher.publish(presentity)).toBe(200);

      const wss4Watcher = await watchOn(bed, wss4?.url ?? "", "swss4", presentity);
      const wss6Watcher = await watchOn(bed, wss6?.url ?? "", "swss6", presentity, { localAddress: "::1" });
      const overWs = await watchOn(bed, bed.node.wsUrl, "sws", presentity);
      const deadOn = style === "alias" ? wss4 : wss6;
      const dead = await watchOn(bed, deadOn?.url ?? "", "deadwss", presentity, { localAddress: deadOn?.ip });
      expect([
        wss4Watcher.c.transport,
        wss6Watcher.c.transport,
        overWs.c.transport,
        dead.c.transport,
      ]).toEqual(["wss", "wss", "ws", "wss"]);

      const [deadRow] = await rowsOf(bed, dead.sub);
      expect(deadRow?.socket_info).toBe(deadOn?.socketInfo);
      expect(deadRow?.contact).toMatch(
        style === "alias"
          ? new RegExp(`;alias=${dead.c.localAddress.replaceAll(".", "\\.")}~${dead.c.localPort}~6$`)
          : new RegExp(`@\\[::1\\]:${dead.c.localPort};transport=ws$`),
      );

      const closed = await deadWatcherScenario({
        bed,
        api,
        style,
        presentity,
        dead,
        survivors: [wss4Watcher, wss6Watcher, overWs],
        how: "terminate",
        messageId: `wss-${style}`,
      });
      expect(closed).toMatchObject({
        peer: { ip: dead.c.localAddress, port: dead.c.localPort },
        transport: "wss",
        cause: "tcp:closed",
      });
    });
  },
);
