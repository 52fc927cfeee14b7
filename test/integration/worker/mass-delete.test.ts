// A batch of a mass disconnect on the real Data API path (local server, its 65,536-character SQL
// limit, PostgreSQL and MariaDB): 250 dead tabs of one node in one batch are deleted in bounded
// statements. CONTROL: the one-statement guard over all 250 peers is refused by the server
// (`sql: Too big`), which is what sent such batches to the DLQ (bench/mass-disconnect.ts).
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import type { FleetConfig } from "#core/fleet.ts";
import { scopeOf } from "#core/ports.ts";
import { createWorker } from "#core/worker.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { BLF_SOCKET, blfPeer, fillBlf } from "../../helpers/blf.ts";
import { testDbConfig } from "../../helpers/dataapi.ts";
import { createTestDb, type TestDb } from "../../helpers/db.ts";
import { BOOT, FakeKamailio, fleetOf, nodeConfig, RecordingSink } from "../../helpers/fakes.ts";
import { type Engine, envelopeOf, startDataApi } from "./harness.ts";

const TABS = 250;
const KEYS = 2;
const TABLE = "aw_mass";
const AT = 1_795_621_085;

describe.each<Engine>(["postgres", "mysql"])("a mass disconnect's batch on %s", (engine) => {
  let db: TestDb;
  let api: { server: DataApiServer; client: RDSDataClient };
  let fleet: FleetConfig;
  const node = nodeConfig("mass-1", { socketInfo: [BLF_SOCKET], watchersTable: TABLE, contactStyle: "auto" });
  const count = async () => Number((await db.query(`SELECT COUNT(*) AS n FROM ${TABLE}`))[0]?.n);

  beforeAll(async () => {
    db = await createTestDb(engine, "massdel");
    await db.createNodeTable(TABLE);
    await fillBlf(db, TABLE, { count: TABS * KEYS, keysPerPeer: KEYS });
    api = await startDataApi();
    fleet = fleetOf([node], { database: testDbConfig(db) });
  });
  afterAll(async () => {
    api?.client.destroy();
    await api?.server.close();
    await db?.drop();
  });

  it(`${TABS} dead tabs in one batch: every row deleted in bounded statements, nothing dead-lettered`, async () => {
    const store = new DataApiWatcherStore(api.client, fleet.database);
    const peers = Array.from({ length: TABS }, (_, i) => blfPeer(i));
    // CONTROL: one guarded DELETE over every peer is over the Data API's SQL limit, and the rows are there.
    await expect(store.deleteWatchers(scopeOf(node), [1], { peers, dialogs: [] })).rejects.toThrow(/Too big/);
    expect(await count()).toBe(TABS * KEYS);

    const dlq = new RecordingSink();
    const worker = createWorker({
      fleet: async () => fleet,
      storeFor: () => store,
      kamailio: new FakeKamailio().serve(node.id), // 5.6.3, nothing connected
      dlq,
      telemetry: memoryTelemetry().telemetry,
      now: () => AT * 1000 + 5000,
    });
    const closed = (i: number) => ({
      type: "connection.closed",
      node: node.id,
      boot: BOOT,
      peer: peers[i],
      transport: "ws",
      cause: "tcp:reset",
      at: AT,
    });
    // The cfg's envelopes hold at most 50 events; the deployed batch is 10 messages.
    const records = Array.from({ length: TABS / 50 }, (_, m) => ({
      messageId: `m${m}`,
      body: envelopeOf(...Array.from({ length: 50 }, (_, j) => closed(m * 50 + j))),
    }));
    const result = await worker(records);
    expect(dlq.items).toEqual([]);
    expect(result.deleted).toBe(TABS * KEYS);
    expect(await count()).toBe(0);
  });
});
