// `kwc db migrate` / `kwc db unmigrate` and the peer-index line of `kwc nodes check`, through
// cli/main.ts against real PostgreSQL and MariaDB behind the local Data API server. The fleet's
// node is not running (its facts come from the config): on PostgreSQL a node in notifier mode makes
// migrate refuse unless --allow-stall.
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateStatements, peerIndexName } from "#core/sql/peer-index.ts";
import { dialectFor } from "#core/sql.ts";
import { main } from "../../../cli/main.ts";
import { type DataApiServer, startDataApiServer } from "../../../local/dataapi/server.ts";
import { testDbConfig, testDbTarget } from "../../helpers/dataapi.ts";
import { createTestDb, type Engine, type TestDb } from "../../helpers/db.ts";
import { fleetOf, nodeConfig } from "../../helpers/fakes.ts";

describe.each<Engine>(["postgres", "mysql"])("kwc db migrate on %s", (engine) => {
  let db: TestDb;
  let server: DataApiServer;
  const files: Record<string, string> = {};

  const fleetFile = (notifierProcesses: number) => {
    const file = `/tmp/kwc-fleet-${db.name}-${notifierProcesses}.json`;
    const node = nodeConfig("n1", {
      rpcUrl: "http://127.0.0.1:9/RPC",
      statusUrl: "http://127.0.0.1:9/kwc/status",
      tokenSecret: "env:KWC_TEST_TOKEN",
      socketInfo: ["tcp:127.0.0.2:5060"],
      watchersTable: "aw_mig",
      contactStyle: "auto",
      notifierProcesses,
    });
    writeFileSync(file, JSON.stringify(fleetOf([node], { database: testDbConfig(db) })));
    return file;
  };
  async function kwc(args: string[], notifierProcesses = 0) {
    const out: string[] = [];
    const err: string[] = [];
    const env = {
      KWC_FLEET_CONFIG: `file:${files[notifierProcesses] ?? ""}`,
      KWC_TEST_TOKEN: "t".repeat(16),
      AWS_ENDPOINT_URL_RDS_DATA: server.endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
    };
    const code = await main(args, { out: (t) => out.push(t), err: (t) => err.push(t), env });
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  }

  beforeAll(async () => {
    // Region, credentials and endpoint reach the SDK clients through kwc's env object (above).
    db = await createTestDb(engine, "climig");
    await db.createNodeTable("aw_mig");
    server = await startDataApiServer({ targets: [testDbTarget(db)] });
    files[0] = fleetFile(0);
    files[1] = fleetFile(1);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it("nodes check recommends the migration; migrate builds it (idempotent); unmigrate removes it", async () => {
    const before = await kwc(["nodes", "check", "--json"]);
    const [node] = JSON.parse(before.stdout).nodes;
    expect(node.peerIndex).toBe("absent");
    expect(node.warnings.join("\n")).toMatch(/no valid peer index .*run kwc db migrate/);

    const dry = await kwc(["db", "migrate", "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toBe(
      migrateStatements(dialectFor(engine), "aw_mig")
        .map((s) => `${s};`)
        .join("\n"),
    );

    for (const expected of ["absent -> valid", "valid -> valid"]) {
      const r = await kwc(["db", "migrate"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`aw_mig: peer index ${peerIndexName(engine, "aw_mig")} ${expected}`);
    }
    const after = await kwc(["nodes", "check", "--json"]);
    expect(JSON.parse(after.stdout).nodes[0].peerIndex).toBe("valid");

    const un = await kwc(["db", "unmigrate", "--json"]);
    expect(un.code).toBe(0);
    expect(JSON.parse(un.stdout).results[0]).toMatchObject({ before: "valid", after: "absent" });
  });

  it("refuses on PostgreSQL while a node runs presence in notifier mode, unless --allow-stall", async () => {
    const refused = await kwc(["db", "migrate"], 1);
    if (engine === "mysql") {
      // MariaDB / MySQL build online without the notifier's table lock: no refusal.
      expect(refused.code).toBe(0);
      await kwc(["db", "unmigrate"], 1);
      return;
    }
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/refusing to build the peer index on aw_mig now/);
    expect(refused.stderr).toMatch(/notifier mode \(notifier_processes=1, from its config\)/);
    expect(JSON.parse((await kwc(["nodes", "check", "--json"], 1)).stdout).nodes[0].peerIndex).toBe("absent");
    const forced = await kwc(["db", "migrate", "--allow-stall"], 1);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/warning \(--allow-stall\): node n1 runs presence in notifier mode/);
    expect(forced.stdout).toContain("absent -> valid");
  });
});
