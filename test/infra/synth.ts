/**
 * Builds the stack in-process for template tests, with bundling skipped and a fixture entry for
 * every handler, so these tests neither run esbuild nor depend on the handler files.
 */
import { fileURLToPath } from "node:url";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { KamailioWatcherCleanupStack, type KamailioWatcherCleanupStackProps } from "../../infra/stack.ts";

const fixture = fileURLToPath(new URL("./fixtures/handler.ts", import.meta.url));

export const IMPORTED_CLUSTER_ARN = "arn:aws:rds:eu-west-1:123456789012:cluster:kamailio-fleet";
export const IMPORTED_SECRET_ARN =
  "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kamailio-dataapi-AbC123";
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
