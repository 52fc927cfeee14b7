// The peer index on both engines, through the local Data API: the SQL peer key pinned to the TS
// contact parser (property test), the online migration (idempotent, INVALID leftover dropped,
// a build longer than the statement timeout followed by polling, unmigrate), and the store: with a
// valid index its select is an index scan on a 20k-row BLF table after ANALYZE (plan shape), and
// without it the store scans, says so, and finds the same rows.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import { dataApiPeerIndexPort } from "#adapters/peer-index.ts";
import { peerKey } from "#core/peer.ts";
import { migratePeerIndex, unmigratePeerIndex } from "#core/peer-index-migration.ts";
import type { NodeScope } from "#core/ports.ts";
import { contactPeer } from "#core/reconcile.ts";
import { candidatePageStatement } from "#core/sql/byte-pages.ts";
import {
  migrateStatements,
  PEER_KEY_COLUMN,
  peerIndexName,
  peerKeyExpression,
  peerKeyForms,
} from "#core/sql/peer-index.ts";
import { dialectFor } from "#core/sql.ts";
import type { Statement } from "#core/watcher-sql.ts";
import { defaultTargets } from "../../../local/dataapi/config.ts";
import { type DataApiServer, startDataApiServer } from "../../../local/dataapi/server.ts";
import { BLF_SOCKET, blfPeer, fillBlf } from "../../helpers/blf.ts";
import { contactArb } from "../../helpers/contacts.ts";
import { localDataApiClient, testDbConfig } from "../../helpers/dataapi.ts";
import { createTestDb, type Engine, type TestDb } from "../../helpers/db.ts";

const BLF_ROWS = 20_000;
const KEYS_PER_PEER = 100;

describe.each<Engine>(["postgres", "mysql"])("peer index on %s", (engine) => {
  let db: TestDb;
  let server: DataApiServer;
  let client: RDSDataClient;
  let store: DataApiWatcherStore;
  const scans: string[] = [];
  const scope: NodeScope = { nodeId: "n1", table: "aw_blf", socketInfo: [BLF_SOCKET], contactStyle: "auto" };
  const port = (table: string, c = client) =>
    dataApiPeerIndexPort(c, testDbConfig(db), table, (s) => store.executor.execute(s));
  const execute = (s: Statement) => store.executor.execute(s);

  beforeAll(async () => {
    db = await createTestDb(engine, "peeridx");
    await db.createNodeTable("aw_blf");
    await db.createNodeTable("aw_prop");
    server = await startDataApiServer({ targets: defaultTargets(), statementTimeoutMs: 20_000 });
    client = localDataApiClient(server.endpoint);
    store = new DataApiWatcherStore(client, testDbConfig(db), { onScan: (table) => scans.push(table) });
    await fillBlf(db, "aw_blf", { count: BLF_ROWS, keysPerPeer: KEYS_PER_PEER });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it("computes in SQL the peer the TS parser reads, for both styles, IPv4, IPv6 and no peer", async () => {
    await migratePeerIndex(port("aw_prop"), engine, "aw_prop");
    const keyOf = engine === "postgres" ? peerKeyExpression("postgres") : PEER_KEY_COLUMN;
    await fc.assert(
      fc.asyncProperty(fc.array(contactArb, { minLength: 50, maxLength: 150 }), async (contacts) => {
        await db.query("DELETE FROM aw_prop");
        const p = engine === "postgres" ? (i: number) => `$${i}` : () => "?";
        const values = contacts.map(
          (_, i) =>
            `(${p(i + 1)}, 'sip:x@y', 'w', 'd', 't', 'd', 'presence', 'tt${i}', 'ft', 'c${i}', 1, 1, 1, 's', 'lc', 'f', 'd', -1, -1)`,
        );
        await db.query(
          `INSERT INTO aw_prop (contact, presentity_uri, watcher_username, watcher_domain, to_user, to_domain, event, to_tag, from_tag, callid, local_cseq, remote_cseq, expires, socket_info, local_contact, from_user, from_domain, updated, updated_winfo) VALUES ${values.join(", ")}`,
          contacts,
        );
        const rows = await db.query<{ contact: string; k: string | null }>(
          `SELECT contact, ${keyOf} AS k FROM aw_prop`,
        );
        for (const { contact, k } of rows) {
          const peer = contactPeer(contact, "auto");
          const expected = peer ? peerKeyForms(peer) : [];
          // Never narrower: a contact naming a peer has one of the keys the store asks for.
          if (peer && (k === null || !expected.includes(k)))
            throw new Error(`${JSON.stringify(contact)}: SQL key ${k}, TS peer ${peerKey(peer)}`);
          // A contact naming no WebSocket peer has no key (nothing to index).
          if (!peer && k !== null) throw new Error(`${JSON.stringify(contact)}: SQL key ${k}, TS none`);
        }
      }),
      { numRuns: 15 },
    );
  }, 120_000);

  it("migrates online and idempotently; the store's select is then an index scan (plan shape)", async () => {
    expect(await store.peerIndex.hasValidIndex("aw_blf")).toBe(false);
    expect(scans).toContain("aw_blf");
    const first = await migratePeerIndex(port("aw_blf"), engine, "aw_blf");
    expect(first).toMatchObject({ before: "absent", after: "valid" });
    expect(first.ran).toEqual(migrateStatements(dialectFor(engine), "aw_blf"));
    const again = await migratePeerIndex(port("aw_blf"), engine, "aw_blf");
    expect(again).toMatchObject({ before: "valid", after: "valid", ran: [] });
    await db.query(engine === "postgres" ? "ANALYZE aw_blf" : "ANALYZE TABLE aw_blf");

    const peers = [3, 17, 42, 101, 150].map(blfPeer);
    const statement = candidatePageStatement(dialectFor(engine), scope, { peers, dialogs: [] }, 0, true);
    const { records } = await execute({ ...statement, sql: `EXPLAIN ${statement.sql}` });
    const plan = records.map((r) => r.map(String).join(" ")).join("\n");
    if (engine === "postgres") {
      expect(plan).toMatch(
        new RegExp(
          `Index Scan using ${peerIndexName(engine, "aw_blf")}|Bitmap Index Scan on ${peerIndexName(engine, "aw_blf")}`,
        ),
      );
      expect(plan).not.toMatch(/aw_blf_pkey|Seq Scan/);
    } else {
      // EXPLAIN columns: id, select_type, table, type, possible_keys, key, …
      const base = records.find((r) => String(r[2]) === "aw_blf");
      expect(String(base?.[5])).toBe(PEER_KEY_COLUMN);
      expect(String(base?.[3])).toMatch(/^(range|ref)$/);
    }
    // Control: the same select without the index is not an index scan on it.
    const scan = candidatePageStatement(dialectFor(engine), scope, { peers, dialogs: [] }, 0, false);
    const { records: scanPlan } = await execute({ ...scan, sql: `EXPLAIN ${scan.sql}` });
    expect(scanPlan.map((r) => r.map(String).join(" ")).join("\n")).not.toContain(
      peerIndexName(engine, "aw_blf"),
    );

    const fresh = new DataApiWatcherStore(client, testDbConfig(db));
    const rows = await fresh.selectCandidates(scope, { peers, dialogs: [] });
    expect(rows).toHaveLength(peers.length * KEYS_PER_PEER);
    // The guarded delete through the index: a row rewritten in between (another peer now) stays.
    const moved = rows[0]?.id ?? 0;
    await db.query(
      `UPDATE aw_blf SET contact = 'sip:u@10.200.0.1:5999;transport=ws' WHERE id = ${engine === "postgres" ? "$1" : "?"}`,
      [moved],
    );
    const deleted = await fresh.deleteWatchers(
      scope,
      rows.map((r) => r.id),
      { peers, dialogs: [] },
    );
    expect(deleted).toHaveLength(rows.length - 1);
    expect(deleted).not.toContain(moved);
  }, 120_000);

  it("unmigrates; the store then scans, says so, and finds the same rows", async () => {
    const peers = [5, 6].map(blfPeer);
    const indexed = await new DataApiWatcherStore(client, testDbConfig(db)).selectCandidates(scope, {
      peers,
      dialogs: [],
    });
    const out = await unmigratePeerIndex(port("aw_blf"), engine, "aw_blf");
    expect(out).toMatchObject({ before: "valid", after: "absent" });
    const seen: string[] = [];
    const scanning = new DataApiWatcherStore(client, testDbConfig(db), { onScan: (t) => seen.push(t) });
    const rows = await scanning.selectCandidates(scope, { peers, dialogs: [] });
    expect(seen).toEqual(["aw_blf"]);
    expect(rows.map((r) => r.id)).toEqual(indexed.map((r) => r.id));
    expect(rows).toHaveLength(2 * KEYS_PER_PEER);
  }, 60_000);

  it("drops a failed build's leftover and survives the statement timeout by polling", async () => {
    const dialect = dialectFor(engine);
    if (engine === "postgres") {
      // A UNIQUE build over duplicate keys fails and leaves an INVALID index under the same name.
      await expect(
        execute({
          sql: `CREATE UNIQUE INDEX CONCURRENTLY ${dialect.ident(peerIndexName(engine, "aw_blf"))} ON aw_blf ((${peerKeyExpression("postgres")}))`,
          params: {},
        }),
      ).rejects.toThrow();
    } else {
      // The first ALTER only: the generated column without its index.
      await execute({ sql: migrateStatements(dialect, "aw_blf")[0] ?? "", params: {} });
    }
    // A server that stops waiting after 5 ms: the build runs on and the migration polls it.
    const impatient = await startDataApiServer({ targets: defaultTargets(), statementTimeoutMs: 5 });
    try {
      const lines: string[] = [];
      const out = await migratePeerIndex(
        port("aw_blf", localDataApiClient(impatient.endpoint)),
        engine,
        "aw_blf",
        {
          pollMs: 50,
          say: (l) => lines.push(l),
        },
      );
      expect(out).toMatchObject({ before: "invalid", after: "valid" });
      if (engine === "postgres") expect(lines.join("\n")).toContain("dropping the INVALID index");
      expect(lines.join("\n")).toContain("polling its state");
    } finally {
      await impatient.close();
    }
    expect(await new DataApiWatcherStore(client, testDbConfig(db)).peerIndex.hasValidIndex("aw_blf")).toBe(
      true,
    );
  }, 120_000);
});
