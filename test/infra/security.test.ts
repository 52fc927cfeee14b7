// Security, least privilege and retention in the template (docs/security.md): per-node ingest
// identity wired through both ingest kinds, the runtime database user instead of the admin, only
// the rds-data action the code calls, and an explicit retention on every log group and queue.
import { Duration } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import * as logs from "aws-cdk-lib/aws-logs";
import { beforeAll, describe, expect, it } from "vitest";
import {
  actionsOf,
  allPolicyStatements,
  buildStack,
  IMPORTED_CLUSTER_ARN,
  IMPORTED_RUNTIME_SECRET_ARN,
  IMPORTED_SECRET_ARN,
  IMPORTED_VPC,
  problemsOf,
} from "./synth.ts";

type Built = ReturnType<typeof buildStack>;
let built: Built;
beforeAll(() => {
  built = buildStack();
});

const importedDatabase = {
  mode: "import" as const,
  engine: "postgres" as const,
  clusterArn: IMPORTED_CLUSTER_ARN,
  secretArn: IMPORTED_SECRET_ARN,
};
const node = {
  id: "ws-a",
  rpcUrl: "https://10.20.1.5:5081/RPC",
  statusUrl: "https://10.20.1.5:5081/kwc/status",
  socketInfo: ["tcp:10.20.1.5:8080"],
  watchersTable: "active_watchers_ws_a",
  contactStyle: "nated" as const,
  kamailioVersion: "5.6.3",
  subsDbMode: 3,
  notifierProcesses: 0,
};

describe("least privilege: the runtime database user", () => {
  it("grants only rds-data:ExecuteStatement (the one action the code calls), on the cluster only", () => {
    const statements = allPolicyStatements(built.template);
    const rdsData = statements.filter((s) => actionsOf(s).some((a) => a.startsWith("rds-data:")));
    expect(rdsData).toHaveLength(3); // worker, reconciler, on-demand cleanup
    for (const statement of rdsData) {
      expect(actionsOf(statement)).toEqual(["rds-data:ExecuteStatement"]);
      expect(statement.Resource).toEqual(built.stack.resolve(built.stack.database.clusterArn));
    }
  });

  it("creates the runtime user's secret (kwc_runtime) and gives the functions that one, never the admin's", () => {
    const { stack, template } = built;
    template.hasResourceProperties("AWS::SecretsManager::Secret", {
      GenerateSecretString: Match.objectLike({
        SecretStringTemplate: JSON.stringify({ username: "kwc_runtime" }),
        GenerateStringKey: "password",
        ExcludeCharacters: Match.stringLikeRegexp("'"),
      }),
    });
    const runtime = stack.resolve(stack.database.runtimeSecret.secretArn);
    const admin = stack.resolve(stack.database.secretArn);
    expect(runtime).not.toEqual(admin);
    const reads = allPolicyStatements(template).filter((s) =>
      actionsOf(s).includes("secretsmanager:GetSecretValue"),
    );
    expect(reads.filter((s) => JSON.stringify(s.Resource) === JSON.stringify(runtime))).toHaveLength(3);
    expect(reads.filter((s) => JSON.stringify(s.Resource) === JSON.stringify(admin))).toHaveLength(0);
    // The fleet config names the runtime secret: that is what the functions pass to the Data API.
    template.hasResourceProperties("AWS::SSM::Parameter", {
      Name: "/kwc/fleet/global",
      Value: { "Fn::Join": ["", Match.arrayWith([runtime])] },
    });
  });

  it("imports a runtime secret, and refuses one that is the admin secret or malformed, and a bad user name", () => {
    const imported = buildStack({
      database: { ...importedDatabase, runtimeSecretArn: IMPORTED_RUNTIME_SECRET_ARN },
      network: { importVpc: IMPORTED_VPC },
    });
    imported.template.hasResourceProperties("AWS::SSM::Parameter", {
      Name: "/kwc/fleet/global",
      Value: Match.stringLikeRegexp("kamailio-runtime-XyZ789"),
    });
    expect(
      problemsOf(() =>
        buildStack({
          database: { ...importedDatabase, runtimeSecretArn: IMPORTED_SECRET_ARN },
          network: { importVpc: IMPORTED_VPC },
        }),
      ),
    ).toEqual([expect.stringContaining("runtimeSecretArn must not be the admin secret")]);
    expect(
      problemsOf(() =>
        buildStack({
          database: { mode: "create", runtimeSecretArn: "kamailio-runtime", runtimeUsername: "Bob-1" },
        }),
      ),
    ).toEqual([
      expect.stringContaining('runtimeUsername "Bob-1" must match'),
      expect.stringContaining('runtimeSecretArn "kamailio-runtime" is not a full Secrets Manager ARN'),
    ]);
    expect(
      problemsOf(() => buildStack({ database: { mode: "create", runtimeUsername: "kwc_admin" } })),
    ).toEqual([expect.stringContaining("runtimeUsername must not be the admin user kwc_admin")]);
  });

  it("refuses a fleet node whose tokenSecret names a database secret (by ARN, by name), before building", () => {
    const name = IMPORTED_SECRET_ARN.split(":secret:")[1] as string;
    for (const tokenSecret of [
      `secretsmanager:${IMPORTED_SECRET_ARN}`,
      `secretsmanager:${name.slice(0, -7)}`,
    ]) {
      expect(
        problemsOf(() =>
          buildStack({
            database: importedDatabase,
            network: { importVpc: IMPORTED_VPC },
            fleet: { nodes: [{ ...node, tokenSecret }] },
          }),
        ),
      ).toEqual([expect.stringContaining('node "ws-a" tokenSecret names a database secret')]);
    }
    expect(
      problemsOf(() =>
        buildStack({
          database: { mode: "create", runtimeSecretArn: IMPORTED_RUNTIME_SECRET_ARN },
          fleet: { rpcTokenSecretArns: [IMPORTED_RUNTIME_SECRET_ARN] },
        }),
      ),
    ).toEqual([expect.stringContaining("rpcTokenSecretArns names a database secret")]);
  });
});

describe("per-node ingest identity", () => {
  it("HTTP API: the authorizer reads the keys secret, which starts mapping no node (fail closed)", () => {
    const { stack, template } = built;
    template.hasResourceProperties("AWS::SecretsManager::Secret", {
      Description: Match.stringLikeRegexp("per-node x-kwc-key"),
      SecretString: "{}",
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: {
        Variables: Match.objectLike({
          KWC_INGEST_KEYS_SECRET_ARN: stack.resolve(stack.ingest.ingestKeysSecret.secretArn),
        }),
      },
    });
  });

  it("private REST API: the integration template sets kwc-node from the authorizer context", () => {
    const { template } = buildStack({
      ingest: {
        kind: "private-rest-api",
        ingestKeysSecretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kwc-ingest-keys-AbC123",
      },
    });
    template.hasResourceProperties("AWS::ApiGateway::Method", {
      Integration: Match.objectLike({
        RequestTemplates: {
          "application/json": Match.stringLikeRegexp(
            "MessageAttribute\\.1\\.Name=kwc-node&.*StringValue=\\$util\\.urlEncode\\(\\$context\\.authorizer\\.node\\)",
          ),
          "application/x-www-form-urlencoded": Match.stringLikeRegexp("MessageAttribute\\.1\\.Name=kwc-node"),
        },
      }),
    });
    // Imported keys: no secret of its own is created for them.
    template.resourcePropertiesCountIs(
      "AWS::SecretsManager::Secret",
      { Description: Match.stringLikeRegexp("per-node x-kwc-key") },
      0,
    );
    expect(problemsOf(() => buildStack({ ingest: { ingestKeysSecretArn: "kwc-keys" } }))).toEqual([
      expect.stringContaining("ingestKeysSecretArn must be a complete secret ARN"),
    ]);
  });
});

describe("retention (audit records, DLQ bodies and logs hold watcher URIs and client IPs)", () => {
  it("sets it on every log group, on the RDS log groups, and on every queue, from the props", () => {
    const { template } = buildStack({
      logRetention: logs.RetentionDays.ONE_WEEK,
      queue: { retentionPeriod: Duration.days(2), deadLetterRetentionPeriod: Duration.days(7) },
    });
    const groups = template.findResources("AWS::Logs::LogGroup");
    expect(Object.keys(groups).length).toBeGreaterThanOrEqual(7);
    for (const group of Object.values(groups)) expect(group.Properties.RetentionInDays).toBe(7);
    // The log group RDS would create with no expiry exists before the writer instance publishes to it.
    const [rdsGroup] = Object.entries(groups).filter(([, g]) =>
      JSON.stringify(g.Properties.LogGroupName ?? "").includes("/aws/rds/cluster/"),
    );
    expect(JSON.stringify(rdsGroup?.[1].Properties.LogGroupName)).toMatch(/\/postgresql"/);
    const writer = Object.values(template.findResources("AWS::RDS::DBInstance"))[0];
    expect(writer?.DependsOn).toContain(rdsGroup?.[0]);
    template.resourceCountIs("Custom::LogRetention", 0);
    const queues = Object.values(template.findResources("AWS::SQS::Queue"));
    // the events queue and the follow-up queue, and their DLQs
    expect(queues.map((q) => q.Properties.MessageRetentionPeriod).sort()).toEqual([
      172_800, 172_800, 604_800, 604_800,
    ]);
  });
});
