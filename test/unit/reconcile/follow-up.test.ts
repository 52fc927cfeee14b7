// The reconcile sweep's follow-up: a refresh after the sweep's deletes that hits a transient fault
// (node unreachable) is queued as refresh.requested for the worker; a refresh fault (500) is not
// (it is an answer, not an outage); without the queue, or if the queue refuses, it stays "failed".
import { describe, expect, it } from "vitest";
import { RpcFaultError, RpcTransportError } from "#core/classify.ts";
import { CleanupRequestSchema } from "#core/cleanup-request.ts";
import type { RefreshRequested } from "#core/contract.ts";
import type { FollowUpSink, WatcherRow } from "#core/ports.ts";
import { runCleanup } from "#core/reconcile-sweep.ts";
import { FakeKamailio, MemoryStore, nodeConfig, RecordingSink } from "../../helpers/fakes.ts";

const NOW_MS = 1_800_000_000_000;
const A = nodeConfig("a", { socketInfo: ["tcp:10.0.0.1:8080"], watchersTable: "aw_a" });

function row(id: number, port: number, presentityUri: string): WatcherRow {
  return {
    id,
    callId: `call-${id}`,
    toTag: "tt",
    fromTag: "ft",
    presentityUri,
    watcherUsername: "w",
    watcherDomain: "x",
    event: "presence",
    contact: `sip:u${id}@10.9.9.9:${port};transport=ws`,
    expires: NOW_MS / 1000 + 600,
    version: 1,
    socketInfo: "tcp:10.0.0.1:8080",
  };
}

function sweepWith(refreshFaults: Record<string, unknown>, followUps?: FollowUpSink) {
  const store = new MemoryStore({
    aw_a: [
      row(1, 5001, "sip:bob@x"),
      row(2, 5002, "sip:carol@x"),
      row(3, 5003, "sip:dan@x"),
      row(4, 6000, "sip:bob@x"),
    ],
  });
  const kamailio = new FakeKamailio().serve("a", {
    status: { boot: "1800000000-abcd" },
    live: [{ ip: "10.9.9.9", port: 6000 }],
  });
  kamailio.refreshFaultFor = (presentity) => refreshFaults[presentity];
  return runCleanup(
    {
      store,
      kamailio,
      engine: "postgres",
      fleet: [A],
      now: () => NOW_MS,
      ...(followUps ? { followUps } : {}),
    },
    CleanupRequestSchema.parse({ scope: "reconcile" }),
  );
}

const down = () => new RpcTransportError("presence.refreshWatchers", "fetch failed: ECONNREFUSED");
const faults = () => ({
  "sip:bob@x": down(),
  "sip:carol@x": new RpcFaultError("presence.refreshWatchers", 500, "Execution failed", 500),
});

describe("reconcile sweep: refresh owed after deletes", () => {
  it("a transient fault queues one refresh.requested per pair; a 500 answer does not", async () => {
    const sink = new RecordingSink<RefreshRequested>();
    const report = await sweepWith(faults(), sink);
    const node = report.nodes[0];
    expect(node?.deleted).toBe(3);
    expect(sink.sent).toEqual([
      [
        {
          type: "refresh.requested",
          node: "a",
          presentity: "sip:bob@x",
          event: "presence",
          reason: "refresh-failed",
          attempt: 1,
          at: NOW_MS / 1000,
        },
      ],
    ]);
    expect(node?.refreshes.map((r) => [r.presentity, r.outcome])).toEqual([
      ["sip:bob@x", "deferred"],
      ["sip:carol@x", "failed"],
      ["sip:dan@x", "ok"],
    ]);
    expect(report.totals.refreshFailures).toBe(1);
  });

  it("control: without the events queue the same fault stays failed and nothing is queued", async () => {
    const report = await sweepWith(faults());
    expect(report.nodes[0]?.refreshes.map((r) => r.outcome)).toEqual(["failed", "failed", "ok"]);
  });

  it("a queue that refuses leaves the refresh failed and says so in the node's warnings", async () => {
    const sink = new RecordingSink<RefreshRequested>();
    sink.down = new Error("SQS down");
    const report = await sweepWith(faults(), sink);
    expect(report.nodes[0]?.refreshes.map((r) => r.outcome)).toEqual(["failed", "failed", "ok"]);
    expect(report.nodes[0]?.warnings.join("\n")).toMatch(
      /1 refreshes owed after the deletes could not be queued \(SQS down\)/,
    );
  });
});
