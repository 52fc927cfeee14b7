// Per-node ingest identity, the worker's half: the pure check, the SQS attribute reader, and the
// intake hook through the worker over in-memory ports (the forged event deletes nothing, its
// honest neighbour in the same envelope does; each forgery is counted and audited, never DLQ'd).
import type { SQSEvent } from "aws-lambda";
import { describe, expect, it } from "vitest";
import {
  checkIngestIdentity,
  IDENTITY_AUDIT_MESSAGE,
  INGEST_NODE_ATTRIBUTE,
  ingestNodeOf,
} from "#core/ingest-identity.ts";
import { createWorkerHandler } from "#handlers/functions.ts";
import { changed, closed, envelope, watcherRow, workerBed } from "./worker/fakes.ts";

describe("checkIngestIdentity", () => {
  it.each([
    ["the sender's own event", "ws-a", "ws-a", { accept: true, authenticated: true }],
    [
      "no attribute (follow-up, redrive, older ingest)",
      undefined,
      "ws-a",
      { accept: true, authenticated: false },
    ],
  ] as const)("accepts %s", (_name, attribute, node, verdict) => {
    expect(checkIngestIdentity(attribute, { node })).toEqual(verdict);
  });

  it.each([
    ["another node's event", "ws-a", "ws-b", 'sent with node ws-a\'s key but names node "ws-b"'],
    ["a case variant of the sender", "ws-a", "WS-A", 'names node "WS-A"'],
    ["an empty attribute", "", "ws-a", "not a node id"],
    ["an attribute that is no node id", "ws a;drop", "ws a;drop", "not a node id"],
  ])("refuses %s", (_name, attribute, node, reason) => {
    const verdict = checkIngestIdentity(attribute, { node });
    expect(verdict.accept).toBe(false);
    expect(verdict.accept === false && verdict.reason).toContain(reason);
  });
});

describe("ingestNodeOf", () => {
  it("reads the kwc-node string attribute of a Lambda SQS record", () => {
    expect(ingestNodeOf({ [INGEST_NODE_ATTRIBUTE]: { stringValue: "ws-a" } })).toBe("ws-a");
    expect(ingestNodeOf({ other: { stringValue: "ws-a" } })).toBeUndefined();
    expect(ingestNodeOf(undefined)).toBeUndefined();
  });
});

describe("the worker's intake", () => {
  const attribute = (node: string) => ({
    [INGEST_NODE_ATTRIBUTE]: { stringValue: node, dataType: "String" },
  });

  function bedWithRows() {
    const t = workerBed();
    const [n1, n2] = t.fleet.nodes as [(typeof t.fleet.nodes)[0], (typeof t.fleet.nodes)[0]];
    const row = (node: typeof n1, port: number) =>
      watcherRow({
        contact: `sip:u@10.0.0.9:${port};transport=ws`,
        socketInfo: node.socketInfo[0] as string,
      });
    t.store.rows(n1.watchersTable).push(row(n1, 1111));
    t.store.rows(n2.watchersTable).push(row(n2, 2222));
    return { t, n1, n2 };
  }

  it("ignores, counts and audits events naming another node; the sender's own events are processed", async () => {
    const { t, n1, n2 } = bedWithRows();
    const handler = createWorkerHandler(t.deps);
    const forged = closed("node-2", "10.0.0.9", 2222);
    const result = await handler({
      Records: [
        {
          messageId: "m1",
          body: envelope(closed("node-1", "10.0.0.9", 1111), forged, changed("node-2")),
          messageAttributes: attribute("node-1"),
        },
      ],
    } as unknown as SQSEvent);
    expect(result.batchItemFailures).toEqual([]);
    expect(t.store.rows(n1.watchersTable)).toHaveLength(0); // node-1's own event: row deleted
    expect(t.store.rows(n2.watchersTable)).toHaveLength(1); // forged for node-2: untouched
    expect(t.kamailio.refreshCalls.filter((c) => c.node === "node-2")).toEqual([]); // no fan-out forged either
    expect(t.tel.counts.EventsNodeMismatch).toBe(2);
    expect(t.dlq.items).toEqual([]);
    const audits = t.tel.logs.filter((l) => l.message === IDENTITY_AUDIT_MESSAGE);
    expect(audits.map((a) => a.data?.identity)).toEqual([
      expect.objectContaining({
        authenticatedNode: "node-1",
        claimedNode: "node-2",
        eventIndex: 1,
        sourceMessageId: "m1",
        event: forged,
      }),
      expect.objectContaining({ authenticatedNode: "node-1", claimedNode: "node-2", eventIndex: 2 }),
    ]);
    expect(n2.id).toBe("node-2");
  });

  it("control: the same event with node-2's own identity, or with no attribute, deletes node-2's row", async () => {
    for (const messageAttributes of [attribute("node-2"), {}]) {
      const { t, n2 } = bedWithRows();
      const handler = createWorkerHandler(t.deps);
      await handler({
        Records: [{ messageId: "m1", body: envelope(closed("node-2", "10.0.0.9", 2222)), messageAttributes }],
      } as unknown as SQSEvent);
      expect(t.store.rows(n2.watchersTable)).toHaveLength(0);
      expect(t.tel.counts.EventsNodeMismatch ?? 0).toBe(0);
    }
  });
});
