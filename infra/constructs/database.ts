import { RemovalPolicy } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as rds from "aws-cdk-lib/aws-rds";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { acknowledge } from "./acknowledge.ts";
import { ProblemList } from "./validation.ts";

export type DatabaseEngine = "postgres" | "mysql";

/** The fleet's existing Aurora cluster (the usual case): Data API must already be enabled. */
export interface ImportedDatabaseProps {
  readonly mode: "import";
  readonly engine: DatabaseEngine;
  /** @example "arn:aws:rds:eu-west-1:123456789012:cluster:kamailio" */
  readonly clusterArn: string;
  /** Secret the Data API uses to log in (full ARN, with its random suffix). */
  readonly secretArn: string;
  /** Database that holds Kamailio's tables. @default "kamailio" */
  readonly databaseName?: string;
}

/** A new Aurora Serverless v2 cluster with the Data API enabled (demos, greenfield fleets). */
export interface CreatedDatabaseProps {
  readonly mode: "create";
  /** @default "postgres" */
  readonly engine?: DatabaseEngine;
  /** @default "kamailio" */
  readonly databaseName?: string;
  /** ACUs; 0 lets the cluster pause when idle (the worker retries DatabaseResumingException). @default 0 */
  readonly minCapacity?: number;
  /** @default 4 */
  readonly maxCapacity?: number;
  /** @default true */
  readonly deletionProtection?: boolean;
}

export type DatabaseProps = (ImportedDatabaseProps | CreatedDatabaseProps) & {
  /** VPC of a created cluster (ignored for an imported one). */
  readonly vpc?: ec2.IVpc;
  /** @default - the VPC's isolated/private subnets */
  readonly vpcSubnets?: ec2.SubnetSelection;
};

/** What `DatabaseCluster.grantDataApiAccess` grants; the same for an imported cluster. */
const DATA_API_ACTIONS = [
  "rds-data:BatchExecuteStatement",
  "rds-data:BeginTransaction",
  "rds-data:CommitTransaction",
  "rds-data:ExecuteStatement",
  "rds-data:RollbackTransaction",
];

const CLUSTER_ARN = /^arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:cluster:[A-Za-z][A-Za-z0-9-]{0,62}$/;
const SECRET_ARN =
  /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;
const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function validateDatabaseProps(props: DatabaseProps): readonly string[] {
  const problems = new ProblemList();
  const name = props.databaseName ?? "kamailio";
  problems.require(DATABASE_NAME.test(name), `databaseName "${name}" is not a plain SQL identifier`);
  if (props.mode === "import") {
    problems.require(
      CLUSTER_ARN.test(props.clusterArn),
      `clusterArn "${props.clusterArn}" is not an Aurora cluster ARN`,
    );
    problems.require(
      SECRET_ARN.test(props.secretArn),
      `secretArn "${props.secretArn}" is not a full Secrets Manager ARN (with its 6-character suffix)`,
    );
  } else {
    const min = props.minCapacity ?? 0;
    const max = props.maxCapacity ?? 4;
    problems.require(
      min >= 0 && max >= 1 && max <= 256,
      "capacity must be minCapacity ≥ 0, 1 ≤ maxCapacity ≤ 256",
    );
    problems.require(min <= max, `minCapacity (${min}) must not exceed maxCapacity (${max})`);
  }
  return problems.all;
}

/**
 * The Aurora cluster the workers reach through the RDS Data API: imported by ARN + secret ARN, or
 * created (Serverless v2, PostgreSQL or MySQL) with the Data API on. Access is granted with
 * `grantDataApiAccess`, scoped to this cluster and its secret.
 */
export class Database extends Construct {
  readonly engine: DatabaseEngine;
  readonly clusterArn: string;
  readonly secretArn: string;
  readonly databaseName: string;
  /** Set when this construct created the cluster. */
  readonly cluster?: rds.DatabaseCluster;
  /** Unset for an imported cluster: its ARN may name another account or region than the stack's. */
  private readonly dataApi?: rds.IDatabaseCluster;
  private readonly secret: secretsmanager.ISecret;

  constructor(scope: Construct, id: string, props: DatabaseProps) {
    super(scope, id);
    const problems = new ProblemList();
    problems.add(validateDatabaseProps(props));
    problems.require(props.mode === "import" || props.vpc !== undefined, "a created cluster needs a vpc");
    problems.throwIfAny(`Database ${this.node.path}`);

    this.databaseName = props.databaseName ?? "kamailio";
    if (props.mode === "import") {
      this.engine = props.engine;
      this.secret = secretsmanager.Secret.fromSecretCompleteArn(this, "Secret", props.secretArn);
      this.clusterArn = props.clusterArn;
      this.secretArn = props.secretArn;
      return;
    }

    this.engine = props.engine ?? "postgres";
    const vpc = props.vpc as ec2.IVpc;
    const cluster = new rds.DatabaseCluster(this, "Cluster", {
      engine:
        this.engine === "postgres"
          ? rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_6 })
          : rds.DatabaseClusterEngine.auroraMysql({ version: rds.AuroraMysqlEngineVersion.VER_3_08_0 }),
      credentials: rds.Credentials.fromGeneratedSecret(this.engine === "postgres" ? "kwc_admin" : "kwcadmin"),
      defaultDatabaseName: this.databaseName,
      writer: rds.ClusterInstance.serverlessV2("Writer"),
      serverlessV2MinCapacity: props.minCapacity ?? 0,
      serverlessV2MaxCapacity: props.maxCapacity ?? 4,
      enableDataApi: true,
      iamAuthentication: true,
      storageEncrypted: true,
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: RemovalPolicy.SNAPSHOT,
      vpc,
      vpcSubnets: props.vpcSubnets,
      // Every log type the engine has (cfn-guard CT.RDS.PR.25). Aurora MySQL writes the audit and
      // general logs only when the parameter group turns them on (off by default), so exporting
      // them costs nothing until an operator does.
      cloudwatchLogsExports:
        this.engine === "postgres" ? ["postgresql"] : ["audit", "error", "general", "slowquery"],
    });
    this.cluster = cluster;
    this.dataApi = cluster;
    this.secret = cluster.secret as secretsmanager.ISecret;
    this.clusterArn = cluster.clusterArn;
    this.secretArn = this.secret.secretArn;

    acknowledge(
      cluster,
      "AwsSolutions-RDS11",
      "Only the RDS Data API talks to the cluster (no security group ingress rule exists); a non-default port would hide nothing.",
    );
    acknowledge(
      cluster,
      "AwsSolutions-SMG4",
      "The Data API reads this secret on every call; rotation is left to the operator (hosted rotation needs a VPC Lambda and a Secrets Manager endpoint they may already run).",
    );
    if (this.engine === "mysql") {
      acknowledge(
        cluster,
        "AwsSolutions-RDS14",
        "Backtrack is not available on Aurora Serverless v2; point-in-time restore covers the presence tables, which Kamailio rebuilds from SUBSCRIBEs anyway.",
      );
      acknowledge(
        cluster,
        "AwsSolutions-RDS16",
        "error and slowquery logs are exported; general and audit logs would log every Data API statement of a high-churn presence table at a cost out of proportion to its value.",
      );
    }
  }

  /** The five rds-data actions on this cluster's exact ARN and read access to its secret, nothing more. */
  grantDataApiAccess(grantee: iam.IGrantable): void {
    if (this.dataApi) {
      this.dataApi.grantDataApiAccess(grantee);
      return;
    }
    iam.Grant.addToPrincipal({ grantee, actions: DATA_API_ACTIONS, resourceArns: [this.clusterArn] });
    this.secret.grantRead(grantee);
  }
}
