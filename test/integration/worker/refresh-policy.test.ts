// The refresh policy on real Kamailio 5.6.3 (sync mode, PostgreSQL), the dead row first in
// Kamailio's scan order (checked: refreshWatchers answers 500 with it in place):
// - an operator's refreshWatchers between the death and the delete is a NOTIFY-to-all that stops
//   at the dead row (CONTROL: 500, the survivors keep the old state); the worker deletes the row
//   and refreshes (reason untraced-deletion): every survivor ends on the new state. (A PUBLISH is
//   not used here: its NOTIFY loop does not walk the rows in the order makeNotifiedFirst() sets
//   for refreshWatchers every time; in 1 run of 3 the survivors got the PUBLISH.)
// - with no trigger the survivors already hold the current state; on 5.6.3 the refresh is still
//   sent, because nothing traces presentity deletions yet (reason untraced-deletion; the skip for
//   5.8.6+/6.x is tested on 6.0.1 in test/integration/v6/core-scenarios.test.ts).
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectionClosed } from "#core/contract.ts";
import type { FleetConfig } from "#core/fleet.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { makeNotifiedFirst } from "../../helpers/db.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { pidfBody, type SipWsClient, type Subscription } from "../../helpers/sip-ws-client.ts";
import { envelopeOf, oneNodeFleet, startDataApi, workerFor } from "./harness.ts";

let bed: NodeBed;
let api: { server: DataApiServer; client: RDSDataClient };
let fleet: FleetConfig;
let tokens: Map<string, string>;

beforeAll(async () => {
  bed = await startNodeBed("postgres", "wpolicy", {
    nodeId: "policy-a",
    listenIp: "127.0.0.54",
    contactStyle: "nated",
    notifierProcesses: 0,
  });
  api = await startDataApi();
  ({ fleet, tokens } = oneNodeFleet(bed));
});

afterAll(async () => {
  await api?.server.close();
  await bed?.close();
});

type Watch = { c: SipWsClient; sub: Subscription };
const lastNote = (s: Watch) =>
  s.c
    .notifiesFor(s.sub)
    .at(-1)
    ?.body.match(/<note>([^<]*)<\/note>/)?.[1];

/** A presentity at state-one, two survivors and a dead watcher notified first; returns its close event. */
async function deadFirst(name: string) {
  const presentity = `sip:${name}@example.com`;
  const publisher = await bed.connect(`${name}-pub`);
  expect(await publisher.publish(presentity, { body: pidfBody(presentity, "open", "state-one") })).toBe(200);
  const survivors = [await bed.watch(`${name}-s1`, presentity), await bed.watch(`${name}-s2`, presentity)];
  const dead = await bed.watch(`${name}-dead`, presentity);
  await makeNotifiedFirst(bed.db, dead.sub.callId);
  await dead.c.die("terminate");
  const closed = (await bed.rx.waitFor(
    (e) => e.type === "connection.closed" && e.peer.port === dead.c.localPort && e.cause === "tcp:closed",
  )) as ConnectionClosed;
  return { presentity, survivors, closed };
}

const ping = async (survivors: Watch[]) => {
  for (const s of survivors) await s.c.ping();
};

describe("refresh policy on 5.6.3 (the sync loop aborts at a dead watcher)", () => {
  it("an operator's refreshWatchers between the death and the delete: survivors starve, the worker's refresh puts them on the new state", async () => {
    const { presentity, survivors, closed } = await deadFirst("policy-op");
    // The new state where Kamailio reads it (publ_cache=0), then an operator's refresh: a
    // NOTIFY-to-all that leaves no trace (received_time untouched).
    await bed.db.query(
      "UPDATE presentity SET body = convert_to(replace(convert_from(body, 'UTF8'), 'state-one', 'state-two'), 'UTF8') WHERE username = 'policy-op'",
    );
    expect((await bed.node.rpc("presence.refreshWatchers", [presentity, "presence", 1])).status).toBe(500);
    await ping(survivors);
    // CONTROL: the refresh stopped at the dead row; the survivors are still on the old state.
    expect(survivors.map(lastNote)).toEqual(["state-one", "state-one"]);
    const w = workerFor(fleet, api.client, tokens);
    const result = await w.run([{ messageId: "closed-op", body: envelopeOf(closed) }]);
    expect(result.failedMessageIds).toEqual([]);
    expect(result.deleted).toBe(1);
    expect(result.refreshReasons).toEqual({ "sent:untraced-deletion": 1 });
    await ping(survivors);
    expect(survivors.map(lastNote)).toEqual(["state-two", "state-two"]);
  });

  it("no trigger: the survivors already hold the current state; the refresh is still sent (deletions untraced)", async () => {
    const { survivors, closed } = await deadFirst("policy-quiet");
    await ping(survivors);
    expect(survivors.map(lastNote)).toEqual(["state-one", "state-one"]);
    const before = survivors.map((s) => s.c.notifiesFor(s.sub).length);
    const w = workerFor(fleet, api.client, tokens);
    const result = await w.run([{ messageId: "closed-quiet", body: envelopeOf(closed) }]);
    expect(result.deleted).toBe(1);
    expect(result.refreshReasons).toEqual({ "sent:untraced-deletion": 1 });
    expect(w.tel.counts.RefreshSkipped).toBeUndefined();
    await ping(survivors);
    expect(survivors.map((s, i) => s.c.notifiesFor(s.sub).length - (before[i] ?? 0))).toEqual([1, 1]);
    expect(survivors.map(lastNote)).toEqual(["state-one", "state-one"]);
  });
});
