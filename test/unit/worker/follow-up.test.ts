// Follow-up refreshes: a refresh owed after deletions that hits a transient fault becomes one
// refresh.requested per (node, presentity, event) on the events queue and the record is
// acknowledged; if that send fails the records are retried and the intent is kept for the next
// batch; refresh.requested itself is handled like a fan-out target (transient → retry,
// permanent → logged and acknowledged, refresh 500 → reconcile once), duplicates coalesced.
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { SqsFollowUpSink } from "#adapters/sqs-follow-up.ts";
import { RpcFaultError, RpcTransportError } from "#core/classify.ts";
import type { RefreshRequested } from "#core/contract.ts";
import { FOLLOW_UPS_PER_ENVELOPE, followUpBodies } from "#core/follow-up.ts";
import { parseMessage } from "#core/parse.ts";
import { createWorkerHandler } from "#handlers/functions.ts";
import { AT, closed, envelope, nodeConfig, RecordingSink, watcherRow, workerBed } from "./fakes.ts";

const n1 = nodeConfig("node-1");
const si1 = n1.socketInfo[0] as string;
const NOW = (AT + 60) * 1000;

function setup(withFollowUps = true) {
  const followUps = new RecordingSink<RefreshRequested>();
  const bed = workerBed({
    nodes: [n1, nodeConfig("node-2")],
    now: () => NOW,
    ...(withFollowUps ? { followUps } : {}),
  });
  return { ...bed, followUps };
}

const unreachable = () => new RpcTransportError("presence.refreshWatchers", "fetch failed: ECONNREFUSED");

function requested(presentity: string, node = "node-1", event = "presence") {
  return { type: "refresh.requested", node, presentity, event, reason: "refresh-failed", attempt: 1, at: AT };
}

/** Two dead watchers of two presentities (one peer) plus a survivor of each. */
function seedDeadPeer(t: ReturnType<typeof setup>) {
  t.store.rows(n1.watchersTable).push(
    watcherRow({
      contact: "sip:a@1.2.3.4:5491;transport=ws",
      socketInfo: si1,
      presentityUri: "sip:x@e.com",
    }),
    watcherRow({
      contact: "sip:b@1.2.3.4:5491;transport=ws",
      socketInfo: si1,
      presentityUri: "sip:y@e.com",
    }),
    watcherRow({
      contact: "sip:c@1.2.3.4:6000;transport=ws",
      socketInfo: si1,
      presentityUri: "sip:x@e.com",
    }),
    watcherRow({
      contact: "sip:d@1.2.3.4:6000;transport=ws",
      socketInfo: si1,
      presentityUri: "sip:y@e.com",
    }),
  );
  t.kamailio.live.set("node-1", [{ ip: "1.2.3.4", port: 6000 }]);
}

describe("refresh after deletions hits a transient fault", () => {
  it("sends exactly one follow-up per (node, presentity, event) and acknowledges the records", async () => {
    const t = setup();
    seedDeadPeer(t);
    t.kamailio.refreshFailures.push(unreachable(), unreachable());
    const r = await t.run([
      { messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5491)) },
      { messageId: "m2", body: envelope(closed("node-1", "1.2.3.4", 5491)) }, // duplicate
    ]);
    expect(r.deleted).toBe(2);
    expect(r.failedMessageIds).toEqual([]);
    expect(t.kamailio.refreshCalls).toHaveLength(2);
    expect(t.followUps.sent).toHaveLength(1);
    const events = t.followUps.sent[0] ?? [];
    expect(events.sort((a, b) => a.presentity.localeCompare(b.presentity))).toEqual([
      { ...requested("sip:x@e.com"), at: NOW / 1000 },
      { ...requested("sip:y@e.com"), at: NOW / 1000 },
    ]);
    // What is sent is a valid contract v1 envelope.
    const bodies = followUpBodies(events);
    expect(bodies.map((b) => parseMessage(b).rejections)).toEqual([[]]);
    expect(r.refreshes.map((x) => x.outcome)).toEqual(["deferred", "deferred"]);
    expect(t.tel.counts.RefreshDeferred).toBe(2);
    expect(t.tel.counts.RefreshDegraded).toBeUndefined();
  });

  it("only the failed triple is deferred; an ok refresh sends nothing", async () => {
    const t = setup();
    seedDeadPeer(t);
    t.kamailio.refreshFailures.push(undefined, unreachable());
    const r = await t.run([{ messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5491)) }]);
    expect(r.failedMessageIds).toEqual([]);
    expect(t.followUps.sent.flat()).toHaveLength(1);
    expect(r.refreshes.map((x) => x.outcome).sort()).toEqual(["deferred", "ok"]);
  });

  it("control: without the events queue the refresh can only be reported degraded", async () => {
    const t = setup(false);
    seedDeadPeer(t);
    t.kamailio.refreshFailures.push(unreachable(), unreachable());
    const r = await t.run([{ messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5491)) }]);
    expect(r.refreshes.map((x) => x.outcome)).toEqual(["degraded", "degraded"]);
    expect(r.followUps).toEqual([]);
    expect(t.tel.counts.RefreshDegraded).toBe(2);
  });

  it("if the follow-up cannot be sent, the records are retried and the next batch sends the intent", async () => {
    const t = setup();
    seedDeadPeer(t);
    t.kamailio.refreshFailures.push(unreachable(), unreachable());
    t.followUps.failures.push(new Error("SQS throttled"));
    const first = await t.run([
      { messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5491)) },
      { messageId: "m2", body: envelope(closed("node-1", "1.2.3.4", 6000)) }, // live peer: kept, not involved
    ]);
    expect(first.deleted).toBe(2);
    expect(first.failedMessageIds).toEqual(["m1"]);
    expect(first.refreshes.map((x) => x.outcome)).toEqual(["retry", "retry"]);
    expect(t.followUps.sent).toEqual([]);
    // The retry of m1: the rows are gone, nothing to plan, yet the owed refreshes are sent.
    const retry = await t.run([{ messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5491)) }]);
    expect(retry.deleted).toBe(0);
    expect(retry.failedMessageIds).toEqual([]);
    expect(
      t.followUps.sent
        .flat()
        .map((e) => e.presentity)
        .sort(),
    ).toEqual(["sip:x@e.com", "sip:y@e.com"]);
    // Sent once: a third batch sends nothing more.
    await t.run([{ messageId: "m3", body: envelope(closed("node-1", "9.9.9.9", 1)) }]);
    expect(t.followUps.sent.flat()).toHaveLength(2);
  });
});

describe("refresh.requested", () => {
  it("is accepted only from the follow-up queue: from the events queue it is rejected to the DLQ", async () => {
    const t = setup();
    const r = await t.run([{ messageId: "m1", body: envelope(requested("sip:x@e.com")) }]);
    expect(r.refreshes).toEqual([]);
    expect(t.kamailio.refreshCalls).toEqual([]);
    expect(t.dlq.items).toMatchObject([
      {
        sourceMessageId: "m1",
        eventIndex: 0,
        reason: expect.stringMatching(/only from its follow-up queue/),
      },
    ]);
    await t.run([{ messageId: "m2", origin: "follow-ups", body: envelope(requested("sip:x@e.com")) }]);
    expect(t.kamailio.refreshCalls).toHaveLength(1); // control
  });

  it("the handler tells the follow-up queue's records by their eventSourceARN", async () => {
    const t = setup();
    const handler = createWorkerHandler({ ...t.deps, followUpQueueArn: "arn:aws:sqs:r:1:follow-ups" });
    const record = (messageId: string, eventSourceARN: string) =>
      ({ messageId, eventSourceARN, body: envelope(requested("sip:x@e.com")) }) as SQSRecord;
    await handler({
      Records: [record("m1", "arn:aws:sqs:r:1:events"), record("m2", "arn:aws:sqs:r:1:follow-ups")],
    });
    expect(t.dlq.items.map((i) => i.sourceMessageId)).toEqual(["m1"]);
    expect(t.kamailio.refreshCalls).toHaveLength(1);
  });

  it("refreshes that presentity on that node once, coalescing duplicates, and acknowledges", async () => {
    const t = setup();
    const r = await t.run([
      {
        messageId: "m1",
        origin: "follow-ups",
        body: envelope(requested("sip:x@e.com"), requested("sip:x@e.com")),
      },
      { messageId: "m2", origin: "follow-ups", body: envelope(requested("sip:x@e.com")) },
      { messageId: "m3", origin: "follow-ups", body: envelope(requested("sip:x@e.com", "node-2")) },
    ]);
    expect(r.failedMessageIds).toEqual([]);
    expect(t.kamailio.refreshCalls).toEqual([
      { node: "node-1", presentityUri: "sip:x@e.com", event: "presence" },
      { node: "node-2", presentityUri: "sip:x@e.com", event: "presence" },
    ]);
    expect(t.tel.counts.RefreshOk).toBe(2);
    expect(t.followUps.sent).toEqual([]);
  });

  it("transient fault → every record that asked is retried; no new follow-up is sent", async () => {
    const t = setup();
    t.kamailio.refreshFailures.push(unreachable());
    const r = await t.run([
      { messageId: "m1", origin: "follow-ups", body: envelope(requested("sip:x@e.com")) },
      { messageId: "m2", origin: "follow-ups", body: envelope(requested("sip:x@e.com")) },
      { messageId: "m3", origin: "follow-ups", body: envelope(requested("sip:y@e.com")) },
    ]);
    expect(r.failedMessageIds).toEqual(["m1", "m2"]);
    expect(t.kamailio.refreshCalls).toHaveLength(2);
    expect(t.followUps.sent).toEqual([]);
  });

  it("permanent fault → logged, RefreshFailed, acknowledged", async () => {
    const t = setup();
    t.kamailio.refreshFailures.push(
      new RpcFaultError("presence.refreshWatchers", -32601, "Method Not Found", 500),
    );
    const r = await t.run([
      { messageId: "m1", origin: "follow-ups", body: envelope(requested("sip:x@e.com")) },
    ]);
    expect(r.failedMessageIds).toEqual([]);
    expect(r.refreshes.map((x) => x.outcome)).toEqual(["failed"]);
    expect(t.tel.counts.RefreshFailed).toBe(1);
    expect(t.tel.logs.some((l) => l.level === "error" && l.message === "refresh failed")).toBe(true);
  });

  it("refresh 500 → reconciles that presentity on that node once, refreshes once more", async () => {
    const t = setup();
    const stale = watcherRow({
      contact: "sip:a@1.2.3.4:7;transport=ws",
      socketInfo: si1,
      presentityUri: "sip:x@e.com",
    });
    const alive = watcherRow({
      contact: "sip:b@1.2.3.4:8;transport=ws",
      socketInfo: si1,
      presentityUri: "sip:x@e.com",
    });
    t.store.rows(n1.watchersTable).push(stale, alive);
    t.kamailio.live.set("node-1", [{ ip: "1.2.3.4", port: 8 }]);
    t.kamailio.refreshFailures.push(
      new RpcFaultError("presence.refreshWatchers", 500, "Execution failed", 500),
    );
    const r = await t.run([
      { messageId: "m1", origin: "follow-ups", body: envelope(requested("sip:x@e.com")) },
    ]);
    expect(r.failedMessageIds).toEqual([]);
    expect(r.refreshes.map((x) => x.outcome)).toEqual(["ok"]);
    expect(t.store.rows(n1.watchersTable).map((x) => x.id)).toEqual([alive.id]);
    expect(t.tel.audits.map((a) => a.reason)).toEqual(["reconcile.refresh-failed"]);
  });

  it("an unknown node goes to the DLQ with that reason", async () => {
    const t = setup();
    const r = await t.run([
      { messageId: "m1", origin: "follow-ups", body: envelope(requested("sip:x@e.com", "ghost")) },
    ]);
    expect(r.failedMessageIds).toEqual([]);
    expect(t.dlq.items.map((i) => i.reason)).toEqual([
      'node "ghost" is not in the fleet config (redrive once it is added)',
    ]);
    expect(t.kamailio.refreshCalls).toEqual([]);
  });
});

describe("follow-up envelopes and the SQS sink", () => {
  const many = (n: number) =>
    Array.from(
      { length: n },
      (_, i) => ({ ...requested(`sip:${"u".repeat(240)}${i}@e.com`), at: AT }) as RefreshRequested,
    );

  it("coalesces duplicates and splits into valid envelopes under the contract's bounds", () => {
    const events = many(250);
    const bodies = followUpBodies([...events, ...events.slice(0, 10)]);
    expect(bodies).toHaveLength(Math.ceil(250 / FOLLOW_UPS_PER_ENVELOPE));
    const parsed = bodies.map(parseMessage);
    expect(parsed.flatMap((p) => p.rejections)).toEqual([]);
    expect(parsed.flatMap((p) => p.events)).toHaveLength(250);
  });

  it("sends each envelope with its DelaySeconds, 10 per batch, and throws when SQS refuses one", async () => {
    const sqs = mockClient(SQSClient);
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const sink = new SqsFollowUpSink(sqs as unknown as SQSClient, "https://q/events", 45);
    await sink.send(many(1100));
    const calls = sqs.commandCalls(SendMessageBatchCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => c.Entries?.length)).toEqual([10, 1]);
    expect(calls.flatMap((c) => c.Entries ?? []).every((e) => e.DelaySeconds === 45)).toBe(true);
    expect(calls.every((c) => c.QueueUrl === "https://q/events")).toBe(true);
    sqs.reset();
    sqs.on(SendMessageBatchCommand).resolves({
      Successful: [],
      Failed: [{ Id: "0", Code: "InternalError", SenderFault: false }],
    });
    await expect(sink.send(many(1))).rejects.toThrow(/follow-up send failed for 1 envelopes: InternalError/);
  });
});
