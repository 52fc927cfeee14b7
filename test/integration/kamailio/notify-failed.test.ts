// NOTIFY failures (481, 500, no answer → 408) produce notify.failed with the exact dialog key,
// hostile-but-legal Call-IDs and tags come out as valid JSON, a PUBLISH produces presence.changed,
// and a failed POST is re-queued until the ingest answers again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KamailioEvent, NotifyFailed, PresenceChanged } from "#core/contract.ts";
import { parseMessage } from "#core/parse.ts";
import type { TestDb } from "../../helpers/db.ts";
import type { KamailioNode } from "../../helpers/kamailio.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import type { EventReceiver } from "../../helpers/receiver.ts";
import type { SipWsClient, Subscription } from "../../helpers/sip-ws-client.ts";
import { waitUntil } from "../../helpers/wait.ts";

const PRESENTITY = "sip:carol@example.com";
// RFC 3261: Call-ID is `word` (" \ % ' < ( ! ~ ... are legal), tags are `token` (% _ ' ! ~ ...)
const HOSTILE_CALL_IDS = [`q"uo\\te%'<_!~(x)@h`, `b\\\\s"'%25<>:[]{}?/`, "pct%22_%5C'!~@h"];
const HOSTILE_TAGS = ["a'b%c_d!e~f", "%22'_!~`+*.-", "x'%~!"];

let bed: NodeBed;
let db: TestDb;
let rx: EventReceiver;
let node: KamailioNode;

const client = (user: string): Promise<SipWsClient> => bed.connect(user);

const failedFor = (sub: Subscription) => (e: KamailioEvent) =>
  e.type === "notify.failed" && e.dialog.callId === sub.callId;

beforeAll(async () => {
  bed = await startNodeBed("postgres", "kamnotify", { nodeId: "notify-node", listenIp: "127.0.0.3" });
  ({ db, rx, node } = bed);
});

afterAll(() => bed?.close());

describe("notify.failed and presence.changed on Kamailio 5.6.3", () => {
  it("reports 481, 500 and a timed-out NOTIFY with the dialog key; hostile ids survive as JSON", async () => {
    const publisher = await client("carol");
    expect(await publisher.publish(PRESENTITY)).toBe(200);
    const answers = [481, 500, "ignore"] as const;
    const watchers: { c: SipWsClient; sub: Subscription; answer: (typeof answers)[number] }[] = [];
    for (const [i, answer] of answers.entries()) {
      const c = await client(`w${i}`);
      const sub = await c.subscribe(PRESENTITY, {
        callId: HOSTILE_CALL_IDS[i] as string,
        fromTag: HOSTILE_TAGS[i] as string,
      });
      expect(sub.status).toBe(200);
      await c.waitForNotify((n) => n.callId === sub.callId);
      c.answerNotifiesWith(answer);
      watchers.push({ c, sub, answer });
    }
    // the rows hold the hostile values byte for byte (the keys the service will delete by)
    const rows = await db.query<{ callid: string; from_tag: string; to_tag: string }>(
      "SELECT callid, from_tag, to_tag FROM active_watchers ORDER BY id",
    );
    expect(rows.map((r) => [r.callid, r.from_tag, r.to_tag])).toEqual(
      watchers.map((w) => [w.sub.callId, w.sub.fromTag, w.sub.toTag]),
    );

    const refresh = await node.rpc("presence.refreshWatchers", [PRESENTITY, "presence", 1]);
    expect(refresh.status).toBe(200);

    const expectedCode = { 481: 481, 500: 500, ignore: 408 } as const;
    for (const w of watchers) {
      const e = (await rx.waitFor(failedFor(w.sub), 10_000)) as NotifyFailed;
      expect(e).toMatchObject({
        node: "notify-node",
        boot: node.bootId,
        dialog: { callId: w.sub.callId, toTag: w.sub.toTag, fromTag: w.sub.fromTag },
        presentity: PRESENTITY,
        event: "presence",
        code: expectedCode[w.answer],
      });
      expect(e.contact).toContain(`@${w.c.peer};transport=ws`);
    }
    // every body Kamailio posted is JSON that the contract accepts whole
    expect(rx.rejections).toEqual([]);
    for (const r of rx.requests) {
      const parsed = parseMessage(r.body);
      expect(parsed.rejections).toEqual([]);
      expect(r.body).not.toContain("\\'"); // s.escape.common would write \' (invalid JSON)
    }
    // presence itself deletes on 481 and 408, keeps the row on 500. It deletes after its
    // notify-reply event route ran, and the cfg's 10 ms drain may post the event first: wait.
    const leftRows = async () =>
      (await db.query<{ callid: string }>("SELECT callid FROM active_watchers")).map((r) => r.callid);
    await waitUntil(async () => (await leftRows()).length === 1, { what: "presence's own deletes" });
    expect(await leftRows()).toEqual([HOSTILE_CALL_IDS[1]]);
  });

  it("a PUBLISH-triggered NOTIFY failure (sync mode) carries the row's version; a re-SUBSCRIBE moves it", async () => {
    const presentity = "sip:vera@example.com";
    const publisher = await client("vera");
    expect(await publisher.publish(presentity)).toBe(200);
    const w = await client("vw");
    const sub = await w.subscribe(presentity);
    await w.waitForNotify((n) => n.callId === sub.callId);
    w.answerNotifiesWith(500); // presence keeps the row on 500
    expect(await publisher.publish(presentity)).toBe(200);
    await rx.waitFor(failedFor(sub), 10_000);
    const versionOf = async () =>
      (
        await db.query<{ version: number }>("SELECT version FROM active_watchers WHERE callid = $1", [
          sub.callId,
        ])
      )[0]?.version;
    // Each failed NOTIFY reports its own version (presence may send more than one per PUBLISH);
    // the newest one is the row's: what the compare guard will find.
    const newest = () =>
      Math.max(...rx.events.filter(failedFor(sub)).map((x) => (x as NotifyFailed).version ?? -1));
    await waitUntil(async () => newest() === (await versionOf()), {
      what: "the newest failed NOTIFY's version to be the row's",
    });
    const e = { version: newest() };
    w.answerNotifiesWith(200);
    await w.resubscribe(sub);
    expect(sub.status).toBe(200);
    expect(await versionOf()).toBeGreaterThan(e.version as number);
  });

  it("refuses an event whose text SQS would refuse (U+FFFF in a Call-ID), counts it, and posts the others", async () => {
    const presentity = "sip:ursula@example.com";
    const publisher = await client("ursula");
    expect(await publisher.publish(presentity)).toBe(200);
    const bad = await client("ub");
    const badSub = await bad.subscribe(presentity, { callId: "bad-\uffff-id" });
    await bad.waitForNotify((n) => n.callId === badSub.callId);
    const good = await client("ug");
    const goodSub = await good.subscribe(presentity);
    await good.waitForNotify((n) => n.callId === goodSub.callId);
    bad.answerNotifiesWith(500);
    good.answerNotifiesWith(500);
    const before = (await node.status()).counters.refusedEvents;
    expect(await publisher.publish(presentity)).toBe(200);
    await rx.waitFor(failedFor(goodSub), 10_000); // control: the clean event is posted
    await waitUntil(async () => (await node.status()).counters.refusedEvents > before, {
      what: "the refused event to be counted",
    });
    expect(rx.events.filter(failedFor(badSub))).toEqual([]);
    expect(rx.rejections).toEqual([]); // the envelope itself stayed valid
  });

  it("posts presence.changed after a PUBLISH, for presence and dialog", async () => {
    const publisher = await client("dave");
    expect(await publisher.publish("sip:dave@example.com", { event: "presence" })).toBe(200);
    expect(await publisher.publish("sip:dave@example.com", { event: "dialog" })).toBe(200);
    for (const pkg of ["presence", "dialog"]) {
      const e = (await rx.waitFor(
        (x) => x.type === "presence.changed" && x.presentity === "sip:dave@example.com" && x.event === pkg,
      )) as PresenceChanged;
      expect(e).toMatchObject({ node: "notify-node", boot: node.bootId });
      expect(Math.abs(e.at - Date.now() / 1000)).toBeLessThan(60);
    }
    // control: a PUBLISH Kamailio refuses (unknown event package) posts nothing
    const refused = await publisher.publish("sip:erin@example.com", { event: "no-such-package" });
    expect(refused).toBeGreaterThanOrEqual(400);
    await publisher.publish("sip:frank@example.com");
    await rx.waitFor((x) => x.type === "presence.changed" && x.presentity === "sip:frank@example.com");
    expect(
      rx.events.filter((x) => x.type === "presence.changed" && x.presentity === "sip:erin@example.com"),
    ).toEqual([]);
  });

  it("re-queues an envelope the ingest refused and delivers it when the ingest is back", async () => {
    const before = (await node.status()).counters;
    rx.setAvailable(false);
    const publisher = await client("gina");
    expect(await publisher.publish("sip:gina@example.com")).toBe(200);
    await waitUntil(
      () => rx.requests.some((r) => r.status === 503 && r.body.includes("sip:gina@example.com")),
      {
        what: "a refused POST",
      },
    );
    rx.setAvailable(true);
    const e = await rx.waitFor(
      (x) => x.type === "presence.changed" && x.presentity === "sip:gina@example.com",
    );
    expect(e.type === "presence.changed" && e.boot).toBe(node.bootId);
    const after = (await node.status()).counters;
    expect(after.postFailures).toBeGreaterThan(before.postFailures);
    expect(after.droppedEnvelopes).toBe(before.droppedEnvelopes);
  });
});
