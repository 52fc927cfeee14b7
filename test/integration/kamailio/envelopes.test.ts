// The drain's bounds: envelopes never exceed KWC_ENVELOPE_MAX_EVENTS nor KWC_ENVELOPE_MAX_BYTES
// (small values here so a short burst hits both), nothing queued while the ingest is down is
// lost, and an envelope the ingest keeps refusing is dropped after the retries and counted.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../helpers/db.ts";
import { type KamailioNode, startKamailio } from "../../helpers/kamailio.ts";
import { type EventReceiver, startEventReceiver } from "../../helpers/receiver.ts";
import { SipWsClient } from "../../helpers/sip-ws-client.ts";
import { waitUntil } from "../../helpers/wait.ts";

const MAX_EVENTS = 20;
const MAX_BYTES = 4096;
let db: TestDb;
let rx: EventReceiver;
let node: KamailioNode;
let refusedNode: KamailioNode;
const clients: SipWsClient[] = [];

beforeAll(async () => {
  db = await createTestDb("postgres", "kamenv");
  rx = await startEventReceiver();
  [node, refusedNode] = await Promise.all([
    startKamailio({
      nodeId: "env-node",
      db,
      listenIp: "127.0.0.10",
      ingestUrl: rx.url,
      ingestKey: rx.key,
      defines: { KWC_ENVELOPE_MAX_EVENTS: MAX_EVENTS, KWC_ENVELOPE_MAX_BYTES: MAX_BYTES },
    }),
    startKamailio({
      nodeId: "refused-node",
      db,
      listenIp: "127.0.0.11",
      ingestUrl: rx.url,
      ingestKey: "not-the-key",
      defines: { KWC_POST_RETRIES: 1 },
    }),
  ]);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all([node?.stop(), refusedNode?.stop()]);
  await rx?.close();
  await db?.drop();
});

async function publishAll(target: KamailioNode, presentities: string[]) {
  const c = await SipWsClient.connect(target.wsUrl, { user: "publisher" });
  clients.push(c);
  const codes = await Promise.all(presentities.map((p) => c.publish(p)));
  expect(codes.filter((code) => code !== 200)).toEqual([]);
}

describe("envelopes posted by kwc.cfg", () => {
  it("are bounded in events and bytes, and lose nothing queued while the ingest was down", async () => {
    rx.setAvailable(false);
    const short = Array.from({ length: 45 }, (_, i) => `sip:s${i}@example.com`);
    const long = Array.from(
      { length: 30 },
      (_, i) => `sip:${"l".repeat(55)}${i}@${"d".repeat(50)}.example.com`,
    );
    await publishAll(node, short);
    await publishAll(node, long);
    await waitUntil(() => rx.requests.some((r) => r.status === 503), { what: "a refused POST" });
    rx.setAvailable(true);

    const wanted = new Set([...short, ...long]);
    await waitUntil(
      () =>
        [...wanted].every((p) => rx.events.some((e) => e.type === "presence.changed" && e.presentity === p)),
      { timeoutMs: 15_000, what: "every presence.changed" },
    );
    const accepted = rx.requests.filter((r) => r.status === 200);
    const sizes = accepted.map((r) => ({
      events: (JSON.parse(r.body) as { events: unknown[] }).events.length,
      bytes: Buffer.byteLength(r.body),
    }));
    for (const s of sizes) {
      expect(s.events).toBeLessThanOrEqual(MAX_EVENTS);
      expect(s.bytes).toBeLessThanOrEqual(MAX_BYTES);
    }
    // both bounds were reached: full-count envelopes of short events, byte-bound ones of long events
    expect(sizes.some((s) => s.events === MAX_EVENTS)).toBe(true);
    expect(sizes.some((s) => s.events < MAX_EVENTS && s.events > 5 && s.bytes > MAX_BYTES - 400)).toBe(true);
    expect(rx.rejections).toEqual([]);
    console.log(`envelopes (events/bytes): ${sizes.map((s) => `${s.events}/${s.bytes}`).join(" ")}`);
    const counters = (await node.status()).counters;
    expect(counters.droppedEnvelopes).toBe(0);
    expect(counters.evicted).toBe(0);
  });

  it("drops an envelope the ingest keeps refusing (403) after the retries, and counts it", async () => {
    await publishAll(refusedNode, ["sip:refused@example.com"]);
    const counters = await waitUntil(
      async () => {
        const c = (await refusedNode.status()).counters;
        return c.droppedEnvelopes >= 1 ? c : undefined;
      },
      { timeoutMs: 10_000, what: "a dropped envelope" },
    );
    expect(counters.droppedEnvelopes).toBe(1);
    expect(counters.postFailures).toBe(2); // first attempt + 1 retry
    const refused = rx.requests.filter((r) => r.body.includes("sip:refused@example.com"));
    expect(refused.map((r) => r.status)).toEqual([403, 403]);
    expect(rx.events.filter((e) => e.node === "refused-node")).toEqual([]);
  });
});
