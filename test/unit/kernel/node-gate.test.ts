// What each use case refuses, warns about or allows (kernel/node-gate.ts); README "Kamailio
// versions and what they need" says the same.
import { describe, expect, it } from "vitest";
import type { NodeFacts } from "#core/fleet.ts";
import { type GatePolicy, gateNode, SWEEP_POLICY, WORKER_POLICY } from "#core/kernel/node-gate.ts";

const node = {
  id: "a",
  socketInfo: ["tcp:10.0.0.1:8080"],
  watchersTable: "aw_a",
  contactStyle: "nated" as const,
};
const other = { ...node, id: "b", socketInfo: ["tcp:10.0.0.2:8080"], watchersTable: "aw_b" };
type NodeMode = Pick<
  NodeFacts,
  "kamailioVersion" | "subsDbMode" | "notifierProcesses" | "watchersTable" | "source"
>;
const ok: NodeMode = { kamailioVersion: "5.6.3", subsDbMode: 3, notifierProcesses: 0, source: "status" };

type Expect = "ok" | "warn" | "refuse";
const table: [string, NodeMode, "postgres" | "mysql", string[], Expect, Expect][] = [
  ["sync mode, DB-only", ok, "postgres", [], "ok", "ok"],
  ["subs_db_mode=2", { ...ok, subsDbMode: 2 }, "mysql", [], "refuse", "refuse"],
  [
    "notifier mode, PostgreSQL, 5.7.0",
    { ...ok, kamailioVersion: "5.7.0", notifierProcesses: 1 },
    "postgres",
    [],
    "ok",
    "refuse",
  ],
  ["notifier mode, PostgreSQL, 5.6.3", { ...ok, notifierProcesses: 1 }, "postgres", [], "ok", "ok"],
  [
    "notifier mode, MySQL, 6.0.1",
    { ...ok, kamailioVersion: "6.0.1", notifierProcesses: 1 },
    "mysql",
    [],
    "ok",
    "ok",
  ],
  [
    "status names another table",
    { ...ok, watchersTable: "active_watchers" },
    "postgres",
    [],
    "warn",
    "refuse",
  ],
  [
    "the table holds another node's rows",
    ok,
    "postgres",
    ["tcp:10.0.0.1:8080", "tcp:10.0.0.2:8080"],
    "ok",
    "refuse",
  ],
  ["the table holds an unknown socket's rows", ok, "postgres", ["udp:10.0.0.1:5060"], "ok", "warn"],
];

const verdict = (
  mode: NodeMode,
  engine: "postgres" | "mysql",
  sockets: string[],
  policy: GatePolicy,
): Expect => {
  const v = gateNode(node, mode, engine, policy, [node, other], sockets);
  return v.refusal ? "refuse" : v.warnings.length > 0 ? "warn" : "ok";
};

describe("gateNode", () => {
  it.each(table)("%s → worker %s… sweep", (_name, mode, engine, sockets, worker, sweep) => {
    expect(verdict(mode, engine, sockets, WORKER_POLICY)).toBe(worker);
    expect(verdict(mode, engine, sockets, SWEEP_POLICY)).toBe(sweep);
  });

  it("says which source the mode came from", () => {
    const v = gateNode(node, { ...ok, subsDbMode: 1 }, "mysql", WORKER_POLICY);
    expect(v.refusal).toMatch(/subs_db_mode=1 \(from its status\).*shared memory/);
  });
});
