// The bad-input corpus in-process (issue 18): 10,000+ hostile bodies of every invalid class
// (test/helpers/bad-inputs.ts, the generator the HTTP-ingest corpus uses) straight into the worker's
// SQS handler, 10 records per batch, over in-memory ports; schema-valid hostile values (SQL
// fragments, quotes, backslashes, % and _, unicode the contract allows) through the worker against
// the project's PostgreSQL and MariaDB, deleting exactly the rows they name; and the same corpus
// idea for on-demand requests (the cleanup Lambda's handler) and kwc's command line.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import type { SQSEvent } from "aws-lambda";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import { CleanupRequestSchema } from "#core/cleanup-request.ts";
import { createWorker } from "#core/worker.ts";
import { createCleanupHandler, createWorkerHandler, type FleetRuntime } from "#handlers/functions.ts";
import { parseCommandLine, UsageError } from "../../../cli/args.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import {
  BAD_INPUT_CLASSES,
  type BadInputClass,
  badInputCorpus,
  envelopeReadable,
} from "../../helpers/bad-inputs.ts";
import { testDbConfig } from "../../helpers/dataapi.ts";
import { createTestDb, type Engine, type TestDb } from "../../helpers/db.ts";
import { BOOT, FakeKamailio, nodeConfig } from "../../helpers/fakes.ts";
import { loadRows, rowIds, seededRandom, type WorldRow } from "../../helpers/watcher-world.ts";
import { watcherRow, workerBed } from "../../unit/worker/fakes.ts";
import { ArrayDlq, startDataApi } from "../worker/harness.ts";

const NODE = "node-1";

/** Duplicate keys: the last one wins, so the body is valid exactly when its last-key reading is. */
function validLastWins(body: string): boolean {
  const last = JSON.parse(body) as { v: unknown; events: { type: string; peer: { port: number } }[] };
  return (
    last.v === 1 &&
    last.events.length === 1 &&
    last.events[0]?.type === "connection.closed" &&
    (last.events[0]?.peer.port ?? 0) >= 1
  );
}

describe("bad-input corpus through the worker in-process", () => {
  it("10,000+ inputs of every invalid class: each bad event rejected with a reason, 0 crashes, 0 batch-wide failures, valid neighbours processed", {
    timeout: 120_000,
  }, async () => {
    const inputs = badInputCorpus({ node: NODE, perClass: 1_000, seed: 1818, maxBodyBytes: 256 * 1024 });
    expect(inputs.length).toBeGreaterThanOrEqual(10_000);
    const t = workerBed({ nodes: [nodeConfig(NODE)] });
    const socketInfo = t.fleet.nodes[0]?.socketInfo[0] as string;
    const table = t.fleet.nodes[0]?.watchersTable as string;
    const handler = createWorkerHandler(t.deps);
    const report = new Map<BadInputClass, Record<string, number>>();
    const tally = (cls: BadInputClass, what: string) => {
      const entry = report.get(cls) ?? {};
      entry[what] = (entry[what] ?? 0) + 1;
      report.set(cls, entry);
    };
    let crashes = 0;
    let batchFailures = 0;
    const started = Date.now();
    for (let i = 0; i < inputs.length; i += 10) {
      const batch = inputs
        .slice(i, i + 10)
        .map((input, j) => ({ input, id: `m${i + j}`, body: input.body.toString("utf8") }));
      const rows = t.store.rows(table);
      rows.length = 0;
      const rowOf = new Map<string, number>();
      for (const m of batch) {
        if (!m.input.neighbour) continue;
        const row = watcherRow({
          contact: `sip:u@${m.input.neighbour.ip}:${m.input.neighbour.port};transport=ws`,
          socketInfo,
        });
        rows.push(row);
        rowOf.set(m.id, row.id);
      }
      const dlqBefore = t.dlq.items.length;
      try {
        const response = await handler({
          Records: batch.map((m) => ({
            messageId: m.id,
            body: m.body,
            messageAttributes: { "kwc-node": { stringValue: NODE, dataType: "String" } },
          })),
        } as unknown as SQSEvent);
        batchFailures += response.batchItemFailures.length;
      } catch {
        crashes++;
        continue;
      }
      const rejected = new Set(t.dlq.items.slice(dlqBefore).map((d) => d.sourceMessageId));
      const left = new Set(t.store.rows(table).map((r) => r.id));
      for (const m of batch) {
        const isRejected = rejected.has(m.id);
        const expectRejected = m.input.cls === "duplicate-keys" ? !validLastWins(m.body) : true;
        expect({ cls: m.input.cls, body: m.body.slice(0, 200), rejected: isRejected }).toEqual({
          cls: m.input.cls,
          body: m.body.slice(0, 200),
          rejected: expectRejected,
        });
        tally(m.input.cls, isRejected ? "rejected with a reason" : "processed (valid as the last key says)");
        const row = rowOf.get(m.id);
        if (row !== undefined) {
          const deleted = !left.has(row);
          expect({ body: m.body.slice(0, 200), deleted }).toEqual({
            body: m.body.slice(0, 200),
            deleted: envelopeReadable(m.body),
          });
          tally(
            m.input.cls,
            deleted ? "valid neighbour processed" : "whole envelope refused (neighbour not read)",
          );
        }
      }
    }
    for (const item of t.dlq.items) expect(item.reason).toMatch(/: (expected|names)/);
    expect(t.dlq.items.every((d) => d.reason.length > 0)).toBe(true);
    expect({ crashes, batchFailures }).toEqual({ crashes: 0, batchFailures: 0 });
    expect([...report.keys()].sort()).toEqual([...BAD_INPUT_CLASSES].sort());
    console.log(
      `in-process corpus: ${inputs.length} inputs, ${Date.now() - started} ms, crashes 0, batch-wide failures 0\n${[...report].map(([cls, r]) => `  ${cls}: ${JSON.stringify(r)}`).join("\n")}`,
    );
  });
});

// Schema-valid hostile values: the contract accepts them, SQL must treat them as data.
const HOSTILE_PIECES = [
  "'; DROP TABLE active_watchers; --",
  "' OR '1'='1",
  '"',
  "\\",
  "\\'",
  "%",
  "_",
  "%_%",
  "!",
  "~",
  "`",
  "$1",
  ":name",
  "?",
  "/* x */",
  "<sip:x>",
  "ü",
  "日本",
  "\u00a0",
  "😀",
];

describe.each<Engine>(["postgres", "mysql"])("schema-valid hostile values on %s", (engine) => {
  let db: TestDb;
  let api: { server: DataApiServer; client: RDSDataClient };
  beforeAll(async () => {
    db = await createTestDb(engine, "hostile");
    await db.createNodeTable("aw_h");
    api = await startDataApi();
  });
  afterAll(async () => {
    await api?.server.close();
    await db?.drop();
  });

  it("notify.failed events with hostile dialog keys delete exactly their rows; look-alike keys stay", async () => {
    const r = seededRandom(1819);
    const hostile = () =>
      Array.from({ length: 1 + r.int(3) }, () => r.pick(HOSTILE_PIECES)).join(r.pick(["", "a", "-"]));
    const rows: WorldRow[] = [];
    const targets: WorldRow[] = [];
    for (let i = 0; i < 200; i++) {
      const callId = `${hostile()}@${i}`;
      const base = {
        node: NODE,
        table: "aw_h",
        kind: "ws" as const,
        presentity: `sip:${hostile().replace(/[^a-z0-9]/gi, "") || "p"}@example.com`,
        event: "presence",
        contact: `sip:u${i}@198.51.100.${1 + (i % 250)}:${20_000 + i};transport=ws`,
        socketInfo: "tcp:127.0.0.2:5080",
        version: 3,
      };
      const target: WorldRow = { ...base, id: 2 * i + 1, callId, toTag: hostile(), fromTag: hostile() };
      // A look-alike: wildcards and quotes replaced, or (PostgreSQL) the case changed; MariaDB's unique
      // index is case-insensitive, so there Kamailio itself cannot hold two keys differing only by case.
      const lookAlike = (s: string) => (/[%_'"\\]/.test(s) ? s.replace(/[%_'"\\]/g, "x") : `${s}X`);
      rows.push(target, {
        ...target,
        id: 2 * i + 2,
        callId:
          r.int(2) || engine === "mysql"
            ? lookAlike(callId)
            : callId.toUpperCase() === callId
              ? `${callId}x`
              : callId.toUpperCase(),
      });
      targets.push(target);
    }
    await loadRows(db, ["aw_h"], rows);
    const fleet = {
      version: 1 as const,
      database: testDbConfig(db),
      notifyFailureCodes: [481],
      nodes: [nodeConfig(NODE, { watchersTable: "aw_h" })],
    };
    const tel = memoryTelemetry();
    const dlq = new ArrayDlq();
    const run = createWorker({
      fleet: async () => fleet,
      storeFor: () => new DataApiWatcherStore(api.client, fleet.database),
      kamailio: new FakeKamailio(),
      dlq,
      telemetry: tel.telemetry,
    });
    const at = Math.floor(Date.now() / 1000);
    const events = targets.map((w) => ({
      type: "notify.failed",
      node: NODE,
      boot: BOOT,
      dialog: { callId: w.callId, toTag: w.toTag, fromTag: w.fromTag },
      presentity: w.presentity,
      event: w.event,
      code: 481,
      contact: w.contact,
      version: w.version,
      at,
    }));
    const records = [];
    for (let i = 0; i < events.length; i += 20)
      records.push({
        messageId: `h${i}`,
        body: JSON.stringify({ v: 1, events: events.slice(i, i + 20) }),
        ingestNode: NODE,
      });
    const out = await run(records);
    expect(dlq.items).toEqual([]);
    expect(out.failedMessageIds).toEqual([]);
    expect(await rowIds(db, "aw_h")).toEqual(rows.filter((w) => w.id % 2 === 0).map((w) => w.id));
    expect(out.deleted).toBe(targets.length);
    console.log(
      `hostile values ${engine}: ${targets.length} hostile dialog keys, ${targets.length} rows deleted, ${targets.length} look-alikes kept`,
    );
  });
});

describe("on-demand requests and kwc arguments", () => {
  const runtime = new Proxy({} as FleetRuntime, {
    get() {
      throw new Error("the runtime must not be reached by an invalid request");
    },
  });
  const handler = createCleanupHandler(runtime);
  const validRequests = [
    { scope: "presentity", presentity: "sip:alice@example.com", event: "presence", dryRun: true },
    { scope: "watcher", watcher: "sip:bob@example.com", dryRun: true },
    { scope: "node", node: "node-1", dryRun: true },
    { scope: "dialog", dialog: { callId: "c@x", toTag: "t", fromTag: "f" }, dryRun: true },
    { scope: "expired", dryRun: true },
    { scope: "reconcile", limit: 10, dryRun: true },
  ];
  const REFUSED = ["\u0000", "\u0007", "\u001f", "\u007f", "\ufffe", "\uffff", "\ud800", "\udfff"];

  it("1,000+ hostile requests: invalid ones answered BadRequest naming the field before the fleet is touched; schema-valid hostile values kept as data", async () => {
    const tally: Record<string, Record<string, number>> = {};
    const count = (cls: string, what: string) => {
      tally[cls] ??= {};
      tally[cls][what] = (tally[cls][what] ?? 0) + 1;
    };
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...validRequests),
        fc.constantFrom(
          "wrong-type",
          "missing",
          "oversized",
          "refused-code-point",
          "proto-key",
          "extra-key",
          "hostile-valid",
        ),
        fc.anything(),
        fc.nat(),
        async (base, cls, junk, n) => {
          const req: Record<string, unknown> = structuredClone(base);
          const keys = Object.keys(req).filter((k) => k !== "dryRun");
          const key = keys[n % keys.length] as string;
          const stringKeys = keys.filter((k) => typeof req[k] === "string" && k !== "scope");
          const sKey = stringKeys[n % Math.max(1, stringKeys.length)] ?? "node";
          if (cls === "wrong-type")
            req[key] = typeof req[key] === "string" ? (typeof junk === "string" ? 1 : (junk ?? null)) : "x";
          else if (cls === "missing")
            delete req[
              key === "scope" ? "scope" : (keys.find((k) => k !== "scope" && k !== "limit") ?? "scope")
            ];
          else if (cls === "oversized" && sKey)
            req[sKey] = `${String(req[sKey])}${"a".repeat(300 + (n % 5000))}`;
          else if (cls === "refused-code-point" && sKey)
            req[sKey] = `${String(req[sKey])}${REFUSED[n % REFUSED.length]}`;
          else if (cls === "proto-key") Object.assign(req, JSON.parse(`{"__proto__":{"polluted":1}}`));
          else if (cls === "extra-key") req[`x${n}`] = junk;
          else if (cls === "hostile-valid" && base.scope === "dialog")
            req.dialog = { callId: `'; DROP TABLE x; --%_\\"${n}`, toTag: "%_!~'", fromTag: "a\\b" };
          const schemaOk = CleanupRequestSchema.safeParse(req).success;
          if (!schemaOk) {
            const answer = await handler(req);
            expect(answer.ok).toBe(false);
            if (!answer.ok) {
              expect(answer.error.type).toBe("BadRequest");
              expect(answer.error.message).toMatch(/^invalid request: /);
            }
            count(cls, "BadRequest with the field named");
          } else {
            const parsed = CleanupRequestSchema.parse(req) as Record<string, unknown>;
            for (const k of Object.keys(base)) expect(parsed[k]).toEqual(req[k]);
            count(cls, "valid: values kept as data");
          }
          expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        },
      ),
      { seed: 1820, numRuns: 1_200 },
    );
    // Every malformed class ends as BadRequest only; schema-valid hostile values only as data.
    console.log(`on-demand requests: 1200 inputs ${JSON.stringify(tally)}`);
    for (const cls of ["refused-code-point", "proto-key", "extra-key", "oversized"])
      expect(Object.keys(tally[cls] ?? {})).toEqual(["BadRequest with the field named"]);
    console.log(`on-demand requests: 1200 inputs ${JSON.stringify(tally)}`);
  });

  it("1,000+ hostile kwc command lines: a Command or a UsageError (exit 2), never another exception", () => {
    const VERBS = [
      ["clean"],
      ["watchers", "list"],
      ["reconcile"],
      ["nodes", "check"],
      ["clean", "--dialog"],
      [],
    ];
    const ARG = fc.oneof(
      fc.constantFrom(
        "--node",
        "--presentity",
        "--event",
        "--watcher",
        "--dialog",
        "--to-tag",
        "--from-tag",
        "--limit",
        "--expired",
        "--dry-run",
        "--include-live",
        "--json",
        "--remote",
        "--function",
        "--fleet",
        "--bogus",
        "-h",
        "--",
        "-",
      ),
      fc.string(),
      fc.constantFrom(
        "'; DROP TABLE x; --",
        "%_",
        "sip:%@x",
        "-1",
        "0",
        "1e9",
        "NaN",
        "\u0000",
        "\uffff",
        "--limit=-5",
        "--node=",
        "__proto__",
      ),
    );
    const tally: Record<string, number> = {};
    fc.assert(
      fc.property(fc.constantFrom(...VERBS), fc.array(ARG, { maxLength: 8 }), (verb, args) => {
        try {
          const cmd = parseCommandLine([...verb, ...args], {});
          tally[`command ${cmd.kind}`] = (tally[`command ${cmd.kind}`] ?? 0) + 1;
        } catch (error) {
          expect(error).toBeInstanceOf(UsageError);
          expect((error as Error).message.length).toBeGreaterThan(0);
          tally["UsageError (exit 2)"] = (tally["UsageError (exit 2)"] ?? 0) + 1;
        }
      }),
      { seed: 1821, numRuns: 1_500 },
    );
    console.log(`kwc arguments: 1500 command lines ${JSON.stringify(tally)}`);
  });
});
