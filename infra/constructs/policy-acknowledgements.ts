import * as apigateway from "aws-cdk-lib/aws-apigateway";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as rds from "aws-cdk-lib/aws-rds";
import type { IConstruct } from "constructs";
import { acknowledge } from "./acknowledge.ts";

/**
 * The cfn-guard Control Tower findings this stack does not fix, each acknowledged on the
 * resources it names with the reason (CDK keeps the reason in the validation report; Guard's own
 * template suppression has no reason field). docs/deploy.md ("Policy validation") lists the same
 * reasons and what a fix would cost. Fixed in the constructs instead: CT.CLOUDWATCH.PR.1 (every
 * alarm has the alarm topic as its action), CT.SQS.PR.1 (the DLQ states its redrive policy) and
 * CT.RDS.PR.25 (the MySQL cluster exports every log type; see constructs/database.ts).
 */
export const GUARD_ACKNOWLEDGEMENTS = {
  logRetention: {
    rule: "cdk-validator-cfnguard::cloudwatch_log_group_retention_period_check",
    reason:
      "CT.CLOUDWATCH.PR.2 wants >= 1 year. These logs hold watcher URIs and client IP addresses (personal data): they are kept only as long as an operator needs to investigate (logRetention, default one month), not a year.",
  },
  logEncryption: {
    rule: "cdk-validator-cfnguard::cloudwatch_log_group_encrypted_check",
    reason:
      "CT.CLOUDWATCH.PR.3 wants a customer-managed KMS key. CloudWatch Logs already encrypts every log group at rest with AWS-owned keys; a CMK adds USD 1/month per key plus a key policy granting the logs service, and protects only against readers who already hold logs:GetLogEvents in this account.",
  },
  authorizerOutsideVpc: {
    rule: "cdk-validator-cfnguard::lambda_inside_vpc_check",
    reason:
      "CT.LAMBDA.PR.3 wants every function in a VPC. The ingest authorizer talks only to Secrets Manager and API Gateway, never to Kamailio or the database; in a VPC it would need a Secrets Manager interface endpoint (about USD 7.30/month per AZ) or NAT, and ENI cold starts on the ingest's hot path.",
  },
  authorizerPermission: {
    rule: "cdk-validator-cfnguard::lambda_function_public_access_prohibited_check",
    reason:
      "CT.LAMBDA.PR.2: false positive. The permission's principal is apigateway.amazonaws.com with a SourceArn scoped to this API's authorizer, built with Fn::Join; the rule only accepts a literal string or a local Ref/GetAtt there.",
  },
  enhancedMonitoring: {
    rule: "cdk-validator-cfnguard::rds_instance_enhanced_monitoring_enabled_check",
    reason:
      "CT.RDS.PR.2 wants Enhanced Monitoring on the created cluster. The service's load on the database is a few statements per event batch, watched through its own metrics and the Data API's; Enhanced Monitoring adds an IAM role and CloudWatch Logs ingestion (RDSOSMetrics) billed per instance. Import mode uses the operator's cluster, monitored as they choose.",
  },
  alarmsWithoutTopic: {
    rule: "cdk-validator-cfnguard::cloudwatch_alarm_action_check",
    reason:
      "CT.CLOUDWATCH.PR.1: only with monitoring.alarmTopic: false, which an operator sets to wire the alarms into their own notification path (by the alarm names); by default every alarm publishes to the stack's topic.",
  },
  restStageTracing: {
    rule: "cdk-validator-cfnguard::api_gw_xray_enabled_check",
    reason:
      "CT.APIGATEWAY.PR.2 wants X-Ray on the private REST ingest stage. Every POST is a Kamailio envelope; the access log already records each request, its status and the integration error. X-Ray bills per recorded trace beyond the free tier (USD 5 per million), which a mass disconnect would multiply.",
  },
} as const;

type Acknowledgement = (typeof GUARD_ACKNOWLEDGEMENTS)[keyof typeof GUARD_ACKNOWLEDGEMENTS];
const ack = (scope: IConstruct, { rule, reason }: Acknowledgement) => acknowledge(scope, rule, reason);

/**
 * Applies GUARD_ACKNOWLEDGEMENTS to the resources of `root` they concern, and to nothing else:
 * the VPC exemption covers only the functions inside `ingest` (the authorizer).
 */
export function acknowledgeGuardFindings(
  root: IConstruct,
  ingest: IConstruct,
  alarmsWithoutAction: readonly IConstruct[],
): void {
  for (const alarm of alarmsWithoutAction) ack(alarm, GUARD_ACKNOWLEDGEMENTS.alarmsWithoutTopic);
  for (const child of root.node.findAll()) {
    if (child instanceof logs.LogGroup) {
      ack(child, GUARD_ACKNOWLEDGEMENTS.logRetention);
      ack(child, GUARD_ACKNOWLEDGEMENTS.logEncryption);
    }
    if (child instanceof rds.DatabaseCluster) ack(child, GUARD_ACKNOWLEDGEMENTS.enhancedMonitoring);
    if (child instanceof apigateway.Stage) ack(child, GUARD_ACKNOWLEDGEMENTS.restStageTracing);
    if (child instanceof lambda.CfnPermission && child.principal === "apigateway.amazonaws.com") {
      ack(child, GUARD_ACKNOWLEDGEMENTS.authorizerPermission);
    }
  }
  for (const child of ingest.node.findAll()) {
    if (child instanceof lambda.Function) ack(child, GUARD_ACKNOWLEDGEMENTS.authorizerOutsideVpc);
  }
}
