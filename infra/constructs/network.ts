import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { isWholeNumberIn, ProblemList } from "./validation.ts";

/** The fleet's existing VPC, given by ids so that synth needs no lookup (and no credentials). */
export interface ImportedVpcProps {
  readonly vpcId: string;
  /** @example "10.0.0.0/16" */
  readonly vpcCidrBlock: string;
  /** One per private subnet, same order. */
  readonly availabilityZones: string[];
  /** Subnets with a route to Kamailio's JSON-RPC listeners. */
  readonly privateSubnetIds: string[];
  /** Route tables of those subnets (needed only for gateway endpoints; unused here). @default - none */
  readonly privateSubnetRouteTableIds?: string[];
  /** The subnets reach AWS APIs through a NAT: no interface endpoints are created. @default false */
  readonly natAvailable?: boolean;
}

export interface NetworkProps {
  /** Import the fleet's VPC. @default - create a VPC with isolated private subnets and endpoints */
  readonly importVpc?: ImportedVpcProps;
  /** AZs of a created VPC. @default 2 */
  readonly maxAzs?: number;
  /** Kamailio JSON-RPC/status ports the functions may call (security group egress; KWC_RPC_PORT of kamailio/kamailio.cfg). @default [5081] */
  readonly kamailioRpcPorts?: number[];
  /** Retention of the created VPC's flow logs (rejected traffic). @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Also create a KMS endpoint (only when a customer-managed key is used). @default false */
  readonly kmsEndpoint?: boolean;
}

export function validateNetworkProps(props: NetworkProps): readonly string[] {
  const problems = new ProblemList();
  const imported = props.importVpc;
  if (imported) {
    problems.require(
      /^vpc-[0-9a-f]+$/.test(imported.vpcId),
      `importVpc.vpcId "${imported.vpcId}" is not a VPC id`,
    );
    problems.require(
      /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(imported.vpcCidrBlock),
      `importVpc.vpcCidrBlock "${imported.vpcCidrBlock}" is not an IPv4 CIDR`,
    );
    problems.require(
      imported.privateSubnetIds.length > 0,
      "importVpc.privateSubnetIds must name at least one subnet",
    );
    problems.require(
      imported.privateSubnetIds.every((id) => /^subnet-[0-9a-f]+$/.test(id)),
      "importVpc.privateSubnetIds must be subnet ids (subnet-…)",
    );
    problems.require(
      imported.availabilityZones.length === imported.privateSubnetIds.length,
      `importVpc.availabilityZones (${imported.availabilityZones.length}) must list one AZ per private subnet (${imported.privateSubnetIds.length})`,
    );
    problems.require(props.maxAzs === undefined, "maxAzs applies to a created VPC only, not with importVpc");
  }
  const ports = props.kamailioRpcPorts ?? [5081];
  problems.require(ports.length > 0, "kamailioRpcPorts must name at least one port");
  problems.require(
    ports.every((port) => isWholeNumberIn(port, 1, 65535)),
    `kamailioRpcPorts must be TCP ports (got ${ports.join(", ")})`,
  );
  return problems.all;
}

/**
 * Where the functions that call Kamailio run: private subnets of the fleet's VPC (imported) or of
 * a new one, a security group the operator allows on Kamailio's JSON-RPC port, and interface
 * endpoints for every AWS API the functions call when the subnets have no NAT.
 */
export class Network extends Construct {
  readonly vpc: ec2.IVpc;
  readonly functionSubnets: ec2.SubnetSelection;
  /** Allow this group on Kamailio's JSON-RPC port (ingress rule on the Kamailio side). */
  readonly functionSecurityGroup: ec2.SecurityGroup;
  readonly endpoints: ec2.InterfaceVpcEndpoint[] = [];

  constructor(scope: Construct, id: string, props: NetworkProps = {}) {
    super(scope, id);
    const problems = new ProblemList();
    problems.add(validateNetworkProps(props));
    problems.throwIfAny(`Network ${this.node.path}`);

    const imported = props.importVpc;
    if (imported) {
      this.vpc = ec2.Vpc.fromVpcAttributes(this, "Vpc", {
        vpcId: imported.vpcId,
        vpcCidrBlock: imported.vpcCidrBlock,
        availabilityZones: imported.availabilityZones,
        privateSubnetIds: imported.privateSubnetIds,
        privateSubnetRouteTableIds: imported.privateSubnetRouteTableIds,
      });
      this.functionSubnets = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    } else {
      const vpc = new ec2.Vpc(this, "Vpc", {
        maxAzs: props.maxAzs ?? 2,
        natGateways: 0,
        subnetConfiguration: [
          { name: "functions", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
        ],
      });
      vpc.addFlowLog("FlowLog", {
        trafficType: ec2.FlowLogTrafficType.REJECT,
        destination: ec2.FlowLogDestination.toCloudWatchLogs(
          new logs.LogGroup(this, "FlowLogs", {
            retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
          }),
        ),
      });
      this.vpc = vpc;
      this.functionSubnets = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
    }

    this.functionSecurityGroup = new ec2.SecurityGroup(this, "FunctionSecurityGroup", {
      vpc: this.vpc,
      description: "kamailio-watcher-cleanup functions - allow this group on the Kamailio JSON-RPC port",
      allowAllOutbound: false,
    });
    this.functionSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs");
    for (const port of props.kamailioRpcPorts ?? [5081]) {
      this.functionSecurityGroup.addEgressRule(
        ec2.Peer.ipv4(this.vpc.vpcCidrBlock),
        ec2.Port.tcp(port),
        `Kamailio JSON-RPC on ${port}`,
      );
    }

    if (!imported?.natAvailable) {
      const services: Array<[string, ec2.InterfaceVpcEndpointAwsService]> = [
        ["RdsData", ec2.InterfaceVpcEndpointAwsService.RDS_DATA],
        ["Sqs", ec2.InterfaceVpcEndpointAwsService.SQS],
        ["SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER],
        ["Ssm", ec2.InterfaceVpcEndpointAwsService.SSM],
      ];
      if (props.kmsEndpoint) services.push(["Kms", ec2.InterfaceVpcEndpointAwsService.KMS]);
      const endpointSecurityGroup = new ec2.SecurityGroup(this, "EndpointSecurityGroup", {
        vpc: this.vpc,
        description: "Interface endpoints - HTTPS from kamailio-watcher-cleanup functions only",
        allowAllOutbound: false,
      });
      endpointSecurityGroup.addIngressRule(
        this.functionSecurityGroup,
        ec2.Port.tcp(443),
        "HTTPS from functions",
      );
      for (const [name, service] of services) {
        this.endpoints.push(
          new ec2.InterfaceVpcEndpoint(this, `${name}Endpoint`, {
            vpc: this.vpc,
            service,
            subnets: this.functionSubnets,
            securityGroups: [endpointSecurityGroup],
            privateDnsEnabled: true,
            open: false,
          }),
        );
      }
    }
  }
}
