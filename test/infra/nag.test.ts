import { describe, expect, it } from "vitest";
import type { KamailioWatcherCleanupStackProps } from "../../infra/stack.ts";
import { buildStack, POLICY_VARIANTS, unacknowledgedNagFindings } from "./synth.ts";

describe("cdk-nag AwsSolutions: every finding is fixed or acknowledged in code with a reason", () => {
  it.each<[string, KamailioWatcherCleanupStackProps]>([
    ...POLICY_VARIANTS,
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
