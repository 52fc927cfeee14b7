import { ExecuteStatementCommand, RDSDataClient } from "@aws-sdk/client-rds-data";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import { parseFleetConfig } from "#core/fleet.ts";
import { createCleanupHandler, createReconcilerHandler, type FleetRuntime } from "#handlers/functions.ts";
import { FakeKamailio, fleetOf, nodeConfig } from "../../helpers/fakes.ts";

const node = (id: string, ip: string) =>
  nodeConfig(id, { socketInfo: [`tcp:${ip}:8080`], watchersTable: `aw_${id}` });
const fleet = parseFleetConfig(fleetOf([node("n1", "10.0.0.1"), node("n2", "10.0.0.2")]));

const rds = mockClient(RDSDataClient);
const kamailio = new FakeKamailio();
const calls = kamailio.journal;
for (const n of fleet.nodes)
  kamailio.serve(n.id, { status: { boot: "1800000000-abcd", watchersTable: n.watchersTable } });
const runtime: FleetRuntime = { loadFleet: async () => fleet, rdsData: new RDSDataClient({}), kamailio };

beforeEach(() => {
  rds.reset();
  calls.length = 0;
  rds.on(ExecuteStatementCommand).callsFake((input: { sql: string }) =>
    input.sql.startsWith("SELECT DISTINCT")
      ? {
          records: [
            [{ stringValue: input.sql.includes("aw_n1") ? "tcp:10.0.0.1:8080" : "tcp:10.0.0.2:8080" }],
          ],
        }
      : { records: [] },
  );
});

describe("cleanup handler", () => {
  const handler = createCleanupHandler(runtime);

  it("answers invalid requests with a readable BadRequest, never a stack", async () => {
    expect(await handler({ scope: "everything" })).toEqual({
      ok: false,
      error: { type: "BadRequest", message: expect.stringMatching(/^invalid request: scope: /) },
    });
    expect(await handler({ scope: "node", node: "n9" })).toEqual({
      ok: false,
      error: { type: "BadRequest", message: 'unknown node "n9"; the fleet config has: n1, n2' },
    });
  });

  it("runs a valid request and returns the report", async () => {
    const answer = await handler({ scope: "reconcile", node: "n2", dryRun: true });
    expect(answer.ok).toBe(true);
    if (!answer.ok) return;
    expect(answer.report.nodes.map((n) => [n.node, n.outcome, n.bootId])).toEqual([
      ["n2", "done", "1800000000-abcd"],
    ]);
  });
});

describe("reconciler handler", () => {
  it("sweeps every node", async () => {
    const out = await createReconcilerHandler(runtime)({}, { getRemainingTimeInMillis: () => 60_000 });
    expect(out.totals).toMatchObject({ nodesDone: 2, nodesNotReached: 0 });
  });

  it("stops cleanly when the time budget is spent and reports the nodes it did not reach", async () => {
    const { telemetry, logs } = memoryTelemetry();
    const out = await createReconcilerHandler(runtime, { telemetry })(
      {},
      { getRemainingTimeInMillis: () => 5_000 },
    );
    expect(out.totals).toMatchObject({ nodesDone: 0, nodesNotReached: 2 });
    expect(calls).toEqual([]);
    expect(logs.map((l) => l.message)).toEqual(["reconcile n1: not-reached", "reconcile n2: not-reached"]);
    // Powertools drops (with a warning) the keys it reserves: the reason must travel under another.
    for (const { data } of logs) {
      for (const reserved of ["level", "message", "sampling_rate", "service", "timestamp"]) {
        expect(data ?? {}).not.toHaveProperty(reserved);
      }
      expect(data).toMatchObject({ reason: expect.stringMatching(/time budget/) });
    }
  });
});
