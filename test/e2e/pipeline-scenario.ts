// The end-to-end scenarios on the local pipeline (`npm start`'s stack, in-process), shared by the
// PostgreSQL and MariaDB files (one stack per process: the handlers read their env at load).
// Everything goes through the real path: Kamailio (shipped cfg) → ingest → SQS → poller → worker
// → Data API server → database, and → JSON-RPC refresh; no manual step in between.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FaultInjector } from "../../local/dataapi/server.ts";
import type { LocalStack } from "../../local/stack.ts";
import { statusLine } from "../../local/status.ts";
import type { Engine, TestDb } from "../helpers/db.ts";
import { SipWsClient } from "../helpers/sip-ws-client.ts";
import { waitUntil } from "../helpers/wait.ts";
import { dlqReasons, type StackBed, startStackBed } from "./stack-bed.ts";

export function pipelineScenarios(engine: Engine): void {
  describe(`local pipeline on ${engine}, notifier_processes 0, two nodes`, () => {
    let bed: StackBed;
    let db: TestDb;
    let stack: LocalStack;

    beforeAll(async () => {
      bed = await startStackBed(engine, "e2e", { nodes: 2, maxReceiveCount: 4 });
      ({ db, stack } = bed);
    });

    afterAll(async () => {
      await bed?.close();
    });

    const node = (i: number) => {
      const n = stack.nodes[i];
      if (!n?.wsUrl) throw new Error(`node ${i} has no WebSocket`);
      return n;
    };
    async function connect(i: number, user: string): Promise<SipWsClient> {
      const n = node(i);
      const ip = n.wsUrl?.replace(/^ws:\/\/([^:]+):.*$/, "$1");
      const c = await SipWsClient.connect(n.wsUrl ?? "", { user, ...(ip && { localAddress: ip }) });
      bed.clients.push(c);
      return c;
    }
    async function rowsFor(table: string, callId: string): Promise<number> {
      const sql =
        engine === "postgres"
          ? `SELECT count(*)::int AS n FROM ${table} WHERE callid = $1`
          : `SELECT count(*) AS n FROM ${table} WHERE callid = ?`;
      const rows = await db.query<{ n: number }>(sql, [callId]);
      return Number(rows[0]?.n ?? 0);
    }

    it("a watcher dies abruptly: its row is gone and every survivor is notified", async () => {
      const presentity = "sip:alice-1@example.com";
      const publisher = await connect(0, "alice-1");
      expect(await publisher.publish(presentity)).toBe(200);
      const watchers = await Promise.all(["w1", "w2", "w3", "w4"].map((u) => connect(0, u)));
      const subs = [];
      for (const w of watchers) {
        const sub = await w.subscribe(presentity);
        expect(sub.status).toBe(200);
        await w.waitForNotify((n) => n.callId === sub.callId);
        subs.push(sub);
      }
      const [dying, ...survivors] = watchers;
      const dyingSub = subs[0];
      if (!dying || !dyingSub) throw new Error("no watcher");
      const table = node(0).watchersTable;
      expect(await rowsFor(table, dyingSub.callId)).toBe(1);

      const diedAt = Date.now();
      await dying.die("rst");
      // Kamailio 5.6.3 in sync mode never deletes this row itself (the NOTIFY has no transaction):
      // only the service can.
      await waitUntil(async () => (await rowsFor(table, dyingSub.callId)) === 0, {
        timeoutMs: 20_000,
        what: "the dead watcher's row to be deleted",
      });
      // The service's refresh re-NOTIFYs every survivor; without it nothing would send one now.
      for (const [i, w] of survivors.entries()) {
        const sub = subs[i + 1];
        await w.waitForNotify((n) => n.callId === sub?.callId && n.receivedAt >= diedAt, 20_000);
      }
      for (const [i] of survivors.entries()) expect(await rowsFor(table, subs[i + 1]?.callId ?? "")).toBe(1);
      expect(stack.counters.eventsIn).toBeGreaterThan(0);
      // npm start's status line counts what just happened (EMF metrics of the worker).
      const line = await statusLine(stack);
      expect(Number(/rows deleted (\d+)/.exec(line)?.[1])).toBeGreaterThanOrEqual(1);
      expect(Number(/refreshes (\d+)/.exec(line)?.[1])).toBeGreaterThanOrEqual(1);
    });

    it("two nodes: a PUBLISH on one reaches the watchers of the other", async () => {
      const presentity = "sip:bob-2@example.com";
      const onB = await connect(1, "wb1");
      const publisherA = await connect(0, "bob-2");
      expect(await publisherA.publish(presentity, { body: undefined })).toBe(200);
      const sub = await onB.subscribe(presentity);
      expect(sub.status).toBe(200);
      await onB.waitForNotify((n) => n.callId === sub.callId);
      const before = Date.now();
      const note = "changed-on-node-a";
      const body = `<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${presentity}"><tuple id="t1"><status><basic>closed</basic></status><note>${note}</note></tuple></presence>`;
      expect(await publisherA.publish(presentity, { body })).toBe(200);
      // Node B shares only the presentity table: it sends this NOTIFY because the service asked it to.
      const notify = await onB.waitForNotify(
        (n) => n.callId === sub.callId && n.receivedAt >= before && n.body.includes(note),
        20_000,
      );
      expect(notify.body).toContain(note);
    });

    it("an invalid event goes to the DLQ with its reason and never blocks the valid one next to it", async () => {
      const presentity = "sip:carol-3@example.com";
      const publisher = await connect(0, "carol-3");
      expect(await publisher.publish(presentity)).toBe(200);
      const victim = await connect(0, "w-dlq");
      const sub = await victim.subscribe(presentity);
      await victim.waitForNotify((n) => n.callId === sub.callId);
      const [ip, port] = [victim.localAddress, victim.localPort];
      const boot = stack.kamailios[0]?.bootId ?? "";
      const dlqBefore = (await stack.sqs.depth("dlq")).visible;
      victim.close();
      const envelope = {
        v: 1,
        events: [
          {
            type: "connection.closed",
            node: node(0).id,
            boot,
            peer: { ip, port: 70_000 },
            cause: "tcp:reset",
            at: Date.now() / 1000,
          },
          {
            type: "connection.closed",
            node: node(0).id,
            boot,
            peer: { ip, port },
            transport: "ws",
            cause: "tcp:reset",
            at: Date.now() / 1000,
          },
        ],
      };
      const res = await fetch(stack.ingest.eventsUrl, {
        method: "POST",
        headers: { "x-kwc-key": stack.ingestKey, "content-type": "application/json", connection: "close" },
        body: JSON.stringify(envelope),
      });
      expect(res.status).toBe(200);
      await waitUntil(async () => (await rowsFor(node(0).watchersTable, sub.callId)) === 0, {
        timeoutMs: 20_000,
        what: "the valid event's row to be deleted",
      });
      await waitUntil(async () => (await stack.sqs.depth("dlq")).visible > dlqBefore, {
        timeoutMs: 20_000,
        what: "the invalid event in the DLQ",
      });
      expect(stack.counters.rejects).toBeGreaterThanOrEqual(1);
      // Sent by the worker itself, with its reason (a redrive after maxReceiveCount has none).
      const reasons = await dlqReasons(stack);
      expect(reasons.some((r) => r.includes("port") && r.includes("70000"))).toBe(true);
    });

    it("a transient Data API fault is retried through SQS and the row is still deleted", async () => {
      const presentity = "sip:dave-4@example.com";
      const publisher = await connect(0, "dave-4");
      expect(await publisher.publish(presentity)).toBe(200);
      const victim = await connect(0, "w-fault");
      const sub = await victim.subscribe(presentity);
      await victim.waitForNotify((n) => n.callId === sub.callId);
      const faults = stack.dataApiFaults as FaultInjector;
      // Fewer consecutive failures than maxReceiveCount (4): the retry must succeed.
      faults.failNext(2, "DatabaseResumingException", { operation: "ExecuteStatement" });
      const failedBefore = stack.poller()?.stats.failedRecords ?? 0;
      await victim.die("rst");
      await waitUntil(async () => (await rowsFor(node(0).watchersTable, sub.callId)) === 0, {
        timeoutMs: 30_000,
        what: "the row to be deleted after the retries",
      });
      expect((stack.poller()?.stats.failedRecords ?? 0) - failedBefore).toBeGreaterThanOrEqual(1);
      faults.clear();
    });

    it("stopping the worker for a while loses nothing", async () => {
      const presentity = "sip:erin-5@example.com";
      const publisher = await connect(0, "erin-5");
      expect(await publisher.publish(presentity)).toBe(200);
      const victim = await connect(0, "w-paused");
      const sub = await victim.subscribe(presentity);
      await victim.waitForNotify((n) => n.callId === sub.callId);
      await stack.pauseWorker();
      await victim.die("rst");
      // (visible, or in flight when an aborted long poll of the stopped poller took it: it returns)
      await waitUntil(
        async () => {
          const depth = await stack.sqs.depth("queue");
          return depth.visible + depth.inFlight >= 1;
        },
        {
          timeoutMs: 20_000,
          what: "the close event waiting in SQS",
        },
      );
      // Control: nothing deletes the row while the worker is stopped.
      expect(await rowsFor(node(0).watchersTable, sub.callId)).toBe(1);
      stack.resumeWorker();
      await waitUntil(async () => (await rowsFor(node(0).watchersTable, sub.callId)) === 0, {
        timeoutMs: 20_000,
        what: "the row to be deleted once the worker runs again",
      });
    });
  });
}
