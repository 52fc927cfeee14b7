// Replay and order, a sample through real Kamailio 5.6.3 (issue 18; the 10,000-event runs are
// in-process, replay.test.ts): 8 WebSocket watchers on one node (PostgreSQL, fix_nated_contact(),
// notifier_processes=0); 4 die with RST, 2 of those reconnect on the same ip:port (RST leaves no
// TIME_WAIT) and re-SUBSCRIBE. The envelopes the shipped cfg really posted are delivered to the
// worker (real JSON-RPC liveness, local Data API) in order on one copy of the table, and twice,
// shuffled, on a second node table restored to the same rows: both end with the same exact row set,
// the reconnected and live watchers' rows kept, the 2 dead ones' gone. Control: before the worker,
// Kamailio itself has deleted none of them.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { testDbConfig } from "../../helpers/dataapi.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { loopbackAddress } from "../../helpers/ports.ts";
import { SipWsClient, type Subscription } from "../../helpers/sip-ws-client.ts";
import { seededRandom } from "../../helpers/watcher-world.ts";
import { nodeConfigOf, startDataApi, workerFor } from "../worker/harness.ts";

let bed: NodeBed;
let api: { server: DataApiServer; client: RDSDataClient };
beforeAll(async () => {
  bed = await startNodeBed("postgres", "replaykam", {
    nodeId: "replay-k",
    notifierProcesses: 0,
    listenIp: loopbackAddress(),
  });
  api = await startDataApi();
});
afterAll(async () => {
  await api?.server.close();
  await bed?.close();
});

describe("replay and order through real Kamailio 5.6.3", () => {
  it("the cfg's real envelopes, in order and twice shuffled: same exact rows, reconnected and live watchers kept", async () => {
    const p = "sip:replayk@example.com";
    const w: { c: SipWsClient; sub: Subscription; user: string }[] = [];
    // The clients bind a loopback address of their own: reusing a port after RST then never races
    // another process's ephemeral port on 127.0.0.1.
    const clientAddress = loopbackAddress();
    for (let i = 0; i < 8; i++) {
      const c = await SipWsClient.connect(bed.node.wsUrl, { user: `rk${i}`, localAddress: clientAddress });
      bed.clients.push(c);
      const sub = await c.subscribe(p);
      expect(sub.status).toBe(200);
      await c.waitForNotify((n) => n.callId === sub.callId);
      w.push({ c, sub, user: `rk${i}` });
    }
    const dying = w.slice(0, 4);
    for (const d of dying) {
      await d.c.die("rst");
      await bed.rx.waitFor((e) => e.type === "connection.closed" && e.peer.port === d.c.localPort);
    }
    const reconnected: Subscription[] = [];
    for (const d of dying.slice(0, 2)) {
      const back = await SipWsClient.connect(bed.node.wsUrl, {
        user: d.user,
        localAddress: clientAddress,
        localPort: d.c.localPort,
      });
      bed.clients.push(back);
      expect(back.localPort).toBe(d.c.localPort);
      const sub = await back.subscribe(p);
      expect(sub.status).toBe(200);
      await back.waitForNotify((n) => n.callId === sub.callId);
      reconnected.push(sub);
    }
    await bed.node.rpc("core.uptime"); // the node is answering; every close event was posted above
    const table = bed.node.watchersTable;
    const ids = async (t: string) =>
      (await bed.db.query<{ callid: string }>(`SELECT callid FROM ${t} ORDER BY callid`)).map(
        (r) => r.callid,
      );
    const before = await ids(table);
    expect(before).toEqual(expect.arrayContaining(w.map((x) => x.sub.callId))); // control: Kamailio kept them all

    const envelopes = bed.rx.envelopes.map((e, i) => ({ messageId: `k${i}`, body: JSON.stringify(e) }));
    expect(envelopes.length).toBeGreaterThan(0);
    const snapshot = await bed.db.query(`SELECT * FROM ${table}`);
    const restore = async () => {
      await bed.db.query(`DELETE FROM ${table}`);
      for (const row of snapshot) {
        const cols = Object.keys(row);
        await bed.db.query(
          `INSERT INTO ${table} (${cols.join(", ")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")})`,
          cols.map((c) => row[c]),
        );
      }
    };
    const fleet = {
      version: 1 as const,
      database: testDbConfig(bed.db),
      notifyFailureCodes: [408, 481],
      nodes: [nodeConfigOf(bed.node, "nated")],
    };
    const tokens = new Map([[bed.node.nodeId, bed.node.rpcToken]]);
    const inOrder = await workerFor(fleet, api.client, tokens).run(envelopes);
    const afterInOrder = await ids(table);
    await restore();
    const twice = seededRandom(61).shuffle([
      ...envelopes,
      ...envelopes.map((m) => ({ ...m, messageId: `${m.messageId}b` })),
    ]);
    const worker = workerFor(fleet, api.client, tokens);
    const results = [];
    for (let i = 0; i < twice.length; i += 3) results.push(await worker.run(twice.slice(i, i + 3)));
    const afterReplay = await ids(table);

    const dead = dying.slice(2).map((d) => d.sub.callId);
    const kept = [...w.slice(4).map((x) => x.sub.callId), ...reconnected.map((s) => s.callId)];
    expect(afterInOrder).toEqual(before.filter((c) => !dead.includes(c)));
    expect(afterReplay).toEqual(afterInOrder);
    expect(afterReplay).toEqual(expect.arrayContaining(kept));
    expect(inOrder.failedMessageIds).toEqual([]);
    expect(results.flatMap((r) => r.failedMessageIds)).toEqual([]);
    console.log(
      `replay through Kamailio: ${bed.rx.events.length} real events in ${envelopes.length} envelopes, deleted ${inOrder.deleted} in order and ${results.reduce((s, r) => s + r.deleted, 0)} replayed twice shuffled; rows of 2 reconnected peers and 4 live watchers kept`,
    );
  });
});
