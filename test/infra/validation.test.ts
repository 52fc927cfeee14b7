import { Duration } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import { buildStack, IMPORTED_CLUSTER_ARN, IMPORTED_SECRET_ARN, IMPORTED_VPC, problemsOf } from "./synth.ts";

describe("props are validated up front, with every problem in one error", () => {
  it("reports all conflicts of one stack at once", () => {
    const problems = problemsOf(() =>
      buildStack({
        queue: {
          maxReceiveCount: 2,
          retentionPeriod: Duration.days(14),
          deadLetterRetentionPeriod: Duration.days(4),
          maxMessageSizeBytes: 16_384,
        },
        worker: { maxConcurrency: 1, batchSize: 50, maxBatchingWindow: Duration.seconds(0) },
        reconcileRate: Duration.seconds(90),
        reconcileTimeout: Duration.minutes(10),
        monitoring: { alarmEmail: "not-an-address" },
      }),
    );
    expect(problems).toEqual([
      expect.stringContaining("maxReceiveCount must be a whole number from 5"),
      expect.stringContaining(
        "deadLetterRetentionPeriod (345600 s) must be longer than retentionPeriod (1209600 s)",
      ),
      expect.stringContaining("maxMessageSizeBytes must be from ENVELOPE_MAX_BYTES (61440)"),
      expect.stringContaining("batchSize must be 1-10"),
      expect.stringContaining("maxConcurrency must be 2-1000"),
      expect.stringContaining("reconcile rate must be whole minutes"),
      expect.stringContaining("reconciler timeout (600 s) must not exceed the reconcile rate (90 s)"),
      expect.stringContaining('alarmEmail "not-an-address"'),
    ]);
  });

  it("refuses an imported cluster with malformed ARNs and a created VPC", () => {
    const problems = problemsOf(() =>
      buildStack({
        database: {
          mode: "import",
          engine: "postgres",
          clusterArn: "kamailio",
          secretArn: "arn:aws:secretsmanager:x",
        },
      }),
    );
    expect(problems).toEqual([
      expect.stringContaining('clusterArn "kamailio" is not an Aurora cluster ARN'),
      expect.stringContaining("is not a full Secrets Manager ARN"),
      expect.stringContaining("import the fleet's VPC too"),
    ]);
  });

  it("refuses an imported VPC whose subnets and AZs disagree, and a created-VPC-only prop", () => {
    const problems = problemsOf(() =>
      buildStack({
        database: {
          mode: "import",
          engine: "mysql",
          clusterArn: IMPORTED_CLUSTER_ARN,
          secretArn: IMPORTED_SECRET_ARN,
        },
        network: {
          importVpc: { ...IMPORTED_VPC, availabilityZones: ["eu-west-1a"], vpcCidrBlock: "10.20.0.0" },
          maxAzs: 3,
        },
      }),
    );
    expect(problems).toEqual([
      expect.stringContaining('vpcCidrBlock "10.20.0.0" is not an IPv4 CIDR'),
      expect.stringContaining("must list one AZ per private subnet"),
      expect.stringContaining("maxAzs applies to a created VPC only"),
    ]);
  });

  it("refuses fleet nodes the worker's schema would reject, and duplicates", () => {
    const node = {
      id: "ws-a",
      rpcUrl: "http://10.20.1.5:5060/RPC",
      statusUrl: "http://10.20.1.5:5060/kwc/status",
      socketInfo: ["tcp:10.20.1.5:8080"],
      watchersTable: "active_watchers; drop table x",
      contactStyle: "nated" as const,
      kamailioVersion: "5.6.3",
      subsDbMode: 3,
      notifierProcesses: 0,
    };
    const problems = problemsOf(() => buildStack({ fleet: { nodes: [node, node] } }));
    expect(problems.some((problem) => problem.includes('node "ws-a": watchersTable'))).toBe(true);
    expect(problems.some((problem) => problem.includes("node ids must be unique (repeated: ws-a)"))).toBe(
      true,
    );
  });

  it("refuses a worker timeout whose 6× visibility exceeds SQS's limit and a Serverless v2 capacity inversion", () => {
    const problems = problemsOf(() =>
      buildStack({
        worker: { timeout: Duration.minutes(15) },
        database: { mode: "create", minCapacity: 8, maxCapacity: 2 },
      }),
    );
    expect(problems).toEqual([expect.stringContaining("minCapacity (8) must not exceed maxCapacity (2)")]);
    // 15 min × 6 = 90 min fits under 12 h: the timeout itself is fine; the capacity is the only conflict.
  });

  it("accepts the defaults (control: the same builder succeeds)", () => {
    expect(() => buildStack()).not.toThrow();
  });
});
