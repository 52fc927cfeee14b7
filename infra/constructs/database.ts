import { RemovalPolicy } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
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
  /**
   * The cluster's admin (master) secret (full ARN, with its random suffix). The functions never
   * read it: it is what the DBA uses to create the runtime user (docs/security.md), and no fleet
   * config may name it as a token secret.
   */
  readonly secretArn: string;
  /** Database that holds Kamailio's tables. @default "kamailio" */
  readonly databaseName?: string;
}

/** The database user the functions run SQL as (docs/security.md, "Runtime database user"). */
export interface RuntimeUserProps {
  /**
   * An existing secret `{"username": …, "password": …}` of the runtime user (full ARN).
   * @default - a new secret with a generated password for `runtimeUsername`
   */
  readonly runtimeSecretArn?: string;
  /** User name in a created runtime secret. @default "kwc_runtime" */
  readonly runtimeUsername?: string;
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

export type DatabaseProps = (ImportedDatabaseProps | CreatedDatabaseProps) &
  RuntimeUserProps & {
    /**
     * Retention of a created cluster's exported logs (statements can carry watcher URIs).
     * @default logs.RetentionDays.ONE_MONTH
     */
    readonly logRetention?: logs.RetentionDays;
    /** VPC of a created cluster (ignored for an imported one). */
    readonly vpc?: ec2.IVpc;
    /** @default - the VPC's isolated/private subnets */
    readonly vpcSubnets?: ec2.SubnetSelection;
  };

/**
 * The only rds-data action the code calls (ExecuteStatementCommand in lambdas/adapters/data-api-store.ts:
 * every statement stands alone, no transactions, no batches). `DatabaseCluster.grantDataApiAccess`
 * would grant five, and read access to the master secret.
 */
export const DATA_API_ACTIONS = ["rds-data:ExecuteStatement"];
/** The logs a created cluster exports to CloudWatch. */
const LOG_EXPORTS = { postgres: ["postgresql"], mysql: ["audit", "error", "general", "slowquery"] } as const;
/** The admin user names of a created cluster. */
const ADMIN_USERNAME = { postgres: "kwc_admin", mysql: "kwcadmin" } as const;

const CLUSTER_ARN = /^arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:cluster:[A-Za-z][A-Za-z0-9-]{0,62}$/;
const SECRET_ARN =
  /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;
const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** Lower case: unquoted identifiers fold to it in PostgreSQL, and MySQL user names are ≤ 32 characters. */
const USER_NAME = /^[a-z_][a-z0-9_]{0,31}$/;

export function validateDatabaseProps(props: DatabaseProps): readonly string[] {
  const problems = new ProblemList();
  const name = props.databaseName ?? "kamailio";
  problems.require(DATABASE_NAME.test(name), `databaseName "${name}" is not a plain SQL identifier`);
  const username = props.runtimeUsername ?? "kwc_runtime";
  problems.require(USER_NAME.test(username), `runtimeUsername "${username}" must match ${USER_NAME.source}`);
  problems.require(
    props.runtimeSecretArn === undefined || SECRET_ARN.test(props.runtimeSecretArn),
    `runtimeSecretArn "${props.runtimeSecretArn}" is not a full Secrets Manager ARN (with its 6-character suffix)`,
  );
  if (props.mode === "import") {
    problems.require(
      props.runtimeSecretArn === undefined || props.runtimeSecretArn !== props.secretArn,
      "runtimeSecretArn must not be the admin secret (secretArn): the functions run as a user with only the runtime grants",
    );
  } else {
    const admin = ADMIN_USERNAME[props.engine ?? "postgres"];
    problems.require(username !== admin, `runtimeUsername must not be the admin user ${admin}`);
  }
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
 * created (Serverless v2, PostgreSQL or MySQL) with the Data API on. The functions run SQL as a
 * runtime user (SELECT/DELETE on the watchers tables, SELECT on `version` and `presentity`), never
 * as the admin: its secret is created here or imported, the DBA creates the user with the SQL in
 * docs/security.md. `grantDataApiAccess` grants ExecuteStatement on this cluster and read access
 * to the runtime secret, nothing more.
 */
export class Database extends Construct {
  readonly engine: DatabaseEngine;
  readonly clusterArn: string;
  /** The admin secret: never granted to a function. */
  readonly secretArn: string;
  /** The runtime user's secret: the one the functions pass to the Data API (fleet config `database.secretArn`). */
  readonly runtimeSecret: secretsmanager.ISecret;
  readonly databaseName: string;
  /** Set when this construct created the cluster. */
  readonly cluster?: rds.DatabaseCluster;
  /** Unset for an imported cluster: its ARN may name another account or region than the stack's. */

  constructor(scope: Construct, id: string, props: DatabaseProps) {
    super(scope, id);
    const problems = new ProblemList();
    problems.add(validateDatabaseProps(props));
    problems.require(props.mode === "import" || props.vpc !== undefined, "a created cluster needs a vpc");
    problems.throwIfAny(`Database ${this.node.path}`);

    this.databaseName = props.databaseName ?? "kamailio";
    this.runtimeSecret = this.createOrImportRuntimeSecret(props);
    if (props.mode === "import") {
      this.engine = props.engine;
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
      credentials: rds.Credentials.fromGeneratedSecret(ADMIN_USERNAME[this.engine]),
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
      cloudwatchLogsExports: [...LOG_EXPORTS[this.engine]],
    });
    this.cluster = cluster;
    this.clusterArn = cluster.clusterArn;
    this.exportedLogGroups(cluster, props.logRetention ?? logs.RetentionDays.ONE_MONTH);
    this.secretArn = (cluster.secret as secretsmanager.ISecret).secretArn;

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

  /** ExecuteStatement on this cluster's exact ARN and read access to the runtime secret, nothing more. */
  grantDataApiAccess(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({ grantee, actions: DATA_API_ACTIONS, resourceArns: [this.clusterArn] });
    this.runtimeSecret.grantRead(grantee);
  }

  /**
   * RDS would create the exported log groups itself, never expiring. Created here first, with a
   * retention: the writer instance (the first thing that publishes logs) waits for them. No
   * LogRetention custom resource, so no extra Lambda with logs:* on Resource *.
   */
  private exportedLogGroups(cluster: rds.DatabaseCluster, retention: logs.RetentionDays): void {
    const writer = cluster.node.findChild("Writer");
    for (const kind of LOG_EXPORTS[this.engine]) {
      const group = new logs.LogGroup(this, `Logs-${kind}`, {
        logGroupName: `/aws/rds/cluster/${cluster.clusterIdentifier}/${kind}`,
        retention,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      writer.node.addDependency(group);
    }
  }

  private createOrImportRuntimeSecret(props: DatabaseProps): secretsmanager.ISecret {
    if (props.runtimeSecretArn) {
      return secretsmanager.Secret.fromSecretCompleteArn(this, "RuntimeSecret", props.runtimeSecretArn);
    }
    const secret = new rds.DatabaseSecret(this, "RuntimeSecret", {
      username: props.runtimeUsername ?? "kwc_runtime",
      // The DBA pastes the password into CREATE USER … PASSWORD '…': no quotes or backslashes.
      excludeCharacters: ` %+~\`#$&*()|[]{}:;<>?!'/@"\\`,
    });
    acknowledge(
      secret,
      "AwsSolutions-SMG4",
      "The runtime user is created by the DBA with this password (docs/security.md); rotating it needs the same DBA step (ALTER USER), which a hosted rotation Lambda would have to do with the admin secret the stack deliberately never holds.",
    );
    return secret;
  }
}
