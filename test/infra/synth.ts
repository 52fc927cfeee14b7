/**
 * Builds the stack in-process for template tests, with bundling skipped and a fixture entry for
 * every handler, so these tests neither run esbuild nor depend on the handler files.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CfnGuardValidator } from "@cdklabs/cdk-validator-cfnguard";
import { App, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { InvalidPropsError } from "../../infra/constructs/validation.ts";
import { KamailioWatcherCleanupStack, type KamailioWatcherCleanupStackProps } from "../../infra/stack.ts";

const fixture = fileURLToPath(new URL("./fixtures/handler.ts", import.meta.url));

export const IMPORTED_CLUSTER_ARN = "arn:aws:rds:eu-west-1:123456789012:cluster:kamailio-fleet";
export const IMPORTED_SECRET_ARN =
  "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kamailio-dataapi-AbC123";
export const IMPORTED_RUNTIME_SECRET_ARN =
  "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kamailio-runtime-XyZ789";
export const IMPORTED_VPC = {
  vpcId: "vpc-0a1b2c3d4e5f60718",
  vpcCidrBlock: "10.20.0.0/16",
  availabilityZones: ["eu-west-1a", "eu-west-1b"],
  privateSubnetIds: ["subnet-0aaa1111bbbb2222c", "subnet-0ddd3333eeee4444f"],
};

export function buildStack(props: KamailioWatcherCleanupStackProps = {}): {
  stack: KamailioWatcherCleanupStack;
  template: Template;
} {
  const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
  const stack = new KamailioWatcherCleanupStack(app, "Kwc", {
    ...props,
    handlerEntries: { worker: fixture, reconciler: fixture, cleanup: fixture, "ingest-authorizer": fixture },
  });
  return { stack, template: Template.fromStack(stack) };
}

/** cdk-nag AwsSolutions findings that are not acknowledged in code, as "rule at path" lines. */
export function unacknowledgedNagFindings(stack: KamailioWatcherCleanupStack): string[] {
  const report = new AwsSolutionsChecks().validateScope(stack);
  return report.violations.flatMap((violation) =>
    violation.violatingResources.map((resource) => `${violation.ruleName} at ${resource.constructPath}`),
  );
}

type Statement = { Effect: string; Action: string | string[]; Resource: unknown };

/** Every IAM statement of every inline and managed policy in the template. */
export function allPolicyStatements(template: Template): Statement[] {
  const policies = {
    ...template.findResources("AWS::IAM::Policy"),
    ...template.findResources("AWS::IAM::ManagedPolicy"),
  };
  return Object.values(policies).flatMap(
    (policy) => (policy.Properties.PolicyDocument.Statement as Statement[]) ?? [],
  );
}

export const actionsOf = (statement: Statement): string[] =>
  Array.isArray(statement.Action) ? statement.Action : [statement.Action];

export interface PolicyViolation {
  rule: string;
  paths: string[];
}

/**
 * Synthesizes `app` (policy-validation plugins attached) into a temporary directory and returns
 * the unacknowledged violations of every plugin from CDK's validation report. The report, not
 * whether synth threw: cdk-validator-cfnguard 0.0.62 reports violations with conclusion
 * "success" when it cannot map one to a construct, so synth alone would pass them.
 */
export function synthPolicyViolations(app: App): PolicyViolation[] {
  try {
    app.synth();
  } catch (err) {
    if (!/ValidationFailed|Validation failed/.test(String(err))) throw err;
  }
  const reportPath = join(app.outdir, "validation-report.json");
  if (!existsSync(reportPath)) return [];
  const report = JSON.parse(readFileSync(reportPath, "utf8")) as {
    pluginReports: { violations: { ruleName: string; violatingConstructs: { constructPath: string }[] }[] }[];
  };
  return report.pluginReports.flatMap((plugin) =>
    plugin.violations.map((v) => ({
      rule: v.ruleName,
      paths: v.violatingConstructs.map((c) => c.constructPath),
    })),
  );
}

/** An App with only the cfn-guard Control Tower validation, writing into a fresh temp dir. */
export function guardedApp(): App {
  const app = new App({
    context: { "aws:cdk:bundling-stacks": [] },
    outdir: mkdtempSync(join(tmpdir(), "kwc-guard-")),
  });
  Validations.of(app).addPlugins(new CfnGuardValidator({ controlTowerRulesEnabled: true }));
  return app;
}

/** The problems a builder's props validation reports (it must refuse them). */
export function problemsOf(build: () => unknown): readonly string[] {
  try {
    build();
  } catch (error) {
    if (error instanceof InvalidPropsError) return error.problems;
    throw error;
  }
  throw new Error("expected the stack to refuse its props");
}

/**
 * The stack variants every policy check (cdk-nag, cfn-guard) runs over: the defaults, each
 * database mode and engine, and the private REST ingest with an alarm e-mail.
 */
export const POLICY_VARIANTS: [string, KamailioWatcherCleanupStackProps][] = [
  ["default (new VPC, Aurora PostgreSQL, HTTP API)", {}],
  ["Aurora MySQL", { database: { mode: "create", engine: "mysql" } }],
  [
    "import mode",
    {
      database: {
        mode: "import",
        engine: "postgres",
        clusterArn: IMPORTED_CLUSTER_ARN,
        secretArn: IMPORTED_SECRET_ARN,
      },
      network: { importVpc: IMPORTED_VPC },
    },
  ],
  [
    "private REST ingest with an alarm topic and e-mail",
    { ingest: { kind: "private-rest-api" }, monitoring: { alarmTopic: true, alarmEmail: "ops@example.com" } },
  ],
];
