// "Never delete a live watcher", through the local pipeline (SQS → poller → worker → Data API →
// real Kamailio 5.6.3 in sync mode), on both engines. Each attack is a notify.failed carrying a
// real dialog key; each has its control: the same event against a dead peer does delete.
//   - forged boot / forged `at`            → ignored (EventsIgnoredBoot / EventsIgnoredStale)
//   - right boot, fresh, right version, but the watcher is connected → kept (GuardKeeps)
//   - right boot, fresh, dead peer, but re-SUBSCRIBEd since the failed NOTIFY → kept (version changed)
//   - an older cfg's event (no `version`)  → ignored, never deleted by dialog key
// The dead peer's own close event is kept away (the ingest refuses it), and the attacks go
// straight to the events queue, as a holder of the ingest key or a DLQ redrive would put them.
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalStack } from "../../local/stack.ts";
import type { TestDb } from "../helpers/db.ts";
import { SipWsClient, type Subscription } from "../helpers/sip-ws-client.ts";
import { waitUntil } from "../helpers/wait.ts";
import { dlqReasons, type StackBed, startStackBed } from "./stack-bed.ts";

const PRESENTITY = "sip:guard-carol@example.com";

/** One engine per file: the local stack configures its handlers once per process. */
export function guardScenarios(engine: "postgres" | "mysql"): void {
  describe(`the deletion guard on the local pipeline (${engine})`, () => {
    let bed: StackBed;
    let db: TestDb;
    let stack: LocalStack;
    const ph = (n: number) => (engine === "postgres" ? `$${n}` : "?");

    beforeAll(async () => {
      bed = await startStackBed(engine, "e2eguard", { nodes: 1 });
      ({ db, stack } = bed);
    });
    afterAll(() => bed?.close());

    const wsUrl = () => stack.nodes[0]?.wsUrl ?? "";
    const boot = () => stack.kamailios[0]?.bootId ?? "";
    async function client(user: string): Promise<SipWsClient> {
      const ip = /^ws:\/\/([^:/]+):/.exec(wsUrl())?.[1];
      const c = await SipWsClient.connect(wsUrl(), { user, ...(ip && { localAddress: ip }) });
      bed.clients.push(c);
      return c;
    }
    async function watch(
      user: string,
      presentity = PRESENTITY,
    ): Promise<{ c: SipWsClient; sub: Subscription }> {
      const c = await client(user);
      const sub = await c.subscribe(presentity);
      expect(sub.status).toBe(200);
      await c.waitForNotify((n) => n.callId === sub.callId);
      return { c, sub };
    }
    const rowOf = async (callId: string) =>
      (
        await db.query<{ version: number }>(`SELECT version FROM active_watchers WHERE callid = ${ph(1)}`, [
          callId,
        ])
      )[0];
    const metric = (name: string) => stack.counters.metrics[name] ?? 0;
    function notifyFailed(sub: Subscription, over: Record<string, unknown>) {
      return {
        type: "notify.failed",
        node: stack.nodes[0]?.id,
        boot: boot(),
        dialog: { callId: sub.callId, toTag: sub.toTag, fromTag: sub.fromTag },
        presentity: PRESENTITY,
        event: "presence",
        code: 408,
        contact: "sip:x@127.0.0.1:1;transport=ws",
        at: Math.floor(Date.now() / 1000),
        ...over,
      };
    }
    async function post(...events: unknown[]): Promise<void> {
      const sqs = stack.sqs.createClient();
      try {
        await sqs.send(
          new SendMessageCommand({
            QueueUrl: stack.sqs.queueUrl,
            MessageBody: JSON.stringify({ v: 1, events }),
          }),
        );
      } finally {
        sqs.destroy();
      }
    }
    async function postRaw(body: string): Promise<void> {
      const sqs = stack.sqs.createClient();
      try {
        await sqs.send(new SendMessageCommand({ QueueUrl: stack.sqs.queueUrl, MessageBody: body }));
      } finally {
        sqs.destroy();
      }
    }
    async function settle(name: string, before: number, what: string) {
      await waitUntil(() => metric(name) > before, { timeoutMs: 20_000, what });
    }

    it("a connected watcher keeps its row against forged, stale and genuine notify.failed events", async () => {
      const publisher = await client("guard-carol");
      expect(await publisher.publish(PRESENTITY)).toBe(200);
      const bob = await watch("guard-bob");
      const version = (await rowOf(bob.sub.callId))?.version as number;

      let before = metric("EventsIgnoredStale");
      await post(notifyFailed(bob.sub, { boot: "1000000000-deadbeef", at: 1_000_000_001, version }));
      await settle("EventsIgnoredStale", before, "the event from 2001 to be ignored");
      before = metric("EventsIgnoredBoot");
      await post(notifyFailed(bob.sub, { boot: "1000000000-deadbeef", version }));
      await settle("EventsIgnoredBoot", before, "the forged boot to be ignored");
      before = metric("GuardKeeps");
      await post(notifyFailed(bob.sub, { version }));
      await settle("GuardKeeps", before, "the live row to be kept");
      before = metric("EventsIgnored");
      await post(notifyFailed(bob.sub, {})); // an older cfg's event: no version
      await settle("EventsIgnored", before, "the versionless event to be ignored");
      expect(await rowOf(bob.sub.callId)).toBeDefined();
    });

    it("control: the same genuine event deletes a dead watcher's row, unless it re-subscribed since", async () => {
      const dave = await watch("guard-dave");
      // Erin watches another presentity: the refresh after dave's delete (a 500 on 5.6.3, then a
      // reconcile of that presentity) never judges erin's row; only the compare guard does.
      const erin = await watch("guard-erin", "sip:guard-frank@example.com");
      const daveVersion = (await rowOf(dave.sub.callId))?.version as number;
      const erinOld = (await rowOf(erin.sub.callId))?.version as number;
      await erin.c.resubscribe(erin.sub); // bumps erin's version (its NOTIFY)
      await waitUntil(async () => ((await rowOf(erin.sub.callId))?.version ?? 0) > erinOld, {
        what: "erin's re-SUBSCRIBE to bump the row's version",
      });
      const refused = stack.ingest.stats.unavailable;
      stack.ingest.setAvailable(false);
      try {
        await dave.c.die("rst");
        await erin.c.die("rst");
        await waitUntil(() => stack.ingest.stats.unavailable > refused, {
          timeoutMs: 15_000,
          what: "Kamailio's POST of the close events to be refused",
        });
        const kept = metric("GuardKeepsChanged");
        const deleted = metric("RowsDeleted");
        await post(
          notifyFailed(dave.sub, { version: daveVersion }),
          notifyFailed(erin.sub, { version: erinOld, presentity: "sip:guard-frank@example.com" }),
        );
        await waitUntil(async () => (await rowOf(dave.sub.callId)) === undefined, {
          timeoutMs: 20_000,
          what: "the dead watcher's row to be deleted",
        });
        await settle("GuardKeepsChanged", kept, "the re-subscribed row to be kept");
        expect(metric("RowsDeleted")).toBe(deleted + 1);
        expect(await rowOf(erin.sub.callId)).toBeDefined();
      } finally {
        stack.ingest.setAvailable(true);
      }
    });

    it("one bad record never sinks its batch: deep nesting, NUL and U+FFFF are dead-lettered alone, with reasons", async () => {
      const dave = await watch("guard-gina");
      const version = (await rowOf(dave.sub.callId))?.version as number;
      const dlqBefore = (await stack.sqs.depth("dlq")).visible;
      const refused = stack.ingest.stats.unavailable;
      stack.ingest.setAvailable(false);
      try {
        await dave.c.die("rst");
        await waitUntil(() => stack.ingest.stats.unavailable > refused, {
          timeoutMs: 15_000,
          what: "Kamailio's POST of the close event to be refused",
        });
        await stack.pauseWorker(); // the four bodies go to the worker in one batch
        await postRaw(`{"v":1,"events":[${"[".repeat(6000)}${"]".repeat(6000)}]}`);
        // JSON-escaped in the body (valid SQS text); the event itself must be refused
        await postRaw(
          JSON.stringify({ v: 1, events: [notifyFailed(dave.sub, { version, contact: "a\u0000b" })] }),
        );
        // JSON.stringify leaves U+FFFF raw, which SQS refuses in a body: send it escaped
        const ffff = JSON.stringify({
          v: 1,
          events: [notifyFailed(dave.sub, { version, contact: "a\uffffb" })],
        });
        await postRaw(ffff.replace("\uffff", "\\uffff"));
        await post(notifyFailed(dave.sub, { version }));
        stack.resumeWorker();
        await waitUntil(async () => (await rowOf(dave.sub.callId)) === undefined, {
          timeoutMs: 20_000,
          what: "the valid event's delete",
        });
        await waitUntil(async () => (await stack.sqs.depth("dlq")).visible >= dlqBefore + 3, {
          timeoutMs: 20_000,
          what: "the three bad records in the DLQ",
        });
      } finally {
        stack.resumeWorker();
        stack.ingest.setAvailable(true);
      }
      const reasons = await dlqReasons(stack);
      expect(reasons).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/nested at most 8 deep/),
          expect.stringMatching(/contact: expected text without control characters/),
        ]),
      );
      expect(reasons.filter((r) => r.includes("expected text without control characters"))).toHaveLength(2);
    });
  });
}
