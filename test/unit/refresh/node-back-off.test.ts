// Back-off from a node that answered 503 over its refresh budget: the rest of its refreshes in the
// batch are not sent, other nodes are untouched, other faults change nothing, and the follow-up
// owed carries both the deleting records and the events that asked for it.
import { describe, expect, it } from "vitest";
import { KamailioRpcClient } from "#adapters/kamailio-rpc.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import { classifyRpcError, type Fault, NodeOverloadedError, RpcTransportError } from "#core/classify.ts";
import type { NodeConfig, NodeFacts } from "#core/fleet.ts";
import { isOverloaded, NodeBackOff } from "#core/node-back-off.ts";

const facts: NodeFacts = { kamailioVersion: "5.6.3", subsDbMode: 3, notifierProcesses: 0, source: "status" };
const classify = (error: unknown): Fault =>
  classifyRpcError(error, "presence.refreshWatchers", facts, "postgres");

describe("NodeBackOff", () => {
  it("after a 503, sends that node nothing more in the batch; other nodes go on", async () => {
    const tel = memoryTelemetry();
    const backOff = new NodeBackOff(tel.telemetry);
    const sent: string[] = [];
    const refuse = async () => {
      sent.push("a");
      throw new NodeOverloadedError("presence.refreshWatchers", "a");
    };
    const first = await backOff.attempt("a", refuse, classify);
    expect(isOverloaded(first)).toBe(true);
    const second = await backOff.attempt("a", refuse, classify);
    expect(isOverloaded(second)).toBe(true);
    expect(sent).toEqual(["a"]);
    expect(await backOff.attempt("b", async () => void sent.push("b"), classify)).toBeUndefined();
    expect(sent).toEqual(["a", "b"]);
    expect(tel.counts).toMatchObject({ RefreshRefusedByNode: 1, RefreshBackedOff: 1 });
  });

  it("CONTROL: an unreachable node (not a 503) is tried for every refresh", async () => {
    const backOff = new NodeBackOff(memoryTelemetry().telemetry);
    let calls = 0;
    const down = async () => {
      calls++;
      throw new RpcTransportError("presence.refreshWatchers", "node a unreachable: ECONNREFUSED");
    };
    for (let i = 0; i < 3; i++) {
      const fault = await backOff.attempt("a", down, classify);
      expect(fault).toMatchObject({ kind: "transient" });
      expect(isOverloaded(fault)).toBe(false);
    }
    expect(calls).toBe(3);
  });

  it("owes a follow-up whose causes are the deleting records and the asking events", () => {
    const backOff = new NodeBackOff(memoryTelemetry().telemetry);
    const owed = backOff.followUp(
      {
        node: { id: "a" },
        key: { presentityUri: "sip:x@example.com", event: "dialog" },
        sources: [{ messageId: "changed-1" }],
        causes: new Set(["closed-1"]),
      },
      1_800_000_000_000,
    );
    expect(owed.event).toMatchObject({
      type: "refresh.requested",
      node: "a",
      presentity: "sip:x@example.com",
      event: "dialog",
    });
    expect([...owed.causes].sort()).toEqual(["changed-1", "closed-1"]);
  });
});

describe("the JSON-RPC client reads a 503 as the node's refusal", () => {
  it("throws NodeOverloadedError on HTTP 503, a transport error on 502", async () => {
    const node = { id: "a", rpcUrl: "http://127.0.0.1:1/RPC" } as NodeConfig;
    const answering = (status: number) =>
      new KamailioRpcClient({
        token: async () => "t".repeat(16),
        fetch: async () => new Response('{"error":"refresh budget exceeded, retry later"}', { status }),
      });
    await expect(
      answering(503).refreshWatchers(node, "sip:x@example.com", "presence"),
    ).rejects.toBeInstanceOf(NodeOverloadedError);
    const other = answering(502).refreshWatchers(node, "sip:x@example.com", "presence");
    await expect(other).rejects.toBeInstanceOf(RpcTransportError);
    await expect(other).rejects.not.toBeInstanceOf(NodeOverloadedError);
  });
});
