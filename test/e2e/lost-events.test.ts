// What the local pipeline only loaded at start-up, exercised end to end (PostgreSQL, one node):
// - the reconciler TIMER catches a death whose event was lost (the ingest refused it);
// - the on-demand cleanup function (lambdas/handlers/cleanup.ts as loaded by the stack) through
//   the stack's Invoke endpoint (local/invoke.ts) with the real @aws-sdk/client-lambda, and
//   `kwc --remote` (cli/bin.mjs, a child process) against the same endpoint.
// Each stale row is made while the ingest refuses events, so only the reconciler or the cleanup
// function can delete it; the control checks the row is still there first.
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { resolve } from "node:path";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CleanupResponse } from "#handlers/functions.ts";
import { LOCAL_CREDENTIALS, LOCAL_REGION } from "../../local/sqs.ts";
import { CLEANUP_FUNCTION_NAME, type LocalStack } from "../../local/stack.ts";
import type { TestDb } from "../helpers/db.ts";
import { SipWsClient, type Subscription } from "../helpers/sip-ws-client.ts";
import { waitUntil } from "../helpers/wait.ts";
import { type StackBed, startStackBed } from "./stack-bed.ts";

const BIN = resolve(import.meta.dirname, "../../cli/bin.mjs");

function kwc(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env, cwd: tmpdir(), timeout: 60_000 },
      (error, stdout, stderr) => {
        done({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

describe("lost events and on-demand cleanup on the local pipeline (postgres)", () => {
  let bed: StackBed;
  let db: TestDb;
  let stack: LocalStack;

  beforeAll(async () => {
    bed = await startStackBed("postgres", "e2elost", { nodes: 1 });
    ({ db, stack } = bed);
  });

  afterAll(async () => {
    await bed?.close();
  });

  const node = () => {
    const n = stack.nodes[0];
    if (!n?.wsUrl) throw new Error("no local node");
    return n;
  };
  async function watch(user: string, presentity: string): Promise<{ c: SipWsClient; sub: Subscription }> {
    const ip = /^ws:\/\/([^:/]+):/.exec(node().wsUrl ?? "")?.[1];
    const c = await SipWsClient.connect(node().wsUrl ?? "", { user, ...(ip && { localAddress: ip }) });
    bed.clients.push(c);
    const sub = await c.subscribe(presentity);
    expect(sub.status).toBe(200);
    await c.waitForNotify((n) => n.callId === sub.callId);
    return { c, sub };
  }
  const rowsOf = async (callId: string) =>
    Number(
      (
        await db.query<{ n: number }>("SELECT count(*)::int AS n FROM active_watchers WHERE callid = $1", [
          callId,
        ])
      )[0]?.n ?? 0,
    );
  /** A watcher dies while the ingest refuses events: Kamailio's POST gets 503, nothing is queued. */
  async function dieWhileIngestDown(victim: SipWsClient): Promise<void> {
    const refusedBefore = stack.ingest.stats.unavailable;
    stack.ingest.setAvailable(false);
    await victim.die("rst");
    await waitUntil(() => stack.ingest.stats.unavailable > refusedBefore, {
      timeoutMs: 15_000,
      what: "Kamailio's POST of the close event to be refused",
    });
  }

  it("the reconciler timer deletes the row of a death whose event was lost, and the survivor is notified", async () => {
    const presentity = "sip:lost-1@example.com";
    const publisher = await SipWsClient.connect(node().wsUrl ?? "", { user: "lost-1" });
    bed.clients.push(publisher);
    expect(await publisher.publish(presentity)).toBe(200);
    const survivor = await watch("lost-survivor", presentity);
    const dying = await watch("lost-dying", presentity);
    // Not eventsIn: the PUBLISH's presence.changed may still be on its way to the worker here.
    const workerDeletesBefore = stack.counters.metrics.RowsDeleted ?? 0; // every path's deletions
    const reconcileDeletedBefore = stack.counters.reconcileDeleted;
    const runsBefore = stack.counters.reconcileRuns;
    const diedAt = Date.now();
    try {
      await dieWhileIngestDown(dying.c);
      // Control: nothing has deleted the row (the event never reached SQS, the timer is off).
      await survivor.c.ping();
      expect(await rowsOf(dying.sub.callId)).toBe(1);

      stack.setReconcileEvery(1000);
      await waitUntil(async () => (await rowsOf(dying.sub.callId)) === 0, {
        timeoutMs: 20_000,
        what: "the reconciler timer to delete the stale row",
      });
      // The reconciler deleted it (its report is tallied once its sweep, refreshes included, is
      // done); the worker, which never saw the close event, deleted nothing.
      await waitUntil(() => stack.counters.reconcileDeleted > reconcileDeletedBefore, {
        timeoutMs: 10_000,
        what: "the reconciler's report of the delete",
      });
      // RowsDeleted counts every path now: its rise is exactly the reconciler's deletions.
      expect((stack.counters.metrics.RowsDeleted ?? 0) - workerDeletesBefore).toBe(
        stack.counters.reconcileDeleted - reconcileDeletedBefore,
      );
      await survivor.c.waitForNotify(
        (n) => n.callId === survivor.sub.callId && n.receivedAt >= diedAt,
        10_000,
      );
    } finally {
      stack.setReconcileEvery(0);
      stack.ingest.setAvailable(true);
    }
    expect(stack.counters.reconcileRuns).toBeGreaterThan(runsBefore);
    expect(stack.counters.reconcileDeleted).toBeGreaterThanOrEqual(1);
    expect(stack.counters.reconcileErrors).toBe(0);
    expect(await rowsOf(survivor.sub.callId)).toBe(1);
  });

  it("the cleanup function answers the real Lambda client (dry run), and kwc --remote deletes through it", async () => {
    const presentity = "sip:ondemand-2@example.com";
    const keep = await watch("od-keep", presentity);
    const dying = await watch("od-dying", presentity);
    try {
      await dieWhileIngestDown(dying.c);
      expect(await rowsOf(dying.sub.callId)).toBe(1);
      const invocationsBefore = stack.invoke.invocations[CLEANUP_FUNCTION_NAME] ?? 0;

      const lambda = new LambdaClient({
        endpoint: stack.invoke.endpoint,
        region: LOCAL_REGION,
        credentials: LOCAL_CREDENTIALS,
      });
      try {
        const out = await lambda.send(
          new InvokeCommand({
            FunctionName: `arn:aws:lambda:${LOCAL_REGION}:000000000000:function:${CLEANUP_FUNCTION_NAME}`,
            Payload: JSON.stringify({ scope: "node", node: node().id, dryRun: true }),
          }),
        );
        expect(out.StatusCode).toBe(200);
        expect(out.FunctionError).toBeUndefined();
        const response = JSON.parse(new TextDecoder().decode(out.Payload)) as CleanupResponse;
        if (!response.ok) throw new Error(`cleanup failed: ${response.error.message}`);
        expect(response.report.dryRun).toBe(true);
        expect(response.report.nodes[0]?.rows.map((r) => [r.key.callId, r.reason])).toEqual([
          [dying.sub.callId, "conn-closed"],
        ]);
        expect(response.report.totals.deleted).toBe(0);
        // A dry run deletes nothing.
        expect(await rowsOf(dying.sub.callId)).toBe(1);
      } finally {
        lambda.destroy();
      }

      const run = await kwc(["clean", "--node", node().id, "--remote", "--json"], {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        AWS_ENDPOINT_URL_LAMBDA: stack.invoke.endpoint,
        AWS_REGION: LOCAL_REGION,
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
        KWC_CLEANUP_FUNCTION: CLEANUP_FUNCTION_NAME,
      });
      expect(run.code, run.stderr).toBe(0);
      const report = JSON.parse(run.stdout) as {
        totals: { deleted: number };
        nodes: { rows: { key: { callId: string } }[] }[];
      };
      expect(report.totals.deleted).toBe(1);
      expect(report.nodes[0]?.rows.map((r) => r.key.callId)).toEqual([dying.sub.callId]);
      expect(await rowsOf(dying.sub.callId)).toBe(0);
      expect(await rowsOf(keep.sub.callId)).toBe(1);
      expect(stack.invoke.invocations[CLEANUP_FUNCTION_NAME]).toBe(invocationsBefore + 2);
    } finally {
      stack.ingest.setAvailable(true);
    }
  });
});
