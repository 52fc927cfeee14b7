import { Validations } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

/**
 * Acknowledge one cdk-nag finding on a construct (and its children) with the reason it is
 * acceptable here. `finding` is a rule id (`AwsSolutions-SMG4`) or a rule id with its finding
 * (`AwsSolutions-IAM5[Resource::*]`); never a blanket stack-wide suppression.
 */
export function acknowledge(scope: IConstruct, finding: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: finding, reason });
}
