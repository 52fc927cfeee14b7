import { describe, expect, it } from "vitest";
import {
  buildStack,
  IMPORTED_CLUSTER_ARN,
  IMPORTED_SECRET_ARN,
  IMPORTED_VPC,
  unacknowledgedNagFindings,
} from "./synth.ts";

describe("cdk-nag AwsSolutions: every finding is fixed or acknowledged in code with a reason", () => {
  it.each([
    ["default (new VPC, Aurora PostgreSQL, HTTP API)", {}],
    ["Aurora MySQL", { database: { mode: "create" as const, engine: "mysql" as const } }],
    [
      "import mode",
      {
        database: {
          mode: "import" as const,
          engine: "postgres" as const,
          clusterArn: IMPORTED_CLUSTER_ARN,
          secretArn: IMPORTED_SECRET_ARN,
        },
        network: { importVpc: IMPORTED_VPC },
      },
    ],
    [
      "private REST ingest with an alarm topic",
      { ingest: { kind: "private-rest-api" as const }, monitoring: { alarmTopic: true } },
    ],
    ["account and region set", { env: { account: "123456789012", region: "eu-west-1" } }],
  ])("%s", (_name, props) => {
    const { stack } = buildStack(props);
    expect(unacknowledgedNagFindings(stack)).toEqual([]);
  });

  it("control: the checker does report findings when the acknowledgements are missing", async () => {
    const { App, Stack } = await import("aws-cdk-lib");
    const sqs = await import("aws-cdk-lib/aws-sqs");
    const stack = new Stack(new App(), "Bare");
    new sqs.Queue(stack, "Plain");
    expect(unacknowledgedNagFindings(stack as never).join("\n")).toMatch(/AwsSolutions-SQS3/);
  });
});
