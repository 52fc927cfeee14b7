// Cost model per million connection.closed events: ingest (HTTP API), SQS, the worker Lambda
// (arm64 at the memory the stack deploys) and the RDS Data API. The deployed settings come from
// the synthesized stack itself (worker memory, architecture, batch size); the calls per event are
// measured here: the real worker over the local Data API server (PostgreSQL) cleans 10 dead BLF
// tabs of 100 subscriptions each (one close event per SQS message, the worst case: a lone close
// is posted alone), with a Kamailio stand-in that counts calls and reports 5.6.3 or 6.0.1.
// Unit prices are printed next to their source. Run: npm run bench:cost-model.
import { DataApiWatcherStore } from "#adapters/data-api-store.ts";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import { createWorker } from "#core/worker.ts";
import { defaultTargets } from "../local/dataapi/config.ts";
import { startDataApiServer } from "../local/dataapi/server.ts";
import { localDataApiClient, testDbConfig } from "../test/helpers/dataapi.ts";
import { createTestDb, type TestDb } from "../test/helpers/db.ts";
import { FakeKamailio, fleetOf, nodeConfig, RecordingSink } from "../test/helpers/fakes.ts";
import { buildStack } from "../test/infra/synth.ts";

const TABS = 10;
const SUBS_PER_TAB = 100;
const LIVE_PER_PRESENTITY = 5;
const BOOT = "1795621085-9f3a61c2";
const AT = 1_795_621_085;

/** Unit prices (us-east-1), with where each comes from. */
const PRICES = {
  httpApiPerMillion: { usd: 1.0, source: "shared/aws-facts.md #37 (third-party copy of the pricing page)" },
  sqsPerMillionRequests: { usd: 0.4, source: "shared/aws-facts.md #37 (64 KB chunks)" },
  lambdaPerMillionRequests: { usd: 0.2, source: "shared/aws-facts.md #37" },
  lambdaArmPerGbSecond: {
    usd: 0.0000133334,
    source:
      "not in shared/aws-facts.md: AWS list price for arm64 (x86 is $0.0000166667, #37); unsourced here",
  },
  dataApiPerMillion: {
    usd: 0.35,
    source: "not in shared/aws-facts.md: AWS list price, first 1B requests/month; unsourced here",
  },
};

/** What the stack deploys for the worker (read from the synthesized template). */
function deployedWorker(): { memoryMb: number; architecture: string; batchSize: number } {
  const { template } = buildStack();
  const mappings = Object.values(template.findResources("AWS::Lambda::EventSourceMapping"));
  const functions = template.findResources("AWS::Lambda::Function");
  const mapping = mappings[0] as { Properties: { FunctionName: { Ref: string }; BatchSize?: number } };
  const fn = functions[mapping.Properties.FunctionName.Ref] as {
    Properties: { MemorySize: number; Architectures?: string[] };
  };
  return {
    memoryMb: fn.Properties.MemorySize,
    architecture: fn.Properties.Architectures?.[0] ?? "x86_64",
    batchSize: mapping.Properties.BatchSize ?? 10,
  };
}

const node = nodeConfig("cost-1", { socketInfo: ["tcp:127.0.0.99:5080"], watchersTable: "aw_cost_1" });

async function fill(db: TestDb): Promise<void> {
  const rows: string[] = [];
  let id = 1;
  const row = (contact: string, presentity: string) =>
    `(${id++}, '${presentity}', 'w', 'example.com', 'p', 'example.com', 'dialog', 'tt', 'ft', 'c${id}', 0, 1, '${contact}', 2000000000, '${node.socketInfo[0]}', 'sip:x', 'w', 'example.com', -1, -1)`;
  for (let p = 0; p < SUBS_PER_TAB; p++) {
    const presentity = `sip:ext${p}@example.com`;
    for (let t = 0; t < TABS; t++) rows.push(row(`sip:t${t}@10.9.0.1:${20000 + t};transport=ws`, presentity));
    for (let l = 0; l < LIVE_PER_PRESENTITY; l++)
      rows.push(row(`sip:l${l}@10.9.1.1:${30000 + l};transport=ws`, presentity));
  }
  await db.query(
    `INSERT INTO ${node.watchersTable} (id, presentity_uri, watcher_username, watcher_domain, to_user, to_domain, event, to_tag, from_tag, callid, local_cseq, remote_cseq, contact, expires, socket_info, local_contact, from_user, from_domain, updated, updated_winfo) VALUES ${rows.join(",")}`,
  );
}

interface Measured {
  version: string;
  events: number;
  dataApiCalls: number;
  rpc: { status: number; tcpList: number; refresh: number };
  workerMs: number;
  refreshReasons: Record<string, number> | undefined;
}

async function measure(version: string, batchSize: number): Promise<Measured> {
  const db = await createTestDb("postgres", "benchcost");
  const server = await startDataApiServer({ targets: defaultTargets() });
  const rds = localDataApiClient(server.endpoint);
  try {
    await db.createNodeTable(node.watchersTable);
    await fill(db);
    const fleet = fleetOf([{ ...node, kamailioVersion: version }], {
      database: testDbConfig(db),
      notifyFailureCodes: [404, 410, 481, 408],
    });
    // No connection is live; every call is counted.
    const kamailio = new FakeKamailio();
    kamailio.statusOf.set(node.id, {
      node: node.id,
      boot: BOOT,
      version,
      subsDbMode: 3,
      notifierProcesses: 0,
    });
    const worker = createWorker({
      fleet: async () => fleet,
      storeFor: () => new DataApiWatcherStore(rds, fleet.database),
      kamailio,
      dlq: new RecordingSink(),
      telemetry: memoryTelemetry().telemetry,
      now: () => AT * 1000 + 5000,
    });
    const records = Array.from({ length: TABS }, (_, t) => ({
      messageId: `m${t}`,
      body: JSON.stringify({
        v: 1,
        events: [
          {
            type: "connection.closed",
            node: node.id,
            boot: BOOT,
            peer: { ip: "10.9.0.1", port: 20000 + t },
            transport: "ws",
            cause: "tcp:reset",
            at: AT,
          },
        ],
      }),
    }));
    const before = server.stats.calls;
    const t0 = performance.now();
    let refreshReasons: Record<string, number> = {};
    for (let i = 0; i < records.length; i += batchSize) {
      const r = await worker(records.slice(i, i + batchSize));
      if (r.failedMessageIds.length > 0) throw new Error(`batch failed: ${r.failedMessageIds.join(",")}`);
      for (const [k, v] of Object.entries(r.refreshReasons ?? {}))
        refreshReasons[k] = (refreshReasons[k] ?? 0) + v;
    }
    const workerMs = performance.now() - t0;
    refreshReasons = Object.keys(refreshReasons).length > 0 ? refreshReasons : {};
    return {
      version,
      events: TABS,
      dataApiCalls: server.stats.calls - before,
      rpc: {
        status: kamailio.statusCalls,
        tcpList: kamailio.tcpListCalls.length,
        refresh: kamailio.refreshCalls.length,
      },
      workerMs,
      refreshReasons,
    };
  } finally {
    rds.destroy();
    await server.close();
    await db.drop();
  }
}

function costPerMillion(m: Measured, w: ReturnType<typeof deployedWorker>) {
  const perEvent = (n: number) => n / m.events;
  const messages = 1_000_000; // one close event per message: the worst case
  const invocations = messages / w.batchSize;
  const msPerInvocation = m.workerMs / Math.ceil(m.events / w.batchSize);
  const gbSeconds = invocations * (msPerInvocation / 1000) * (w.memoryMb / 1024);
  const lines = [
    { part: "ingest (HTTP API)", calls: messages, unit: PRICES.httpApiPerMillion },
    // SendMessage by the ingest, ReceiveMessage and DeleteMessageBatch by the event source (10 a call)
    { part: "SQS", calls: messages * (1 + 2 / w.batchSize), unit: PRICES.sqsPerMillionRequests },
    { part: "Lambda requests", calls: invocations, unit: PRICES.lambdaPerMillionRequests },
    { part: "Data API", calls: perEvent(m.dataApiCalls) * messages, unit: PRICES.dataApiPerMillion },
  ].map((l) => ({
    part: l.part,
    calls: Math.round(l.calls),
    usd: (l.calls / 1e6) * l.unit.usd,
    unitUsd: l.unit.usd,
    source: l.unit.source,
  }));
  lines.push({
    part: `Lambda duration (${w.architecture}, ${w.memoryMb} MB, ${msPerInvocation.toFixed(0)} ms a batch measured locally)`,
    calls: Math.round(gbSeconds),
    usd: gbSeconds * PRICES.lambdaArmPerGbSecond.usd,
    unitUsd: PRICES.lambdaArmPerGbSecond.usd,
    source: `${PRICES.lambdaArmPerGbSecond.source} (calls = GB-s)`,
  });
  return { lines, totalUsd: lines.reduce((s, l) => s + l.usd, 0) };
}

const w = deployedWorker();
const results = [];
for (const version of ["5.6.3", "6.0.1"]) {
  const m = await measure(version, w.batchSize);
  const cost = costPerMillion(m, w);
  results.push({ measured: m, cost });
  console.log(
    `\nCost per million close events, Kamailio ${version} (worker: ${w.architecture}, ${w.memoryMb} MB, batch ${w.batchSize}; ` +
      `measured per close event of a 100-subscription BLF tab: ${(m.dataApiCalls / m.events).toFixed(2)} Data API calls, ` +
      `${(m.rpc.refresh / m.events).toFixed(1)} refreshes, ${(m.rpc.tcpList / m.events).toFixed(2)} core.tcp_list)`,
  );
  console.table(
    cost.lines.map((l) => ({
      part: l.part,
      "calls (M events)": l.calls,
      "unit USD/M": l.unitUsd,
      USD: l.usd.toFixed(2),
      source: l.source,
    })),
  );
  console.log(
    `total ≈ $${cost.totalUsd.toFixed(2)} per million close events; refreshes by reason: ${JSON.stringify(m.refreshReasons)}`,
  );
}
console.log(JSON.stringify({ bench: "cost-model", worker: w, prices: PRICES, results }));
