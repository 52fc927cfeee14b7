import { Arn, Stack, Token } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import * as ssm from "aws-cdk-lib/aws-ssm";
import { Construct } from "constructs";
import type { z } from "zod";
import { DEFAULT_NOTIFY_FAILURE_CODES, NodeConfigSchema, secretRefNames } from "#core/fleet.ts";
import { acknowledge } from "./acknowledge.ts";
import type { DatabaseEngine } from "./database.ts";
import { ProblemList } from "./validation.ts";

/** A standard SSM parameter holds at most 4 KB. */
export const STANDARD_PARAMETER_MAX_BYTES = 4096;

/**
 * One node, as the worker's fleet schema (lambdas/core/fleet.ts) reads it. `tokenSecret` may be
 * left out: the stack's generated JSON-RPC token secret is used.
 */
export type FleetNodeInput = Omit<z.input<typeof NodeConfigSchema>, "tokenSecret"> & {
  readonly tokenSecret?: string;
};

export interface FleetConfigProps {
  /** SSM path the functions read with GetParametersByPath. @default "/kwc/fleet" */
  readonly path?: string;
  readonly database: { engine: DatabaseEngine; resourceArn: string; secretArn: string; name: string };
  /** NOTIFY reply codes that mean "this watcher is gone". @default DEFAULT_NOTIFY_FAILURE_CODES (lambdas/core/fleet.ts) */
  readonly notifyFailureCodes?: number[];
  /** Nodes to write now; more can be added later with `aws ssm put-parameter`. @default [] */
  readonly nodes?: FleetNodeInput[];
  /**
   * Existing secrets holding the nodes' JSON-RPC Bearer tokens (full ARNs).
   * @default - one generated secret shared by the fleet
   */
  readonly rpcTokenSecretArns?: string[];
  /**
   * Secrets no JSON-RPC token may be (the database's admin and runtime secrets); unresolved
   * tokens are checked by the worker's fleet schema instead.
   * @default []
   */
  readonly forbiddenTokenSecretArns?: string[];
}

const PATH = /^(\/[A-Za-z0-9_.-]+)+$/;

export function validateFleetConfigProps(props: Omit<FleetConfigProps, "database">): readonly string[] {
  const problems = new ProblemList();
  const path = props.path ?? "/kwc/fleet";
  problems.require(
    PATH.test(path) && !path.startsWith("/aws"),
    `fleet config path "${path}" is not a valid SSM path`,
  );
  const ids = (props.nodes ?? []).map((node) => node.id);
  const duplicates = ids.filter((id, index) => ids.indexOf(id) !== index);
  problems.require(
    duplicates.length === 0,
    `node ids must be unique (repeated: ${[...new Set(duplicates)].join(", ")})`,
  );
  for (const node of props.nodes ?? []) {
    const parsed = NodeConfigSchema.safeParse({
      ...node,
      tokenSecret: node.tokenSecret ?? "secretsmanager:generated",
    });
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        problems.require(false, `node "${node.id}": ${issue.path.join(".") || "(node)"}: ${issue.message}`);
      }
    }
    const bytes = Buffer.byteLength(JSON.stringify(node));
    problems.require(
      bytes < STANDARD_PARAMETER_MAX_BYTES - 512,
      `node "${node.id}" config is ${bytes} bytes; a standard parameter holds 4 KB (with room for the secret reference)`,
    );
  }
  const codes = props.notifyFailureCodes ?? [];
  problems.require(
    codes.every((code) => Number.isInteger(code) && code >= 300 && code <= 699),
    "notifyFailureCodes must be SIP final failure codes (300-699)",
  );
  for (const arn of props.rpcTokenSecretArns ?? []) {
    problems.require(
      arn.startsWith("arn:") && arn.includes(":secretsmanager:"),
      `"${arn}" is not a secret ARN`,
    );
  }
  const forbidden = (props.forbiddenTokenSecretArns ?? []).filter((arn) => !Token.isUnresolved(arn));
  const tokenRefs = [
    ...(props.nodes ?? []).flatMap((node) =>
      node.tokenSecret ? [{ what: `node "${node.id}" tokenSecret`, ref: node.tokenSecret }] : [],
    ),
    ...(props.rpcTokenSecretArns ?? []).map((arn) => ({
      what: "rpcTokenSecretArns",
      ref: `secretsmanager:${arn}`,
    })),
  ];
  for (const { what, ref } of tokenRefs) {
    problems.require(
      !forbidden.some((arn) => secretRefNames(ref, arn)),
      `${what} names a database secret; a node's JSON-RPC token needs a secret of its own`,
    );
  }
  return problems.all;
}

/**
 * The fleet config as STANDARD SSM parameters under one path: `<path>/global` and one
 * `<path>/nodes/<id>` per node (each far below 4 KB, so a 200-node fleet fits, free of charge),
 * plus the JSON-RPC token secret. Only references reach the functions' environment.
 */
export class FleetConfig extends Construct {
  readonly path: string;
  /** `ssm-path:<path>`, the value of KWC_FLEET_CONFIG. */
  readonly reference: string;
  readonly globalParameter: ssm.StringParameter;
  readonly nodeParameters: ssm.StringParameter[] = [];
  readonly rpcTokenSecrets: secretsmanager.ISecret[];

  constructor(scope: Construct, id: string, props: FleetConfigProps) {
    super(scope, id);
    const problems = new ProblemList();
    problems.add(validateFleetConfigProps(props));
    problems.throwIfAny(`FleetConfig ${this.node.path}`);

    this.path = props.path ?? "/kwc/fleet";
    this.reference = `ssm-path:${this.path}`;
    const stack = Stack.of(this);

    if (props.rpcTokenSecretArns && props.rpcTokenSecretArns.length > 0) {
      this.rpcTokenSecrets = props.rpcTokenSecretArns.map((arn, index) =>
        secretsmanager.Secret.fromSecretCompleteArn(this, `RpcTokenSecret${index}`, arn),
      );
    } else {
      const generated = new secretsmanager.Secret(this, "RpcTokenSecret", {
        description:
          "Bearer token of Kamailio's JSON-RPC endpoint (the cfg reads it from $env(KWC_RPC_TOKEN))",
        generateSecretString: { passwordLength: 48, excludePunctuation: true },
      });
      acknowledge(
        generated,
        "AwsSolutions-SMG4",
        "The same token is configured on every Kamailio node through its environment; rotating it is a coordinated fleet change the operator schedules, not an automatic one.",
      );
      this.rpcTokenSecrets = [generated];
    }
    const defaultTokenReference = `secretsmanager:${this.rpcTokenSecrets[0]?.secretArn}`;

    this.globalParameter = new ssm.StringParameter(this, "Global", {
      parameterName: `${this.path}/global`,
      description: "kamailio-watcher-cleanup: fleet-wide settings (database, NOTIFY failure codes)",
      tier: ssm.ParameterTier.STANDARD,
      stringValue: stack.toJsonString({
        version: 1,
        database: props.database,
        notifyFailureCodes: props.notifyFailureCodes ?? [...DEFAULT_NOTIFY_FAILURE_CODES],
      }),
    });
    for (const node of props.nodes ?? []) {
      this.nodeParameters.push(
        new ssm.StringParameter(this, `Node-${node.id}`, {
          parameterName: `${this.path}/nodes/${node.id}`,
          description: `kamailio-watcher-cleanup: node ${node.id}`,
          tier: ssm.ParameterTier.STANDARD,
          stringValue: stack.toJsonString({
            ...node,
            tokenSecret: node.tokenSecret ?? defaultTokenReference,
          }),
        }),
      );
    }
  }

  /** Read the whole path (GetParametersByPath) and the JSON-RPC tokens. */
  grantRead(grantee: lambda.IFunction): void {
    const stack = Stack.of(this);
    const pathArn = Arn.format(
      { service: "ssm", resource: "parameter", resourceName: this.path.slice(1) },
      stack,
    );
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["ssm:GetParametersByPath", "ssm:GetParameters", "ssm:GetParameter"],
        resources: [pathArn, `${pathArn}/*`],
      }),
    );
    for (const secret of this.rpcTokenSecrets) secret.grantRead(grantee);
    const rendered = (value: string, token: string) => (Token.isUnresolved(value) ? token : value);
    const subtree = `arn:${rendered(stack.partition, "<AWS::Partition>")}:ssm:${rendered(stack.region, "<AWS::Region>")}:${rendered(stack.account, "<AWS::AccountId>")}:parameter${this.path}/*`;
    acknowledge(
      grantee,
      `AwsSolutions-IAM5[Resource::${subtree}]`,
      "The fleet config is one parameter per node under one path; the wildcard is that path's subtree, read with GetParametersByPath.",
    );
  }
}
