// The mass-disconnect bench's core (test/helpers/mass-disconnect.ts) at 1 % scale: 50 BLF tabs on
// real WebSocket connections (5,000 rows, 100 presentities of 50 watchers), 10 tabs die by RST at
// once, PUBLISHes go to 2 presentities while their dead rows are there; through the local pipeline
// with the deployed event-source settings and real Kamailio 5.6.3. Asserts the goals' invariants,
// never times: every dead row gone, no live row deleted, nothing dead-lettered, every sampled real
// watcher on its presentity's newest state. Control: the worker is held until Kamailio has reported
// every close and the PUBLISHes were answered; the dead rows are all still there then, so it is the
// pipeline that removes them.
import { describe, expect, it } from "vitest";
import { type MassDisconnectResult, runMassDisconnect } from "../helpers/mass-disconnect.ts";

describe("mass disconnect at 1 % scale, through the local pipeline", () => {
  it("deletes every dead tab's rows and only those, with no DLQ, and every sampled survivor current", async () => {
    const r: MassDisconnectResult = await runMassDisconnect({
      scale: 0.01,
      windowMs: 15_000,
      holdWorker: true,
      settle: "state",
    });
    expect(r.world).toMatchObject({ tabs: 50, deadTabs: 10, rows: 5000, deadRows: 1000, published: 2 });
    // Control: Kamailio reported every close and the node alone removed nothing.
    expect(r.closesReportedMs).toBeDefined();
    expect(r.deadRowsBeforePipeline).toBe(r.world.deadRows);
    expect(r.publishes.ok).toBe(r.world.published);
    // The pipeline's effect.
    expect(r.deadRowsLeft).toBe(0);
    expect(r.deadRowsGoneMs).toBeDefined();
    expect(r.liveRowsDeleted).toBe(0);
    expect(r.dlq).toEqual({ events: 0, followUps: 0 });
    expect(r.poller.failedInvocations).toBe(0);
    expect(r.survivors.stale).toEqual([]);
    expect(r.survivors.current).toBe(r.survivors.sampled);
    expect(r.kamailio.allocationFailures).toBe(0);
  });
});
