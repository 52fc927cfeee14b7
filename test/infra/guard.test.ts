/**
 * cfn-guard with the AWS Control Tower rules (@cdklabs/cdk-validator-cfnguard), as createApp runs
 * it on every synth: every finding is fixed in a construct or acknowledged with its reason
 * (infra/constructs/policy-acknowledgements.ts, docs/deploy.md "Policy validation").
 */

import { fileURLToPath } from "node:url";
import { Stack } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as logs from "aws-cdk-lib/aws-logs";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { describe, expect, it } from "vitest";
import { createApp } from "../../infra/context.ts";
import { KamailioWatcherCleanupStack, type KamailioWatcherCleanupStackProps } from "../../infra/stack.ts";
import { guardedApp, POLICY_VARIANTS, synthPolicyViolations } from "./synth.ts";

const fixture = fileURLToPath(new URL("./fixtures/handler.ts", import.meta.url));
const handlerEntries = {
  worker: fixture,
  reconciler: fixture,
  cleanup: fixture,
  "ingest-authorizer": fixture,
};

describe("cfn-guard Control Tower rules: every finding fixed or acknowledged with a reason", () => {
  it.each<[string, KamailioWatcherCleanupStackProps]>([
    ...POLICY_VARIANTS,
    ["alarms without the topic (operator-wired actions)", { monitoring: { alarmTopic: false } }],
  ])("%s", (_name, props) => {
    const app = guardedApp();
    new KamailioWatcherCleanupStack(app, "Kwc", { ...props, handlerEntries });
    expect(synthPolicyViolations(app)).toEqual([]);
  });

  it("control: the same validation reports a bare alarm without an action and a short-lived log group", () => {
    const app = guardedApp();
    const stack = new Stack(app, "Bare");
    new cloudwatch.Alarm(stack, "NoAction", {
      metric: new sqs.Queue(stack, "Q").metricApproximateAgeOfOldestMessage(),
      threshold: 1,
      evaluationPeriods: 1,
    });
    new logs.LogGroup(stack, "Short", { retention: logs.RetentionDays.ONE_DAY });
    const rules = synthPolicyViolations(app).map((v) => v.rule);
    expect(rules).toEqual(
      expect.arrayContaining([
        "cloudwatch_alarm_action_check",
        "cloudwatch_log_group_retention_period_check",
      ]),
    );
  });

  it("createApp attaches it: an unacknowledged finding in the app's stack is reported (and -c guard=false drops it)", () => {
    const withFinding = (context: Record<string, unknown>) => {
      const { app, stack } = createApp({
        context: { "aws:cdk:bundling-stacks": [], nag: "false", ...context },
        outdir: guardedApp().outdir,
      });
      new logs.LogGroup(stack, "Unacknowledged", { retention: logs.RetentionDays.ONE_DAY });
      return synthPolicyViolations(app).map((v) => v.rule);
    };
    expect(withFinding({})).toContain("cloudwatch_log_group_retention_period_check");
    expect(withFinding({ guard: "false" })).toEqual([]);
  });
});
