// The worker's admission and guard rules, each with its control: boot (with the forced fresh
// status read), freshness, the compare guard of notify.failed, a connected peer whatever matched
// its row, older cfgs, the bisection of data errors and a permanent fan-out failure.
import { describe, expect, it } from "vitest";
import { RpcTransportError } from "#core/classify.ts";
import {
  AT,
  BOOT,
  changed,
  closed,
  envelope,
  nodeConfig,
  notifyFailed,
  watcherRow,
  workerBed,
} from "./fakes.ts";

const n1 = nodeConfig("node-1");
const si1 = n1.socketInfo[0] as string;
const NEW_BOOT = "1795629999-0badf00d";
const dialog = (id: number) => ({ callId: `call-${id}`, toTag: `tt-${id}`, fromTag: `ft-${id}` });

function seed(t: ReturnType<typeof workerBed>, contact = "sip:a@1.2.3.4:5491;transport=ws", version = 3) {
  const row = watcherRow({ contact, socketInfo: si1, version });
  t.store.rows(n1.watchersTable).push(row);
  return row;
}
const left = (t: ReturnType<typeof workerBed>) => t.store.rows(n1.watchersTable).map((r) => r.id);

describe("boot admission", () => {
  it("ignores (counts, audits, never dead-letters) an event of another boot; control: the current boot deletes", async () => {
    const t = workerBed();
    const row = seed(t);
    const r = await t.run([
      { messageId: "m1", body: envelope({ ...closed("node-1", "1.2.3.4", 5491), boot: NEW_BOOT }) },
    ]);
    expect(r.failedMessageIds).toEqual([]);
    expect(t.dlq.items).toEqual([]);
    expect(left(t)).toEqual([row.id]);
    expect(t.tel.counts.EventsIgnoredBoot).toBe(1);
    expect(t.tel.ignored).toMatchObject([{ kind: "boot", sourceMessageId: "m1", node: "node-1" }]);
    await t.run([{ messageId: "m2", body: envelope(closed("node-1", "1.2.3.4", 5491)) }]);
    expect(left(t)).toEqual([]);
  });

  it("a boot the cache does not hold forces one fresh status read: a restarted node's new events act", async () => {
    const t = workerBed();
    t.kamailio.statusOf.set("node-1", { boot: BOOT });
    await t.run([{ messageId: "m0", body: envelope(closed("node-1", "9.9.9.9", 1)) }]); // caches BOOT
    t.kamailio.statusOf.set("node-1", { boot: NEW_BOOT }); // the node restarted
    const row = seed(t);
    const statusReads = () => t.kamailio.statusCalls;
    const before = statusReads();
    await t.run([
      { messageId: "m1", body: envelope({ ...closed("node-1", "1.2.3.4", 5491), boot: NEW_BOOT }) },
    ]);
    expect(statusReads()).toBe(before + 1);
    expect(left(t)).not.toContain(row.id);
  });

  it("status unreachable: the records are retried, nothing is deleted", async () => {
    const t = workerBed();
    const row = seed(t);
    t.kamailio.statusOf.set("node-1", new RpcTransportError("kwc status", "ECONNREFUSED"));
    const r = await t.run([{ messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5491)) }]);
    expect(r.failedMessageIds).toEqual(["m1"]);
    expect(left(t)).toEqual([row.id]);
  });
});

describe("freshness", () => {
  it("ignores an event older than the window or from the future; control: a fresh one deletes", async () => {
    const t = workerBed();
    const row = seed(t);
    const old = { ...closed("node-1", "1.2.3.4", 5491), at: AT - 7200 };
    const future = { ...closed("node-1", "1.2.3.4", 5491), at: AT + 3600 };
    const r = await t.run([{ messageId: "m1", body: envelope(old, future) }]);
    expect(r.failedMessageIds).toEqual([]);
    expect(t.dlq.items).toEqual([]);
    expect(t.tel.counts.EventsIgnoredStale).toBe(2);
    expect(left(t)).toEqual([row.id]);
    await t.run([{ messageId: "m2", body: envelope(closed("node-1", "1.2.3.4", 5491)) }]);
    expect(left(t)).toEqual([]);
  });
});

describe("notify.failed", () => {
  it("a dialog-key match never deletes a row whose WS peer is connected; control: a dead peer's row goes", async () => {
    const t = workerBed();
    const row = seed(t, "sip:a@1.2.3.4:5491;transport=ws", 3);
    t.kamailio.live.set("node-1", [{ ip: "1.2.3.4", port: 5491 }]);
    const event = { ...notifyFailed("node-1", dialog(row.id), 408), version: 3 };
    const r = await t.run([{ messageId: "m1", body: envelope(event) }]);
    expect(r.guardKeeps).toBe(1);
    expect(left(t)).toEqual([row.id]);
    t.kamailio.live.set("node-1", []);
    await t.run([{ messageId: "m2", body: envelope(event) }]);
    expect(left(t)).toEqual([]);
    expect(t.tel.audits).toMatchObject([{ rowId: row.id, reason: "notify.failed", deletedBy: "worker" }]);
  });

  it("deletes only while the row still has the failed NOTIFY's version (a re-SUBSCRIBE moves it)", async () => {
    const t = workerBed();
    const row = seed(t, "sip:a@1.2.3.4:5491;transport=ws", 4);
    await t.run([
      { messageId: "m1", body: envelope({ ...notifyFailed("node-1", dialog(row.id), 408), version: 3 }) },
    ]);
    expect(left(t)).toEqual([row.id]);
    expect(t.tel.counts.GuardKeepsChanged).toBe(1);
    await t.run([
      { messageId: "m2", body: envelope({ ...notifyFailed("node-1", dialog(row.id), 408), version: 4 }) },
    ]);
    expect(left(t)).toEqual([]);
  });

  it("an older cfg's event (no version) is ignored and never deletes by dialog key", async () => {
    const t = workerBed();
    const row = seed(t);
    const { version: _v, ...old } = notifyFailed("node-1", dialog(row.id), 408);
    const r = await t.run([{ messageId: "m1", body: envelope(old) }]);
    expect(r.failedMessageIds).toEqual([]);
    expect(t.dlq.items).toEqual([]);
    expect(t.tel.ignored).toMatchObject([{ kind: "no-version" }]);
    expect(left(t)).toEqual([row.id]);
    expect(t.store.calls).toEqual([]); // not even a read
  });
});

describe("batch isolation", () => {
  it("a statement failing on one event's data is split until that event alone is dead-lettered", async () => {
    const t = workerBed();
    const good = seed(t, "sip:a@1.2.3.4:5491;transport=ws");
    const alsoGood = seed(t, "sip:b@1.2.3.4:6000;transport=ws");
    const poison = "call-poison";
    const dataError = Object.assign(new Error("ERROR: invalid byte sequence; SQLState: 22021"), {
      name: "DatabaseErrorException",
      $metadata: { httpStatusCode: 400 },
    });
    const select = t.store.selectCandidates.bind(t.store);
    t.store.selectCandidates = async (scope, criteria) => {
      if (criteria.dialogs.some((d) => d.callId === poison)) throw dataError;
      return select(scope, criteria);
    };
    const r = await t.run([
      { messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5491)) },
      {
        messageId: "m2",
        body: envelope(notifyFailed("node-1", { callId: poison, toTag: "t", fromTag: "f" }, 408)),
      },
      { messageId: "m3", body: envelope(closed("node-1", "1.2.3.4", 6000)) },
    ]);
    expect(r.failedMessageIds).toEqual([]);
    expect(t.dlq.items.map((i) => i.sourceMessageId)).toEqual(["m2"]);
    expect(t.dlq.items[0]?.reason).toMatch(/22021/);
    expect(left(t)).not.toContain(good.id);
    expect(left(t)).not.toContain(alsoGood.id);
    expect(t.tel.counts.StatementsBisected).toBeGreaterThanOrEqual(1);
  });

  it("never splits a permission error: every source of the statement is dead-lettered with it", async () => {
    const t = workerBed();
    seed(t);
    t.store.failNext.push(
      Object.assign(new Error("ERROR: permission denied for table aw_node_1; SQLState: 42501"), {
        $metadata: { httpStatusCode: 400 },
      }),
    );
    await t.run([
      { messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5491)) },
      { messageId: "m2", body: envelope(closed("node-1", "1.2.3.4", 6000)) },
    ]);
    expect(t.tel.counts.StatementsBisected).toBeUndefined();
    expect(t.dlq.items.map((i) => i.sourceMessageId).sort()).toEqual(["m1", "m2"]);
  });

  it("a permanent fan-out failure dead-letters its sources instead of dropping them", async () => {
    const t = workerBed();
    t.store.failNext.push(Object.assign(new Error("no such table"), { $metadata: { httpStatusCode: 400 } }));
    const r = await t.run([{ messageId: "m1", body: envelope(changed("node-1")) }]);
    expect(r.failedMessageIds).toEqual([]);
    expect(t.dlq.items).toMatchObject([{ sourceMessageId: "m1", reason: expect.stringMatching(/fan-out/) }]);
  });
});
