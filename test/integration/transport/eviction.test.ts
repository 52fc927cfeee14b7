// kwc.cfg's queue-eviction counter on real Kamailio 5.6.3: with a tiny KWC_QUEUE_SIZE and the
// ingest down (503), more connections die than the event queue holds. mqueue 5.6 silently evicts
// its oldest item when full; the cfg counts each eviction. The status endpoint's `evicted` equals
// the number of events lost, exactly the oldest ones are gone, and the ones that stayed (plus the
// envelope parked for retry) are delivered once the ingest is back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectionClosed } from "#core/contract.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { loopbackAddress } from "../../helpers/ports.ts";
import type { SipWsClient } from "../../helpers/sip-ws-client.ts";
import { waitUntil } from "../../helpers/wait.ts";

const QUEUE_SIZE = 3;
const DEATHS = 7;

describe("event queue eviction", () => {
  let bed: NodeBed;

  beforeAll(async () => {
    bed = await startNodeBed("postgres", "txevict", {
      nodeId: "txevict",
      listenIp: loopbackAddress(),
      // retries far beyond the test's length: nothing is given up (droppedEnvelopes stays 0)
      defines: { KWC_QUEUE_SIZE: QUEUE_SIZE, KWC_POST_RETRIES: 1000, KWC_RETRY_DELAY: 1 },
    });
  });

  afterAll(async () => {
    await bed?.close();
  });

  const counters = async () => (await bed.node.status()).counters;
  const closedPorts = () =>
    bed.rx.events
      .filter((e): e is ConnectionClosed => e.type === "connection.closed")
      .map((e) => e.peer.port);

  it(`evicted counts exactly the events lost beyond ${QUEUE_SIZE}; the rest arrive when the ingest is back`, async () => {
    const { rx, node } = bed;
    const primer = await bed.connect("primer");
    const victims: SipWsClient[] = [];
    for (let i = 0; i < DEATHS; i++) victims.push(await bed.connect(`victim${i}`));
    rx.setAvailable(false);

    // The first event's envelope fails and is parked in kwc_retry; while it is there the drain
    // leaves kwc_events alone, so every later event waits in the bounded queue.
    await primer.die("rst");
    await waitUntil(
      async () => {
        const c = await counters();
        return c.queued === 1 && c.postFailures >= 1 && c.pending === -1;
      },
      { timeoutMs: 10_000, what: "the primer's envelope parked for retry" },
    );
    expect(rx.requests.some((r) => r.status === 503)).toBe(true);

    // One death at a time, each queued before the next: queue order = death order.
    for (const [i, victim] of victims.entries()) {
      await victim.die("rst");
      await waitUntil(async () => (await counters()).queued === 2 + i, {
        timeoutMs: 10_000,
        what: `victim ${i}'s event queued`,
      });
    }
    const whileDown = await counters();
    expect(whileDown).toMatchObject({
      queued: 1 + DEATHS,
      evicted: DEATHS - QUEUE_SIZE,
      pending: QUEUE_SIZE,
      droppedEnvelopes: 0,
      droppedEvents: 0,
    });
    expect(closedPorts()).toEqual([]); // nothing got through while the ingest was down

    rx.setAvailable(true);
    const survivors = [primer, ...victims.slice(DEATHS - QUEUE_SIZE)];
    await waitUntil(() => closedPorts().length >= survivors.length, {
      timeoutMs: 15_000,
      what: `${survivors.length} connection.closed events after the ingest came back`,
    });
    const after = await counters();
    expect(after).toMatchObject({
      queued: 1 + DEATHS,
      evicted: DEATHS - QUEUE_SIZE,
      pending: -1,
      droppedEnvelopes: 0,
    });
    // Everything queued is either delivered or counted as evicted, nothing twice.
    expect(closedPorts()).toHaveLength(after.queued - after.evicted);
    expect(closedPorts().sort()).toEqual(survivors.map((c) => c.localPort).sort());
    const evictedPorts = victims.slice(0, DEATHS - QUEUE_SIZE).map((c) => c.localPort);
    expect(closedPorts().filter((p) => evictedPorts.includes(p))).toEqual([]);
    expect(rx.rejections).toEqual([]);
    // The cfg logs each eviction (mqueue itself says nothing on 5.6).
    expect(node.log().match(/kwc: event queue full, the oldest event is evicted/g)).toHaveLength(
      DEATHS - QUEUE_SIZE,
    );
  });
});
