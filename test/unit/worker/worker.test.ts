// The worker use case and handler with in-memory ports: planning, liveness guard, delete order,
// partial-failure mapping, DLQ, fan-out, refresh classification and the reconcile-once path.
import type { SQSEvent } from "aws-lambda";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  classifyRpcError,
  classifyStoreError,
  isResponseTooLarge,
  RpcFaultError,
  RpcTransportError,
} from "#core/classify.ts";
import { factsFromConfig, type NodeConfig } from "#core/fleet.ts";
import { planBatch } from "#core/plan.ts";
import { createWorker } from "#core/worker.ts";
import { createWorkerHandler } from "#handlers/functions.ts";
import { actBeforeFirst } from "../../helpers/fakes.ts";
import {
  BOOT,
  changed,
  closed,
  envelope,
  fleetOf,
  nodeConfig,
  notifyFailed,
  watcherRow,
  workerBed,
} from "./fakes.ts";

const setup = (nodes?: NodeConfig[]) => workerBed(nodes ? { nodes } : {});

const n1 = nodeConfig("node-1");
const si1 = n1.socketInfo[0] as string;

describe("planBatch", () => {
  it("groups by node, coalesces duplicates, ignores non-ending codes, separates unknown nodes", () => {
    const fleet = fleetOf([n1, nodeConfig("node-2")]);
    const ev = (
      i: number,
      e: ReturnType<typeof closed> | ReturnType<typeof notifyFailed> | ReturnType<typeof changed>,
    ) => ({ messageId: `m${i}`, index: 0, event: e }) as never;
    const plan = planBatch(
      [
        ev(1, closed("node-1", "1.2.3.4", 5)),
        ev(2, closed("node-1", "1.2.3.4", 5)),
        ev(3, closed("node-2", "1.2.3.4", 5)),
        ev(4, notifyFailed("node-1", { callId: "C", toTag: "t", fromTag: "f" }, 404)),
        ev(5, notifyFailed("node-1", { callId: "c", toTag: "t", fromTag: "f" }, 404)),
        ev(6, notifyFailed("node-1", { callId: "c", toTag: "t", fromTag: "f" }, 486)),
        ev(7, closed("node-9", "1.2.3.4", 5)),
        ev(8, changed("node-1")),
        ev(9, changed("node-1")),
      ],
      fleet,
    );
    expect(plan.nodes.get("node-1")?.peers.size).toBe(1);
    expect([...(plan.nodes.get("node-1")?.peers.values() ?? [])][0]?.sources.map((s) => s.messageId)).toEqual(
      ["m1", "m2"],
    );
    expect(plan.nodes.get("node-1")?.dialogs.size).toBe(2); // keys differing in case are two dialogs
    expect(plan.nodes.get("node-2")?.peers.size).toBe(1);
    expect(plan.ignored.map((i) => i.source.messageId)).toEqual(["m6"]);
    expect(plan.unknownNode.map((s) => s.messageId)).toEqual(["m7"]);
    expect(plan.fanout.size).toBe(1);
    expect([...plan.fanout.values()][0]?.sources).toHaveLength(2);
  });
});

describe("worker", () => {
  it("deletes the dead peer's rows, keeps a live peer's rows and other nodes' rows, refreshes once", async () => {
    const t = setup();
    const rows = t.store.rows(n1.watchersTable);
    const dead = watcherRow({ contact: "sip:a@1.2.3.4:5491;transport=ws", socketInfo: si1 });
    const deadToo = watcherRow({
      contact: "<sip:b@1.2.3.4:5491;transport=wss>",
      socketInfo: si1,
      presentityUri: "sip:carol@example.com",
    });
    const prefix = watcherRow({ contact: "sip:c@1.2.3.4:54914;transport=ws", socketInfo: si1 });
    // Same address and port, but a UDP contact: a WS peer's close never deletes it.
    const udp = watcherRow({ contact: "sip:u@1.2.3.4:5491", socketInfo: si1 });
    const live = watcherRow({ contact: "sip:d@1.2.3.4:6000;transport=ws", socketInfo: si1 });
    const otherSocket = watcherRow({
      contact: "sip:e@1.2.3.4:5491;transport=ws",
      socketInfo: "tcp:9.9.9.9:5080",
    });
    rows.push(dead, deadToo, prefix, udp, live, otherSocket);
    const n2Row = watcherRow({
      contact: "sip:f@1.2.3.4:5491;transport=ws",
      socketInfo: "tcp:127.0.0.3:5080",
    });
    t.store.rows("aw_node_2").push(n2Row);
    t.kamailio.live.set("node-1", [{ ip: "1.2.3.4", port: 6000 }]);

    const result = await t.run([
      {
        messageId: "m1",
        body: envelope(closed("node-1", "1.2.3.4", 5491), closed("node-1", "1.2.3.4", 6000)),
      },
      { messageId: "m2", body: envelope(closed("node-1", "1.2.3.4", 5491)) },
    ]);
    expect(result.failedMessageIds).toEqual([]);
    expect(t.store.rows(n1.watchersTable).map((r) => r.id)).toEqual([
      prefix.id,
      udp.id,
      live.id,
      otherSocket.id,
    ]);
    expect(t.store.rows("aw_node_2")).toHaveLength(1);
    expect(result.guardKeeps).toBe(1);
    expect(t.tel.counts.GuardKeepsNoPeer).toBe(1);
    expect(t.kamailio.tcpListCalls).toEqual(["node-1"]);
    expect(t.kamailio.refreshCalls).toEqual([
      { node: "node-1", presentityUri: "sip:alice@example.com", event: "presence" },
      { node: "node-1", presentityUri: "sip:carol@example.com", event: "presence" },
    ]);
    expect(t.tel.audits.map((a) => [a.rowId, a.reason, a.peer, a.sourceMessageId])).toEqual([
      [dead.id, "connection.closed", "1.2.3.4:5491", "m1"],
      [deadToo.id, "connection.closed", "1.2.3.4:5491", "m1"],
    ]);
    expect(t.store.calls).toEqual(["select:node-1", "delete:node-1"]);
  });

  it("control: without the event nothing is deleted", async () => {
    const t = setup();
    t.store
      .rows(n1.watchersTable)
      .push(watcherRow({ contact: "sip:a@1.2.3.4:5491;transport=ws", socketInfo: si1 }));
    await t.run([{ messageId: "m1", body: envelope(changed("node-2", "sip:nobody@example.com")) }]);
    expect(t.store.rows(n1.watchersTable)).toHaveLength(1);
  });

  it("notify.failed deletes exactly its dialog, byte-exact", async () => {
    const t = setup();
    const row = watcherRow({
      contact: "sip:a@1.2.3.4:5;transport=ws",
      socketInfo: si1,
      callId: `a%_'"\\B`,
      toTag: "T",
      fromTag: "f",
    });
    t.store.rows(n1.watchersTable).push(row);
    await t.run([
      {
        messageId: "m1",
        body: envelope(notifyFailed("node-1", { callId: `A%_'"\\B`, toTag: "T", fromTag: "f" })),
      },
    ]);
    expect(t.store.rows(n1.watchersTable)).toHaveLength(1);
    await t.run([
      {
        messageId: "m2",
        body: envelope(notifyFailed("node-1", { callId: `a%_'"\\B`, toTag: "T", fromTag: "f" }, 481)),
      },
    ]);
    expect(t.store.rows(n1.watchersTable)).toHaveLength(0);
    expect(t.tel.audits[0]).toMatchObject({ reason: "notify.failed", notifyCode: 481, rowId: row.id });
  });

  it("a row rewritten between the read and the delete stays (delete by id AND predicate)", async () => {
    const t = setup();
    const row = watcherRow({ contact: "sip:a@1.2.3.4:5491;transport=ws", socketInfo: si1 });
    const control = watcherRow({ contact: "sip:b@1.2.3.4:5491;transport=ws", socketInfo: si1 });
    t.store.rows(n1.watchersTable).push(row, control);
    const rewritten = actBeforeFirst(t.store, "deleteWatchers", () => {
      const r = t.store.rows(n1.watchersTable).find((x) => x.id === row.id);
      if (r) r.contact = "sip:a@1.2.3.4:7777;transport=ws"; // the re-SUBSCRIBE over a new connection
    });
    await createWorker({ ...t.deps, storeFor: () => rewritten })([
      { messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5491)) },
    ]);
    expect(t.store.rows(n1.watchersTable).map((r) => r.id)).toEqual([row.id]);
  });

  it("maps transient faults to exactly the records that needed the failing node", async () => {
    const t = setup();
    t.store
      .rows(n1.watchersTable)
      .push(watcherRow({ contact: "sip:a@1.2.3.4:5;transport=ws", socketInfo: si1 }));
    t.store
      .rows("aw_node_2")
      .push(watcherRow({ contact: "sip:a@1.2.3.4:5;transport=ws", socketInfo: "tcp:127.0.0.3:5080" }));
    t.kamailio.tcpListFailures.push(new RpcTransportError("core.tcp_list", "ECONNREFUSED"));
    const handler = createWorkerHandler(t.deps);
    const event = {
      Records: [
        { messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5)) },
        { messageId: "m2", body: envelope(closed("node-2", "1.2.3.4", 5)) },
        { messageId: "m3", body: "not json" },
      ],
    } as unknown as SQSEvent;
    const first = await handler(event);
    const failedNode = t.kamailio.tcpListCalls[0];
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: failedNode === "node-1" ? "m1" : "m2" }]);
    expect(t.dlq.items.map((i) => i.sourceMessageId)).toEqual(["m3"]);
    const second = await handler({ Records: [event.Records[failedNode === "node-1" ? 0 : 1]] } as SQSEvent);
    expect(second.batchItemFailures).toEqual([]);
    expect(t.store.rows(n1.watchersTable)).toHaveLength(0);
    expect(t.store.rows("aw_node_2")).toHaveLength(0);
  });

  it("Data API transient errors retry the record; permanent ones go to the DLQ", async () => {
    const t = setup();
    t.store.failNext.push(Object.assign(new Error("resuming"), { name: "DatabaseResumingException" }));
    const r1 = await t.run([{ messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5)) }]);
    expect(r1.failedMessageIds).toEqual(["m1"]);
    t.store.failNext.push(Object.assign(new Error("syntax"), { name: "DatabaseErrorException" }));
    const r2 = await t.run([{ messageId: "m2", body: envelope(closed("node-1", "1.2.3.4", 5)) }]);
    expect(r2.failedMessageIds).toEqual([]);
    expect(t.dlq.items.map((i) => i.sourceMessageId)).toEqual(["m2"]);
  });

  it("invalid events go to the DLQ once with their reason while valid ones in the envelope are processed", async () => {
    const t = setup();
    t.store
      .rows(n1.watchersTable)
      .push(watcherRow({ contact: "sip:a@1.2.3.4:5;transport=ws", socketInfo: si1 }));
    const bad = { ...closed("node-1", "1.2.3.4", 5), peer: { ip: "1.2.3.4", port: 70000 } };
    const r = await t.run([
      { messageId: "m1", body: envelope(bad, closed("node-1", "1.2.3.4", 5), closed("ghost", "1.2.3.4", 5)) },
    ]);
    expect(r.failedMessageIds).toEqual([]);
    expect(t.store.rows(n1.watchersTable)).toHaveLength(0);
    expect(t.dlq.items.map((i) => [i.eventIndex, i.reason.split(":")[0]])).toEqual([
      [0, "events[0].peer.port"],
      [2, 'node "ghost" is not in the fleet config (redrive once it is added)'.split(":")[0]],
    ]);
    expect(t.tel.counts.EventsRejected).toBe(1);
    expect(t.tel.counts.EventsUnknownNode).toBe(1);
  });

  it("a DLQ failure retries the records whose items were not sent", async () => {
    const t = setup();
    t.dlq.failures.push(new Error("sqs down"));
    const r = await t.run([
      { messageId: "m1", body: "{" },
      { messageId: "m2", body: envelope(closed("node-1", "1.2.3.4", 5)) },
    ]);
    expect(r.failedMessageIds).toEqual(["m1"]);
  });

  it("refuses cleanup on nodes whose status says subs_db_mode != 3 (status wins over config)", async () => {
    const t = setup();
    t.kamailio.statusOf.set("node-1", { boot: BOOT, version: "5.6.3", subsDbMode: 2, notifierProcesses: 0 });
    t.store
      .rows(n1.watchersTable)
      .push(watcherRow({ contact: "sip:a@1.2.3.4:5;transport=ws", socketInfo: si1 }));
    await t.run([{ messageId: "m1", body: envelope(closed("node-1", "1.2.3.4", 5)) }]);
    expect(t.store.rows(n1.watchersTable)).toHaveLength(1);
    expect(t.dlq.items[0]?.reason).toMatch(/subs_db_mode=2 \(from its status\).*refused/);
  });

  it("fans a presence change out to every other node with watchers, once per node", async () => {
    const t = setup([nodeConfig("node-1"), nodeConfig("node-2"), nodeConfig("node-3")]);
    t.store
      .rows("aw_node_1")
      .push(watcherRow({ contact: "sip:a@1.1.1.1:1", socketInfo: "tcp:127.0.0.2:5080" }));
    t.store
      .rows("aw_node_2")
      .push(watcherRow({ contact: "sip:a@1.1.1.1:1", socketInfo: "tcp:127.0.0.3:5080" }));
    t.store.rows("aw_node_3").push(
      watcherRow({
        contact: "sip:a@1.1.1.1:1",
        socketInfo: "tcp:127.0.0.4:5080",
        presentityUri: "sip:other@example.com",
      }),
    );
    const r = await t.run([
      { messageId: "m1", body: envelope(changed("node-1"), changed("node-1")) },
      { messageId: "m2", body: envelope(changed("node-1")) },
    ]);
    expect(r.failedMessageIds).toEqual([]);
    expect(t.kamailio.refreshCalls).toEqual([
      { node: "node-2", presentityUri: "sip:alice@example.com", event: "presence" },
    ]);
    // Kamailio down for the fan-out → the presence.changed records are retried.
    t.kamailio.refreshFailures.push(new RpcTransportError("presence.refreshWatchers", "ECONNREFUSED"));
    const r2 = await t.run([{ messageId: "m3", body: envelope(changed("node-1")) }]);
    expect(r2.failedMessageIds).toEqual(["m3"]);
  });

  it("a refresh 500 reconciles the presentity once, refreshes once more, then reports degraded", async () => {
    const t = setup();
    const stale = watcherRow({
      contact: "sip:a@1.2.3.4:5;transport=ws",
      socketInfo: si1,
      presentityUri: "sip:bob@example.com",
    });
    const alive = watcherRow({
      contact: "sip:b@1.2.3.4:6;transport=ws",
      socketInfo: si1,
      presentityUri: "sip:bob@example.com",
    });
    // Not a WebSocket watcher (UDP, no connection to look for): only its expiry can make it stale.
    const udp = watcherRow({
      contact: "sip:c@1.2.3.7:5060",
      socketInfo: si1,
      presentityUri: "sip:bob@example.com",
    });
    t.store.rows(n1.watchersTable).push(stale, alive, udp);
    t.store.rows("aw_node_2").push(
      watcherRow({
        contact: "sip:z@9.9.9.9:9",
        socketInfo: "tcp:127.0.0.3:5080",
        presentityUri: "sip:bob@example.com",
      }),
    );
    t.kamailio.live.set("node-1", [{ ip: "1.2.3.4", port: 6 }]);
    const fault = () => new RpcFaultError("presence.refreshWatchers", 500, "Execution failed", 500);
    t.kamailio.refreshFailures.push(fault());
    const r = await t.run([{ messageId: "m1", body: envelope(changed("node-2", "sip:bob@example.com")) }]);
    expect(r.refreshes).toEqual([
      { node: "node-1", presentityUri: "sip:bob@example.com", event: "presence", outcome: "ok" },
    ]);
    expect(t.store.rows(n1.watchersTable).map((x) => x.id)).toEqual([alive.id, udp.id]);
    expect(t.tel.audits.map((a) => [a.reason, a.rowId])).toEqual([["reconcile.refresh-failed", stale.id]]);
    // Twice in a row: degraded, never a loop (2 refresh calls only).
    t.kamailio.refreshCalls = [];
    t.kamailio.refreshFailures.push(fault(), fault(), fault());
    const r2 = await t.run([{ messageId: "m2", body: envelope(changed("node-2", "sip:bob@example.com")) }]);
    expect(r2.refreshes.map((x) => x.outcome)).toEqual(["degraded"]);
    expect(t.kamailio.refreshCalls).toHaveLength(2);
    expect(r2.failedMessageIds).toEqual([]);
  });

  it("the end state does not depend on duplicates or order (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.shuffledSubarray([0, 1, 2, 3, 4, 5], { minLength: 6, maxLength: 6 }),
        fc.array(fc.nat(5), { maxLength: 4 }),
        async (order, dups) => {
          const t = setup();
          const rows = t.store.rows(n1.watchersTable);
          for (const port of [5, 6, 7, 8])
            rows.push(
              watcherRow({ id: port, contact: `sip:u@1.2.3.4:${port};transport=ws`, socketInfo: si1 }),
            );
          rows.push(
            watcherRow({
              id: 9,
              contact: "sip:u@1.2.3.4:9",
              socketInfo: si1,
              callId: "K",
              toTag: "t",
              fromTag: "f",
            }),
          );
          t.kamailio.live.set("node-1", [{ ip: "1.2.3.4", port: 7 }]);
          const evs = [
            closed("node-1", "1.2.3.4", 5),
            closed("node-1", "1.2.3.4", 6),
            closed("node-1", "1.2.3.4", 7),
            notifyFailed("node-1", { callId: "K", toTag: "t", fromTag: "f" }),
            notifyFailed("node-1", { callId: "k", toTag: "t", fromTag: "f" }),
            changed("node-1"),
          ];
          const sequence = [...order, ...dups].map((i) => evs[i]);
          for (const [i, e] of sequence.entries()) await t.run([{ messageId: `m${i}`, body: envelope(e) }]);
          expect(
            t.store
              .rows(n1.watchersTable)
              .map((r) => r.id)
              .sort(),
          ).toEqual([7, 8]);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe("classifyRpcError", () => {
  const facts = (version: string, notifier: number) => ({
    ...factsFromConfig(nodeConfig("node-1")),
    kamailioVersion: version,
    notifierProcesses: notifier,
  });
  const fault = new RpcFaultError("presence.refreshWatchers", 500, "Execution failed", 500);
  it.each([
    ["5.6.3", 0, "postgres", /GH #4118 not fixed.*skipped/],
    ["5.8.5", 0, "mysql", /GH #4118 not fixed/],
    ["5.8.6", 0, "postgres", /fixed\): no NOTIFY went out/],
    ["6.0.1", 0, "mysql", /fixed\): no NOTIFY went out/],
    ["5.7.0", 1, "postgres", /broken from 5.7.0/],
    ["6.0.1", 1, "postgres", /broken from 5.7.0/],
    ["5.6.3", 1, "postgres", /notifier mode on 5.6.3/],
    ["6.0.1", 1, "mysql", /notifier mode on 6.0.1/],
  ] as const)("refresh 500 on %s notifier=%d %s", (version, notifier, engine, meaning) => {
    const c = classifyRpcError(fault, "presence.refreshWatchers", facts(version, notifier), engine);
    expect(c.kind).toBe("refresh-fault");
    expect(c.kind === "refresh-fault" && c.meaning).toMatch(meaning);
  });
  it("transport → transient; other faults → permanent", () => {
    const f = facts("5.6.3", 0);
    expect(
      classifyRpcError(new RpcTransportError("x", "timed out"), "core.tcp_list", f, "postgres").kind,
    ).toBe("transient");
    expect(
      classifyRpcError(
        new RpcFaultError("core.tcp_list", 500, "Method Not Found", 500),
        "core.tcp_list",
        f,
        "postgres",
      ).kind,
    ).toBe("permanent");
    expect(
      classifyRpcError(
        new RpcFaultError("presence.refreshWatchers", 500, "Not enough parameters", 500),
        "presence.refreshWatchers",
        f,
        "postgres",
      ).kind,
    ).toBe("permanent");
    expect(
      classifyRpcError(Object.assign(new Error("x"), { code: "ECONNRESET" }), "m", f, "postgres").kind,
    ).toBe("transient");
  });
});

describe("Data API error classification (by status class and retryability, not by guessed names)", () => {
  const sdkError = (name: string, status?: number, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(`${name} message`), {
      name,
      ...(status === undefined
        ? {}
        : { $fault: status >= 500 ? "server" : "client", $metadata: { httpStatusCode: status } }),
      ...extra,
    });
  it.each([
    ["DatabaseResumingException", 400, "transient"],
    ["StatementTimeoutException", 400, "transient"],
    ["ServiceUnavailableError", 503, "transient"],
    ["DatabaseUnavailableException", 504, "transient"],
    ["SomeFutureServerException", 500, "transient"],
    ["ThrottledByAnyName", 429, "transient"],
    ["DatabaseErrorException", 400, "permanent"],
    ["BadRequestException", 400, "permanent"],
    ["AccessDeniedException", 403, "permanent"],
    ["DatabaseNotFoundException", 404, "permanent"],
  ] as const)("%s (HTTP %d) → %s", (name, status, kind) => {
    expect(classifyStoreError(sdkError(name, status)).kind).toBe(kind);
  });
  it("no answer at all (network codes, client-side timeouts) and SDK-retryable errors are transient", () => {
    expect(classifyStoreError(Object.assign(new Error("reset"), { code: "ECONNRESET" })).kind).toBe(
      "transient",
    );
    expect(classifyStoreError(new Error("x", { cause: { code: "ECONNREFUSED" } })).kind).toBe("transient");
    expect(classifyStoreError(sdkError("TimeoutError")).kind).toBe("transient");
    expect(classifyStoreError(sdkError("Odd", 400, { $retryable: { throttling: true } })).kind).toBe(
      "transient",
    );
    expect(classifyStoreError(new Error("plain bug")).kind).toBe("permanent");
  });
  it("a statement that lost a race with another session (deadlock, serialization, lock wait) is transient", () => {
    const dbError = (message: string) =>
      Object.assign(new Error(message), {
        name: "DatabaseErrorException",
        $fault: "client",
        $metadata: { httpStatusCode: 400 },
      });
    for (const message of [
      "ERROR: deadlock detected; SQLState: 40P01",
      "ERROR: could not serialize access due to concurrent update; SQLState: 40001",
      "ERROR: could not obtain lock on row; SQLState: 55P03",
      "Database error code: 1213. Message: Deadlock found when trying to get lock; try restarting transaction",
      "Database error code: 1205. Message: Lock wait timeout exceeded",
    ])
      expect(classifyStoreError(dbError(message)).kind, message).toBe("transient");
    // control: the same exception for a permission, a missing table or a data error stays permanent
    for (const message of [
      "ERROR: permission denied for table aw; SQLState: 42501",
      'ERROR: relation "aw" does not exist; SQLState: 42P01',
      'ERROR: invalid byte sequence for encoding "UTF8": 0x00; SQLState: 22021',
      "Database error code: 1146. Message: Table 'kamailio.aw' doesn't exist",
    ])
      expect(classifyStoreError(dbError(message)).kind, message).toBe("permanent");
  });
  it("a too-large response is a client fault saying so, whatever the exception's name", () => {
    const msg = "Database returned more than the allowed response size limit";
    for (const name of ["BadRequestException", "UnsupportedResultException"])
      expect(isResponseTooLarge(Object.assign(sdkError(name, 400), { message: msg }))).toBe(true);
    expect(
      isResponseTooLarge(Object.assign(sdkError("InternalServerErrorException", 500), { message: msg })),
    ).toBe(false);
    expect(isResponseTooLarge(sdkError("BadRequestException", 400))).toBe(false);
  });
});
