// `npm run demo`'s scenario (local/demo-scenario.ts) on the local pipeline, PostgreSQL, two nodes,
// notifier_processes 0. Asserts its result values, never its timings. The "without the service"
// halves are the controls: with the worker paused, Kamailio 5.6.3 alone answers 500, keeps the
// stale row and starves the survivors, and a PUBLISH on A reaches nobody on B.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatDemoTable, runDemoScenario } from "../../local/demo-scenario.ts";
import type { LocalStack } from "../../local/stack.ts";
import type { TestDb } from "../helpers/db.ts";
import { type StackBed, startStackBed } from "./stack-bed.ts";

describe("npm run demo's scenario (postgres, two nodes)", () => {
  let bed: StackBed;
  let db: TestDb;
  let stack: LocalStack;

  beforeAll(async () => {
    bed = await startStackBed("postgres", "e2edemo", { nodes: 2 });
    ({ db, stack } = bed);
  });

  afterAll(async () => {
    await bed?.close();
  });

  it("shows the starvation without the service and its end with it, on one node and across two", async () => {
    const result = await runDemoScenario({ stack, engine: "postgres", query: db.query, survivors: 3 });
    const { oneNode, twoNodes } = result;

    // The precondition of the bug held: each dead tab was the first row Kamailio notifies.
    expect([oneNode.deadNotifiedFirst, oneNode.withService.deadNotifiedFirst]).toEqual([true, true]);
    expect(twoNodes.withService.deadNotifiedFirst).toBe(true);

    // Control: without the service, Kamailio 5.6.3 alone.
    expect(oneNode.withoutService).toEqual({
      eventWaitingInSqs: true,
      refreshStatus: 500,
      refreshError: "Execution failed",
      survivors: 3,
      survivorsNotified: 0,
      staleRowKept: true,
    });
    expect(twoNodes.withoutService).toEqual({ publishStatus: 200, watchersOnB: 3, notifiedOnB: 0 });

    // The worker catches up on what waited in SQS.
    expect(oneNode.catchUp).toMatchObject({ rowGone: true, survivors: 3, survivorsNotified: 3 });
    expect(twoNodes.catchUp.notifiedOnB).toBe(3);

    // With the service running.
    expect(oneNode.withService).toMatchObject({
      rowGone: true,
      survivors: 3,
      survivorsNotified: 3,
      refreshStatusAfter: 200,
    });
    expect(twoNodes.withService).toMatchObject({
      publishStatus: 200,
      rowGone: true,
      survivors: 3,
      survivorsNotified: 3,
    });

    const table = formatDemoTable(result);
    expect(table).toContain('refreshWatchers → 500 "Execution failed"');
    expect(table).toContain("0/3 watchers on B notified");
  });
});
