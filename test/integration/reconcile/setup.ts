// Shared set-up for the reconcile and CLI integration tests: a test database, the local Data API
// server in front of it, Kamailio nodes with their own watchers tables, and the reconcile runtime
// wired to them exactly as the Lambdas and `kwc` wire it (real RDSDataClient, real JSON-RPC client).
import { writeFileSync } from "node:fs";
import pg from "pg";
import { KamailioRpcClient } from "#adapters/kamailio-rpc.ts";
import { type FleetConfig, parseFleetConfig } from "#core/fleet.ts";
import type { FleetRuntime } from "#handlers/functions.ts";
import { type DataApiServer, startDataApiServer } from "../../../local/dataapi/server.ts";
import { localDataApiClient, testDbConfig, testDbTarget } from "../../helpers/dataapi.ts";
import { createTestDb, DB_HOST, type Engine, PG_PORT, type TestDb } from "../../helpers/db.ts";
import { fleetOf, runningNodeConfig } from "../../helpers/fakes.ts";
import { type KamailioNode, startKamailio } from "../../helpers/kamailio.ts";
import { SipWsClient, type Subscription } from "../../helpers/sip-ws-client.ts";
import { waitUntil } from "../../helpers/wait.ts";

export interface Bed {
  engine: Engine;
  db: TestDb;
  dataApi: DataApiServer;
  nodes: KamailioNode[];
  fleet: FleetConfig;
  runtime: FleetRuntime;
  clients: SipWsClient[];
  /** Env for a `kwc` child process (fleet file, tokens, Data API endpoint). */
  cliEnv(extra?: Record<string, string>): NodeJS.ProcessEnv;
  /** `$1` on PostgreSQL, `?` on MySQL. */
  ph(n: number): string;
  close(): Promise<void>;
}

export const tokenVar = (nodeId: string) =>
  `KWC_TEST_TOKEN_${nodeId.replace(/[^A-Za-z0-9]/g, "_").toUpperCase()}`;

export async function startBed(
  engine: Engine,
  prefix: string,
  nodeSpecs: { id: string; listenIp: string; table: string }[],
): Promise<Bed> {
  const db = await createTestDb(engine, prefix);
  const dataApi = await startDataApiServer({ targets: [testDbTarget(db)] });
  const nodes: KamailioNode[] = [];
  for (const spec of nodeSpecs) {
    await db.createNodeTable(spec.table);
    nodes.push(
      await startKamailio({ nodeId: spec.id, db, watchersTable: spec.table, listenIp: spec.listenIp }),
    );
  }
  const fleet = parseFleetConfig(
    fleetOf(
      nodes.map((n) => runningNodeConfig(n, { tokenSecret: `env:${tokenVar(n.nodeId)}` })),
      { database: testDbConfig(db) },
    ),
  );
  const fleetFile = `/tmp/kwc-fleet-${db.name}.json`;
  writeFileSync(fleetFile, JSON.stringify(fleet));
  const tokens = Object.fromEntries(nodes.map((n) => [n.nodeId, n.rpcToken]));
  const rdsData = localDataApiClient(dataApi.endpoint);
  const clients: SipWsClient[] = [];
  return {
    engine,
    db,
    dataApi,
    nodes,
    fleet,
    clients,
    runtime: {
      loadFleet: async () => fleet,
      rdsData,
      kamailio: new KamailioRpcClient({ token: async (node) => tokens[node.id] ?? "" }),
    },
    cliEnv: (extra = {}) => ({
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      KWC_FLEET_CONFIG: `file:${fleetFile}`,
      AWS_ENDPOINT_URL_RDS_DATA: dataApi.endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      ...Object.fromEntries(nodes.map((n) => [tokenVar(n.nodeId), n.rpcToken])),
      ...extra,
    }),
    ph: (n) => (engine === "postgres" ? `$${n}` : "?"),
    async close() {
      for (const c of clients) c.close();
      for (const n of nodes) await n.stop();
      rdsData.destroy();
      await dataApi.close();
      if (engine === "postgres") await dataApiBackendsGone(db.name);
      await db.drop();
    },
  };
}

/**
 * Waits (bounded) until only the test helper's own pool (≤ 2) still uses the database: pg's
 * Pool.end() resolves before its sockets close, and drop()'s DROP … WITH (FORCE) would kill a
 * Data API server client that no longer has an error listener (an unhandled error in vitest).
 */
async function dataApiBackendsGone(database: string): Promise<void> {
  const admin = new pg.Client({ host: DB_HOST, port: PG_PORT, user: "postgres", database: "postgres" });
  await admin.connect();
  try {
    await waitUntil(
      async () => {
        const { rows } = await admin.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1",
          [database],
        );
        return (rows[0]?.n ?? 0) <= 2;
      },
      { timeoutMs: 5000, what: `Data API connections to ${database} closed` },
    );
  } finally {
    await admin.end();
  }
}

/** A client of `node` subscribed to `presentity` with its initial NOTIFY received. */
export async function watcher(
  bed: Bed,
  node: KamailioNode,
  user: string,
  presentity: string,
  event = "presence",
): Promise<{ c: SipWsClient; sub: Subscription }> {
  const c = await SipWsClient.connect(node.wsUrl, { user });
  bed.clients.push(c);
  const sub = await c.subscribe(presentity, { event });
  if (sub.status !== 200) throw new Error(`SUBSCRIBE answered ${sub.status}`);
  await c.waitForNotify((n) => n.callId === sub.callId);
  return { c, sub };
}

/** Kills a client and waits until its node no longer lists the connection (core.tcp_list). */
export async function killAndWaitGone(node: KamailioNode, c: SipWsClient, how: "rst" | "terminate" = "rst") {
  await c.die(how);
  await waitUntil(
    async () => {
      const { body } = await node.rpc("core.tcp_list");
      const list = (body as { result?: { src_port: number; src_ip: string }[] }).result ?? [];
      return !list.some((e) => e.src_port === c.localPort && e.src_ip === c.localAddress);
    },
    { timeoutMs: 10_000, what: `connection ${c.peer} gone from ${node.nodeId}` },
  );
}

export async function callIdsIn(bed: Bed, table: string): Promise<string[]> {
  const rows = await bed.db.query<{ callid: string }>(`SELECT callid FROM ${table} ORDER BY id`);
  return rows.map((r) => r.callid);
}
