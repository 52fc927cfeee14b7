// The Data API store on both dialects (PostgreSQL, and MariaDB behind the local server's
// aurora-mysql mode): exact contact predicates, byte-exact dialog keys, hostile values as data,
// delete by id AND predicate, paging, and the one-query fan-out lookup.
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import type { NodeScope } from "#core/ports.ts";
import { defaultTargets } from "../../../local/dataapi/config.ts";
import { type DataApiServer, startDataApiServer } from "../../../local/dataapi/server.ts";
import { localDataApiClient, testDbConfig } from "../../helpers/dataapi.ts";
import { createTestDb, type TestDb } from "../../helpers/db.ts";
import { type Engine, startDataApi } from "./harness.ts";

const HOSTILE = `a%_'"\\!~(<x`;

describe.each<Engine>(["postgres", "mysql"])("Data API store on %s", (engine) => {
  let db: TestDb;
  let api: { server: DataApiServer; client: RDSDataClient };
  let store: DataApiWatcherStore;
  const scope = (style: NodeScope["contactStyle"] = "auto"): NodeScope => ({
    nodeId: "n1",
    table: "aw_n1",
    socketInfo: ["tcp:127.0.0.2:5080"],
    contactStyle: style,
  });
  let nextId = 1;
  async function insert(
    contact: string,
    o: { callId?: string; toTag?: string; socket?: string; table?: string; presentity?: string } = {},
  ) {
    const id = nextId++;
    const p = engine === "postgres" ? (i: number) => `$${i}` : () => "?";
    await db.query(
      `INSERT INTO ${o.table ?? "aw_n1"} (id, presentity_uri, watcher_username, watcher_domain, to_user, to_domain, event, to_tag, from_tag, callid, local_cseq, remote_cseq, contact, expires, socket_info, local_contact, from_user, from_domain, updated, updated_winfo) VALUES (${p(1)}, ${p(2)}, 'bob', 'example.com', 'alice', 'example.com', 'presence', ${p(3)}, 'ft', ${p(4)}, 0, 1, ${p(5)}, 2000000000, ${p(6)}, 'sip:x', 'bob', 'example.com', -1, -1)`,
      [
        id,
        o.presentity ?? "sip:alice@example.com",
        o.toTag ?? `tt${id}`,
        o.callId ?? `call-${id}`,
        contact,
        o.socket ?? "tcp:127.0.0.2:5080",
      ],
    );
    return id;
  }

  beforeAll(async () => {
    db = await createTestDb(engine, "wstore");
    await db.createNodeTable("aw_n1");
    await db.createNodeTable("aw_n2");
    api = await startDataApi();
    store = new DataApiWatcherStore(api.client, testDbConfig(db));
  });
  afterAll(async () => {
    await api?.server.close();
    await db?.drop();
  });

  it("selects exactly the peer's rows, never a port prefix or another node's socket", async () => {
    const hit1 = await insert(`sip:${HOSTILE}@10.0.0.1:5491;transport=ws`);
    const hit2 = await insert("<sip:u@10.0.0.1:5491>");
    const hit3 = await insert("sip:u@abc.invalid;transport=ws;alias=10.0.0.1~5491~6");
    const hit4 = await insert("sip:u@[2001:DB8::1]:5491;transport=ws");
    await insert("sip:u@10.0.0.1:54914;transport=ws");
    await insert("sip:u@10.0.0.1:549;transport=ws");
    await insert("sip:u@110.0.0.1:5491;transport=ws");
    await insert("sip:u@10.0.0.1:5491;transport=ws", { socket: "tcp:127.0.0.9:5080" });
    await insert(`sip:%@10.0.0.1:549_;transport=ws`);
    const rows = await store.selectCandidates(scope(), {
      peers: [
        { ip: "10.0.0.1", port: 5491 },
        { ip: "2001:db8:0:0:0:0:0:1", port: 5491 },
      ],
      dialogs: [],
    });
    expect(rows.map((r) => r.id)).toEqual([hit1, hit2, hit3, hit4]);
    expect(rows[0]?.contact).toBe(`sip:${HOSTILE}@10.0.0.1:5491;transport=ws`);
  });

  it("compares dialog keys byte-exact (case and LIKE characters are data)", async () => {
    const exact = await insert("sip:u@10.0.0.2:1;transport=ws", { callId: `${HOSTILE}Call`, toTag: "Tag_%" });
    // (MySQL's _ci unique index refuses a second key differing only in case: vary the to-tag too.)
    await insert("sip:u@10.0.0.2:2;transport=ws", { callId: `${HOSTILE}call`, toTag: "Tag_%2" });
    await insert("sip:u@10.0.0.2:3;transport=ws", { callId: `${HOSTILE}Call`, toTag: "TagX%" });
    const rows = await store.selectCandidates(scope(), {
      peers: [],
      dialogs: [{ callId: `${HOSTILE}Call`, toTag: "Tag_%", fromTag: "ft" }],
    });
    expect(rows.map((r) => r.id)).toEqual([exact]);
    const none = await store.selectCandidates(scope(), {
      peers: [],
      dialogs: [{ callId: `${HOSTILE}CALL`, toTag: "Tag_%", fromTag: "ft" }],
    });
    expect(none).toEqual([]);
  });

  it("deletes by id AND the same predicate and reports exactly the deleted ids", async () => {
    const a = await insert("sip:u@10.0.0.3:7000;transport=ws");
    const b = await insert("sip:u@10.0.0.3:7000;transport=ws");
    const criteria = { peers: [{ ip: "10.0.0.3", port: 7000 }], dialogs: [] };
    const rows = await store.selectCandidates(scope(), criteria);
    expect(rows.map((r) => r.id)).toEqual([a, b]);
    // b re-SUBSCRIBEs over a new connection before the delete.
    await db.query(
      engine === "postgres"
        ? "UPDATE aw_n1 SET contact = $1 WHERE id = $2"
        : "UPDATE aw_n1 SET contact = ? WHERE id = ?",
      ["sip:u@10.0.0.3:7001;transport=ws", b],
    );
    const deleted = await store.deleteWatchers(scope(), [a, b], criteria);
    expect(deleted).toEqual([a]);
    const left = await db.query<{ id: number }>(
      `SELECT id FROM aw_n1 WHERE id IN (${[a, b].join(",")}) ORDER BY id`,
    );
    expect(left.map((r) => Number(r.id))).toEqual([b]);
  });

  it("pages by the rows' bytes: 130 rows in one call, wide rows under a small response limit", async () => {
    const ids: number[] = [];
    for (let i = 0; i < 130; i++) ids.push(await insert("sip:u@10.0.0.4:8000;transport=ws"));
    const criteria = { peers: [{ ip: "10.0.0.4", port: 8000 }], dialogs: [] };
    await store.peerIndex.hasValidIndex("aw_n1"); // the detection is its own call (cached per table)
    const before = api.server.stats.calls;
    const rows = await store.selectCandidates(scope(), criteria);
    expect(rows.map((r) => r.id)).toEqual(ids);
    expect(api.server.stats.calls - before).toBe(1); // was 3 pages of 59 rows

    // Worst-case JSON per character: quotes, backslashes and control characters (escaped to 2-6
    // bytes) and multi-byte UTF-8, 255 characters. A server whose limit is 40 KB answers every page.
    const wide = `sip:${'"\\\u0001'.repeat(40)}${"é".repeat(60)}@10.0.0.5:8001;transport=ws`;
    const wideIds: number[] = [];
    for (let i = 0; i < 80; i++) wideIds.push(await insert(wide.replace("@10.0.0.5", `${i}@10.0.0.5`)));
    const small = await startDataApiServer({ targets: defaultTargets(), maxResponseBytes: 40_000 });
    try {
      const narrow = new DataApiWatcherStore(localDataApiClient(small.endpoint), testDbConfig(db), {
        pageBudgetBytes: 36_000,
      });
      const got = await narrow.selectCandidates(scope(), {
        peers: [{ ip: "10.0.0.5", port: 8001 }],
        dialogs: [],
      });
      expect(got.map((r) => r.id)).toEqual(wideIds);
      expect(got[0]?.contact).toBe(wide.replace("@10.0.0.5", "0@10.0.0.5"));
      expect(small.stats.calls).toBeGreaterThan(2);
      // Control: a budget above the server's limit is refused by it.
      const greedy = new DataApiWatcherStore(localDataApiClient(small.endpoint), testDbConfig(db), {
        pageBudgetBytes: 400_000,
      });
      await expect(
        greedy.selectCandidates(scope(), { peers: [{ ip: "10.0.0.5", port: 8001 }], dialogs: [] }),
      ).rejects.toThrow();
    } finally {
      await small.close();
    }
  });

  it("finds in one query which node tables watch which presentities", async () => {
    await insert("sip:u@10.0.0.5:1", {
      table: "aw_n2",
      socket: "tcp:127.0.0.3:5080",
      presentity: "sip:fan@example.com",
    });
    await insert("sip:u@10.0.0.5:2", { presentity: "sip:fan@example.com" });
    const before = api.server.stats.calls;
    const found = await store.findWatchingScopes(
      [scope(), { nodeId: "n2", table: "aw_n2", socketInfo: ["tcp:127.0.0.3:5080"], contactStyle: "nated" }],
      [
        { presentityUri: "sip:fan@example.com", event: "presence" },
        { presentityUri: "sip:nobody@example.com", event: "presence" },
      ],
    );
    expect(api.server.stats.calls - before).toBe(1);
    expect(found.sort((x, y) => x.nodeId.localeCompare(y.nodeId))).toEqual([
      { nodeId: "n1", presentityUri: "sip:fan@example.com", event: "presence" },
      { nodeId: "n2", presentityUri: "sip:fan@example.com", event: "presence" },
    ]);
  });
});
