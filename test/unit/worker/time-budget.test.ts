// The worker's time budget (BatchContext.deadline, set by the handler from the function's remaining
// time): past it the batch starts no new cleanup slice (those records are retried) and sends no
// refresh (owed after deletions, each becomes a follow-up), so an invocation ends before Lambda
// kills it with refreshes owed and unsent. The clock is injected: it jumps past the deadline when
// the first slice's first DELETE returns.
import { describe, expect, it } from "vitest";
import type { RefreshRequested } from "#core/contract.ts";
import { KEYS_PER_SLICE } from "#core/worker/clean-node.ts";
import { createWorkerHandler } from "#handlers/functions.ts";
import { AT, closed, envelope, nodeConfig, RecordingSink, watcherRow, workerBed } from "./fakes.ts";

const PEERS = 2 * KEYS_PER_SLICE + 50; // two full slices and a half one
const PER_ENVELOPE = 50; // the cfg's envelope bound: slice 1 = m0, m1; slice 2 = m2, m3; slice 3 = m4
const ipOf = (i: number) => `10.7.${i >> 8}.${i & 255}`;

function bed() {
  let t = AT * 1000 + 5_000;
  const followUps = new RecordingSink<RefreshRequested>();
  const node = nodeConfig("node-1");
  const b = workerBed({ nodes: [node], followUps, now: () => t });
  b.kamailio.serve(node.id); // 5.6.3: every refresh after a deletion is owed; nothing connected
  for (let i = 0; i < PEERS; i++)
    b.store.rows(node.watchersTable).push(
      watcherRow({
        contact: `sip:u${i}@${ipOf(i)}:5060;transport=ws`,
        socketInfo: node.socketInfo[0] ?? "",
        presentityUri: `sip:p${i}@example.com`,
      }),
    );
  const deleteWatchers = b.store.deleteWatchers.bind(b.store);
  b.store.deleteWatchers = async (...args) => {
    const deleted = await deleteWatchers(...args);
    t += 60_000; // this DELETE took a minute: the deadline has passed
    return deleted;
  };
  const records = Array.from({ length: PEERS / PER_ENVELOPE }, (_, m) => ({
    messageId: `m${m}`,
    body: envelope(
      ...Array.from({ length: PER_ENVELOPE }, (_, j) => closed(node.id, ipOf(m * PER_ENVELOPE + j), 5060)),
    ),
  }));
  return { ...b, node, followUps, records, deadline: () => t + 10_000 };
}

describe("the worker's time budget", () => {
  it("past the deadline: the slices not begun are retried, the refreshes owed become follow-ups", async () => {
    const b = bed();
    const result = await b.run(b.records, { deadline: b.deadline() });
    expect(result.deleted).toBe(KEYS_PER_SLICE); // the first slice, whose DELETE ran
    expect(result.failedMessageIds.sort()).toEqual(["m2", "m3", "m4"]);
    expect(b.store.rows(b.node.watchersTable)).toHaveLength(PEERS - KEYS_PER_SLICE);
    expect(b.kamailio.refreshCalls).toEqual([]);
    expect(result.followUps.map((f) => f.presentity).sort()).toEqual(
      Array.from({ length: KEYS_PER_SLICE }, (_, i) => `sip:p${i}@example.com`).sort(),
    );
    expect(result.dlq).toEqual([]);
  });

  it("control: without a deadline the same batch cleans every slice and sends every refresh", async () => {
    const b = bed();
    const result = await b.run(b.records);
    expect(result.deleted).toBe(PEERS);
    expect(result.failedMessageIds).toEqual([]);
    expect(b.kamailio.refreshCalls).toHaveLength(PEERS);
    expect(result.followUps).toEqual([]);
  });

  it("the handler sets the deadline from the function's remaining time (control: time left, all cleaned)", async () => {
    const sqsEvent = (records: { messageId: string; body: string }[]) =>
      ({
        Records: records.map((r) => ({
          ...r,
          messageAttributes: {},
          eventSourceARN: "arn:aws:sqs:eu-west-1:1:events",
        })),
      }) as unknown as Parameters<ReturnType<typeof createWorkerHandler>>[0];
    const out = bed();
    const spent = await createWorkerHandler(out.deps)(sqsEvent(out.records), {
      getRemainingTimeInMillis: () => 0,
    });
    expect(spent.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual([
      "m0",
      "m1",
      "m2",
      "m3",
      "m4",
    ]);
    expect(out.store.rows(out.node.watchersTable)).toHaveLength(PEERS);
    const left = bed();
    const ample = await createWorkerHandler(left.deps)(sqsEvent(left.records), {
      getRemainingTimeInMillis: () => 900_000_000,
    });
    expect(ample.batchItemFailures).toEqual([]);
    expect(left.store.rows(left.node.watchersTable)).toHaveLength(0);
  });
});
