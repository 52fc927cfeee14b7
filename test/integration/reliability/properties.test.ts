// Property tests of plan and delete against the project's real databases (issue 18), seeded and
// bounded (fast-check): generated tables of rows (both contact styles and `auto`, WS and non-WS
// contacts, rows naming no peer, rows of another socket, IPv4 and IPv6 in their written forms,
// ports that are prefixes of one another) and sets of live peers. Through the worker (a close
// event for every peer of the pool, live or dead, duplicated and shuffled) and through the
// reconcile sweep (no events at all): no live row, no non-WS row, no row naming no peer and no row
// of another socket is ever deleted; every WS row of a dead peer of the node is.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import { DataApiReconcileStore } from "#adapters/reconcile-store.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import { CleanupRequestSchema } from "#core/cleanup-request.ts";
import type { ContactStyle, FleetConfig } from "#core/fleet.ts";
import { runCleanup } from "#core/reconcile-sweep.ts";
import { createWorker } from "#core/worker.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { testDbConfig } from "../../helpers/dataapi.ts";
import { createTestDb, type Engine, type TestDb } from "../../helpers/db.ts";
import { BOOT, FakeKamailio, nodeConfig } from "../../helpers/fakes.ts";
import {
  contactFor,
  FOREIGN_SOCKET,
  keyOf,
  loadRows,
  type Peer,
  type RowKind,
  rowIds,
  seededRandom,
  type WorldRow,
} from "../../helpers/watcher-world.ts";
import { ArrayDlq, startDataApi } from "../worker/harness.ts";

const TABLE = "aw_prop";
const RUNS = 60;

interface Case {
  style: ContactStyle;
  peers: (Peer & { live: boolean })[];
  rows: WorldRow[];
}

const peerArb = fc.record({
  v6: fc.boolean(),
  host: fc.integer({ min: 1, max: 254 }),
  port: fc.integer({ min: 1, max: 6553 }),
  live: fc.boolean(),
  expanded: fc.boolean(),
});

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    style: fc.constantFrom<ContactStyle>("nated", "alias", "auto"),
    peers: fc.uniqueArray(peerArb, {
      minLength: 1,
      maxLength: 6,
      selector: (p) => `${p.v6} ${p.host} ${p.port}`,
    }),
    rows: fc.array(
      fc.record({
        kind: fc.constantFrom<RowKind>("ws", "ws", "ws", "non-ws", "no-peer", "foreign-socket"),
        peer: fc.nat(),
        variant: fc.nat(),
      }),
      { minLength: 5, maxLength: 40, size: "max" },
    ),
  })
  .map(({ style, peers, rows }) => {
    // Each peer also has a sibling whose port has this one's as a prefix (5491 and 54914).
    const pool = peers.flatMap((p) => {
      const ip = p.v6
        ? p.expanded
          ? `2001:db8:0:0:0:0:0:${p.host.toString(16)}`
          : `2001:db8::${p.host.toString(16)}`
        : `203.0.113.${p.host}`;
      return [
        { ip, port: p.port, live: p.live },
        { ip, port: p.port * 10 + 4, live: !p.live },
      ];
    });
    const worldRows = rows.map((r, i): WorldRow => {
      const peer = pool[r.peer % pool.length] as Peer & { live: boolean };
      const rnd = seededRandom(r.variant);
      const rowStyle: ContactStyle = style === "auto" ? rnd.pick(["nated", "alias"] as const) : style;
      return {
        id: i + 1,
        node: "n1",
        table: TABLE,
        kind: r.kind,
        ...(r.kind === "no-peer" ? {} : { peer: { ip: peer.ip, port: peer.port } }),
        presentity: `sip:p${i % 5}@example.com`,
        event: "presence",
        callId: `c${i}`,
        toTag: `t${i}`,
        fromTag: `f${i}`,
        contact: contactFor(r.kind, rowStyle, `u${i}`, peer, rnd),
        socketInfo: r.kind === "foreign-socket" ? FOREIGN_SOCKET : "tcp:127.0.0.2:5080",
        version: 1,
      };
    });
    return { style, peers: pool, rows: worldRows };
  });

/** The oracle, by the generator's own labels: only the node's WS rows of dead peers go. */
function mustGo(c: Case): Set<number> {
  const dead = new Set(c.peers.filter((p) => !p.live).map(keyOf));
  return new Set(c.rows.filter((w) => w.kind === "ws" && w.peer && dead.has(keyOf(w.peer))).map((w) => w.id));
}

describe.each<Engine>(["postgres", "mysql"])("plan and delete properties on %s", (engine) => {
  let db: TestDb;
  let api: { server: DataApiServer; client: RDSDataClient };
  beforeAll(async () => {
    db = await createTestDb(engine, "props");
    await db.createNodeTable(TABLE);
    api = await startDataApi();
  });
  afterAll(async () => {
    await api?.server.close();
    await db?.drop();
  });

  const setUp = (c: Case) => {
    const node = nodeConfig("n1", { watchersTable: TABLE, contactStyle: c.style });
    const fleet: FleetConfig = {
      version: 1,
      database: testDbConfig(db),
      notifyFailureCodes: [408, 481],
      nodes: [node],
    };
    const kamailio = new FakeKamailio();
    kamailio.live.set(
      "n1",
      c.peers.filter((p) => p.live).map(({ ip, port }) => ({ ip, port })),
    );
    return { node, fleet, kamailio };
  };

  const check = async (c: Case, deletedIds: number[]) => {
    const left = new Set(await rowIds(db, TABLE));
    const gone = c.rows.filter((w) => !left.has(w.id)).map((w) => w.id);
    expect(gone.sort((a, b) => a - b)).toEqual([...mustGo(c)].sort((a, b) => a - b));
    expect(deletedIds.sort((a, b) => a - b)).toEqual(gone);
  };

  it(`worker: a close event for every peer deletes exactly the node's dead WS rows (${RUNS} seeded cases)`, async () => {
    let rows = 0;
    let deleted = 0;
    await fc.assert(
      fc.asyncProperty(caseArb, fc.integer(), async (c, shuffleSeed) => {
        await loadRows(db, [TABLE], c.rows);
        const { fleet, kamailio } = setUp(c);
        const tel = memoryTelemetry();
        const dlq = new ArrayDlq();
        const run = createWorker({
          fleet: async () => fleet,
          storeFor: () => new DataApiWatcherStore(api.client, fleet.database),
          kamailio,
          dlq,
          telemetry: tel.telemetry,
        });
        const at = Math.floor(Date.now() / 1000);
        const events = seededRandom(shuffleSeed).shuffle(
          c.peers.flatMap((p) => {
            const e = {
              type: "connection.closed",
              node: "n1",
              boot: BOOT,
              peer: { ip: p.ip, port: p.port },
              transport: "ws",
              cause: "tcp:reset",
              at,
            };
            return [e, { ...e, cause: "websocket:closed" }];
          }),
        );
        const out = await run([
          { messageId: "m1", body: JSON.stringify({ v: 1, events }), ingestNode: "n1" },
        ]);
        expect(out.failedMessageIds).toEqual([]);
        expect(dlq.items).toEqual([]);
        await check(
          c,
          tel.audits.map((a) => a.rowId),
        );
        rows += c.rows.length;
        deleted += out.deleted;
      }),
      { seed: 18, numRuns: RUNS, endOnFailure: true },
    );
    console.log(`properties ${engine} worker: ${RUNS} cases, ${rows} rows, ${deleted} deleted`);
  });

  it(`reconcile sweep: deletes exactly the node's dead WS rows, with no event at all (${RUNS} seeded cases)`, async () => {
    let rows = 0;
    let deleted = 0;
    await fc.assert(
      fc.asyncProperty(
        caseArb.map((c) => ({ ...c, rows: c.rows.filter((w) => w.kind !== "foreign-socket") })),
        async (c) => {
          await loadRows(db, [TABLE], c.rows);
          const { node, kamailio } = setUp(c);
          const tel = memoryTelemetry();
          const report = await runCleanup(
            {
              store: new DataApiReconcileStore(api.client, testDbConfig(db)),
              kamailio,
              engine,
              fleet: [node],
              telemetry: tel.telemetry,
            },
            CleanupRequestSchema.parse({ scope: "reconcile" }),
          );
          expect(report.nodes.map((n) => [n.outcome, n.message])).toEqual([["done", undefined]]);
          await check(
            c,
            tel.audits.map((a) => a.rowId),
          );
          rows += c.rows.length;
          deleted += tel.audits.length;
        },
      ),
      { seed: 18, numRuns: RUNS, endOnFailure: true },
    );
    console.log(`properties ${engine} sweep: ${RUNS} cases, ${rows} rows, ${deleted} deleted`);
  });
});
