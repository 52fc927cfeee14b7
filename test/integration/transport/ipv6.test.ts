// IPv6 peers on real Kamailio 5.6.3 (PostgreSQL, notifier_processes=0): the node also listens for
// SIP over WS on [::1] (KWC_LISTEN_IPV6), watchers connect from ::1. For both contact styles
// (`sip:u@[::1]:port;transport=ws` and `;alias=[::1]~port~5`): an abrupt death gives a
// connection.closed event with the bare IPv6 peer that parses with the contract, and the worker
// deletes exactly that row while a live ::1 watcher whose port is a prefix/extension of the dead
// one keeps its row; survivors are notified. Control: Kamailio alone keeps the row and starves them.
// Then the liveness guard with IPv6: an event naming a connected ::1 peer keeps its row.
// Needs ::1 on lo: startKamailio fails with a clear message where it is missing (never skipped).
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { isPortFree, loopbackAddress } from "../../helpers/ports.ts";
import { envelopeOf, startDataApi, workerFor } from "../worker/harness.ts";
import { deadWatcherScenario, fleetOf, rowsOf, watchOn } from "./scenario.ts";

const IPV6 = "::1";

/**
 * Two ports on ::1 where one is the other with a digit appended (2345 / 23457). Both stay below
 * Linux's ephemeral range (32768+), so no other test's port-0 bind takes them meanwhile.
 */
async function prefixPortPair(): Promise<{ short: number; long: number }> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const short = 2000 + Math.floor(Math.random() * 1276); // ≤ 3275: long ≤ 32759
    const long = short * 10 + Math.floor(Math.random() * 10);
    if ((await isPortFree(IPV6, short)) && (await isPortFree(IPV6, long))) return { short, long };
  }
  throw new Error("no free prefix/extension port pair on ::1");
}

describe.each([
  { style: "nated" as const, deadGets: "short" as const },
  { style: "alias" as const, deadGets: "long" as const },
])("IPv6 watchers, $style contacts", ({ style, deadGets }) => {
  let bed: NodeBed;
  let api: { server: DataApiServer; client: RDSDataClient };

  beforeAll(async () => {
    bed = await startNodeBed("postgres", "tx6", {
      nodeId: `tx6-${style}`,
      listenIp: loopbackAddress(),
      listenIpv6: IPV6,
      contactStyle: style,
      notifierProcesses: 0,
    });
    api = await startDataApi();
  });

  afterAll(async () => {
    await api?.server.close();
    await bed?.close();
  });

  it("the dead ::1 watcher's row goes, a live ::1 watcher on a prefix/extension port stays, survivors notified", async () => {
    const v6 = bed.node.listeners.find((l) => l.ip === IPV6 && l.transport === "ws");
    expect(v6?.socketInfo).toBe(`tcp:[::1]:${bed.node.sipPort}`);
    const url = v6?.url ?? "";
    const presentity = `sip:boss6-${style}@example.com`;
    const publisher = await bed.connect(`boss6-${style}`);
    expect(await publisher.publish(presentity)).toBe(200);

    const ports = await prefixPortPair();
    const deadPort = ports[deadGets];
    const twinPort = deadGets === "short" ? ports.long : ports.short;
    const survivor = await watchOn(bed, url, `s6-${style}`, presentity, { localAddress: IPV6 });
    const twin = await watchOn(bed, url, `twin6-${style}`, presentity, {
      localAddress: IPV6,
      localPort: twinPort,
    });
    const dead = await watchOn(bed, url, `dead6-${style}`, presentity, {
      localAddress: IPV6,
      localPort: deadPort,
    });
    expect([dead.c.localAddress, dead.c.localPort, twin.c.localPort]).toEqual([IPV6, deadPort, twinPort]);

    // What Kamailio writes for an IPv6 peer, in each style.
    const [deadRow] = await rowsOf(bed, dead.sub);
    expect(deadRow?.socket_info).toBe(v6?.socketInfo);
    expect(deadRow?.contact).toMatch(
      style === "alias"
        ? new RegExp(`;alias=\\[::1\\]~${deadPort}~5$`)
        : new RegExp(`@\\[::1\\]:${deadPort};transport=ws$`),
    );

    const closed = await deadWatcherScenario({
      bed,
      api,
      style,
      presentity,
      dead,
      survivors: [survivor, twin],
      how: "rst",
      messageId: `v6-${style}`,
    });
    expect(closed).toMatchObject({ peer: { ip: IPV6, port: deadPort }, transport: "ws", cause: "tcp:reset" });
    expect(await rowsOf(bed, twin.sub)).toEqual([expect.objectContaining({ socket_info: v6?.socketInfo })]);

    // Liveness guard on IPv6: an event naming the live twin's peer (as after a reused port) keeps
    // its row, because core.tcp_list lists that ::1 peer now; a dead control in the same batch goes.
    const dead2 = await watchOn(bed, url, `dead6b-${style}`, presentity, { localAddress: IPV6 });
    await dead2.c.die("rst");
    const closed2 = await bed.rx.waitFor(
      (e) => e.type === "connection.closed" && e.peer.port === dead2.c.localPort,
    );
    const twinEvent = { ...closed, peer: { ip: IPV6, port: twinPort } };
    const w = workerFor(fleetOf(bed, style), api.client, new Map([[bed.node.nodeId, bed.node.rpcToken]]));
    const result = await w.run([{ messageId: `v6-guard-${style}`, body: envelopeOf(twinEvent, closed2) }]);
    expect(result.failedMessageIds).toEqual([]);
    expect(await rowsOf(bed, dead2.sub)).toHaveLength(0);
    expect(await rowsOf(bed, twin.sub)).toHaveLength(1);
    expect(w.tel.audits.map((a) => a.dialog.callId)).toEqual([dead2.sub.callId]);
    expect(w.tel.logs).toContainEqual(
      expect.objectContaining({
        message: "row kept: its peer is connected now",
        data: expect.objectContaining({ peer: `[::1]:${twinPort}` }),
      }),
    );
  });
});
