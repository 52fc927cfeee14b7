import { Aws, Duration, SecretValue } from "aws-cdk-lib";
import * as apigateway from "aws-cdk-lib/aws-apigateway";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import * as authorizers from "aws-cdk-lib/aws-apigatewayv2-authorizers";
import * as integrations from "aws-cdk-lib/aws-apigatewayv2-integrations";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { AUTHORIZER_NODE_CONTEXT, INGEST_KEY_HEADER } from "#core/ingest-auth.ts";
import { INGEST_NODE_ATTRIBUTE } from "#core/ingest-identity.ts";
import { acknowledge } from "./acknowledge.ts";
import { ServiceFunction } from "./service-function.ts";
import { isWholeNumberIn, ProblemList } from "./validation.ts";

/** The header Kamailio sends with every POST (`x-kwc-key: $env(KWC_INGEST_KEY)` in kamailio/kwc.cfg). */
export { INGEST_KEY_HEADER };

export type IngestKind = "http-api" | "private-rest-api";

export interface EventIngestProps {
  /** Where accepted bodies go, one message per POST. */
  readonly queue: sqs.IQueue;
  /** Absolute path of lambdas/handlers/ingest-authorizer.ts. */
  readonly authorizerEntry: string;
  /**
   * `http-api`: public HTTP API, Lambda request authorizer, direct SQS-SendMessage integration.
   * `private-rest-api`: REST API reachable only through an execute-api VPC endpoint (fleets in one VPC).
   * @default "http-api"
   */
  readonly kind?: IngestKind;
  /** Needed for `private-rest-api`: the VPC whose endpoint may call the API. @default - none */
  readonly vpc?: ec2.IVpc;
  /** Subnets of the execute-api endpoint. @default - the VPC's private subnets */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** Steady-state requests per second across the fleet. @default 200 */
  readonly throttleRateLimit?: number;
  /** @default 400 */
  readonly throttleBurstLimit?: number;
  /** How long API Gateway caches an authorizer decision per key value (max 1 h). @default Duration.minutes(5) */
  readonly authorizerCacheTtl?: Duration;
  /** Retention of the authorizer's and the access log groups (they hold node IPs). @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * An existing secret holding the per-node ingest keys, `{"<node id>": ["<key>", ...]}` (full ARN).
   * @default - a new secret whose value is `{}`: every POST is refused (403) until keys are assigned
   */
  readonly ingestKeysSecretArn?: string;
}

export function validateEventIngestProps(
  props: Omit<EventIngestProps, "queue" | "authorizerEntry" | "vpc">,
  vpcAvailable: boolean,
): readonly string[] {
  const problems = new ProblemList();
  const kind = props.kind ?? "http-api";
  problems.require(kind === "http-api" || kind === "private-rest-api", `ingest kind "${kind}" is unknown`);
  problems.require(kind !== "private-rest-api" || vpcAvailable, "a private-rest-api ingest needs a vpc");
  const rate = props.throttleRateLimit ?? 200;
  const burst = props.throttleBurstLimit ?? 400;
  problems.require(isWholeNumberIn(rate, 1, 10_000), `throttleRateLimit must be 1-10000 (got ${rate})`);
  problems.require(
    isWholeNumberIn(burst, 1, 5_000) && burst >= rate / 10,
    `throttleBurstLimit must be 1-5000 (got ${burst})`,
  );
  const ttl = (props.authorizerCacheTtl ?? Duration.minutes(5)).toSeconds();
  problems.require(isWholeNumberIn(ttl, 0, 3600), `authorizerCacheTtl must be 0-3600 s (got ${ttl})`);
  const arn = props.ingestKeysSecretArn;
  problems.require(
    arn === undefined || /^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+-[A-Za-z0-9]{6}$/.test(arn),
    `ingestKeysSecretArn must be a complete secret ARN (got "${arn}")`,
  );
  return problems.all;
}

/** One JSON line per request; the authorizer and integration errors say why a POST failed. */
const ACCESS_LOG_FIELDS = {
  requestId: "$context.requestId",
  ip: "$context.identity.sourceIp",
  time: "$context.requestTime",
  method: "$context.httpMethod",
  path: "$context.path",
  status: "$context.status",
  requestLength: "$context.requestLength",
  responseLength: "$context.responseLength",
  authorizerError: "$context.authorizer.error",
  integrationStatus: "$context.integration.status",
  integrationError: "$context.integrationErrorMessage",
};

/**
 * The authenticated node id as one SQS message attribute, from the authorizer's context. Set by
 * API Gateway, never by the caller (the body is the message body, nothing else of the request is
 * mapped), so the worker can trust it (lambdas/core/ingest-identity.ts).
 */
const NODE_ATTRIBUTE_MAPPING = JSON.stringify({
  [INGEST_NODE_ATTRIBUTE]: {
    DataType: "String",
    StringValue: `\${context.authorizer.${AUTHORIZER_NODE_CONTEXT}}`,
  },
});
const REST_SEND_MESSAGE =
  "Action=SendMessage&MessageBody=$util.urlEncode($input.body)" +
  `&MessageAttribute.1.Name=${INGEST_NODE_ATTRIBUTE}&MessageAttribute.1.Value.DataType=String` +
  `&MessageAttribute.1.Value.StringValue=$util.urlEncode($context.authorizer.${AUTHORIZER_NODE_CONTEXT})`;

/**
 * How Kamailio reaches SQS: `POST /events` with the `x-kwc-key` header. Kamailio can send a static
 * header but cannot sign SigV4, so a cached Lambda request authorizer maps the header to the node
 * it belongs to (per-node keys in Secrets Manager, compared in constant time); the body goes to
 * SQS unchanged as one message, with that node id as the `kwc-node` attribute and no Lambda in the
 * data path. 401 without the header, 403 with a wrong one, 2xx = in the queue.
 */
export class EventIngest extends Construct {
  readonly kind: IngestKind;
  /** The full URL Kamailio POSTs to. */
  readonly eventsUrl: string;
  /** The per-node keys (each node's own key is `KWC_INGEST_KEY` in its environment). */
  readonly ingestKeysSecret: secretsmanager.ISecret;
  readonly authorizerFunction: lambda.IFunction;
  readonly accessLogs: logs.LogGroup;
  readonly httpApi?: apigwv2.HttpApi;
  readonly restApi?: apigateway.RestApi;
  readonly executeApiEndpoint?: ec2.InterfaceVpcEndpoint;

  constructor(scope: Construct, id: string, props: EventIngestProps) {
    super(scope, id);
    const problems = new ProblemList();
    problems.add(validateEventIngestProps(props, props.vpc !== undefined));
    problems.throwIfAny(`EventIngest ${this.node.path}`);
    this.kind = props.kind ?? "http-api";

    this.ingestKeysSecret = this.keysSecret(props.ingestKeysSecretArn);
    const authorizer = new ServiceFunction(this, "Authorizer", {
      entry: props.authorizerEntry,
      description: `kamailio-watcher-cleanup: maps ${INGEST_KEY_HEADER} to its node in constant time`,
      timeout: Duration.seconds(10),
      memorySize: 256,
      logRetention: props.logRetention,
      environment: { KWC_INGEST_KEYS_SECRET_ARN: this.ingestKeysSecret.secretArn },
    });
    this.authorizerFunction = authorizer.function;
    this.ingestKeysSecret.grantRead(authorizer.function);

    this.accessLogs = new logs.LogGroup(this, "AccessLogs", {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    const accessLogFormat = apigateway.AccessLogFormat.custom(JSON.stringify(ACCESS_LOG_FIELDS));
    const ttl = props.authorizerCacheTtl ?? Duration.minutes(5);
    const rateLimit = props.throttleRateLimit ?? 200;
    const burstLimit = props.throttleBurstLimit ?? 400;

    if (this.kind === "http-api") {
      const api = new apigwv2.HttpApi(this, "HttpApi", {
        description: "kamailio-watcher-cleanup event ingest",
        createDefaultStage: false,
      });
      const stage = new apigwv2.HttpStage(this, "Stage", {
        httpApi: api,
        stageName: "$default",
        autoDeploy: true,
        throttle: { rateLimit, burstLimit },
        accessLogSettings: {
          destination: new apigwv2.LogGroupLogDestination(this.accessLogs),
          format: accessLogFormat,
        },
      });
      api.addRoutes({
        path: "/events",
        methods: [apigwv2.HttpMethod.POST],
        authorizer: new authorizers.HttpLambdaAuthorizer("KeyAuthorizer", authorizer.function, {
          identitySource: [`$request.header.${INGEST_KEY_HEADER}`],
          responseTypes: [authorizers.HttpLambdaResponseType.SIMPLE],
          resultsCacheTtl: ttl,
        }),
        // The whole body, not `$request.body.MessageBody` (the integration's default).
        integration: new integrations.HttpSqsIntegration("SendToQueue", {
          queue: props.queue,
          parameterMapping: new apigwv2.ParameterMapping()
            .custom("QueueUrl", props.queue.queueUrl)
            .custom("MessageBody", "$request.body")
            .custom("MessageAttributes", NODE_ATTRIBUTE_MAPPING),
        }),
      });
      this.httpApi = api;
      this.eventsUrl = `${stage.url}events`;
      return;
    }

    const vpc = props.vpc as ec2.IVpc;
    const endpoint = new ec2.InterfaceVpcEndpoint(this, "ExecuteApiEndpoint", {
      vpc,
      service: ec2.InterfaceVpcEndpointAwsService.APIGATEWAY,
      subnets: props.vpcSubnets,
      privateDnsEnabled: true,
      open: false,
    });
    // Kamailio nodes of the VPC call the API over HTTPS through this endpoint.
    endpoint.connections.allowFrom(ec2.Peer.ipv4(vpc.vpcCidrBlock), ec2.Port.tcp(443), "HTTPS from the VPC");
    acknowledge(
      endpoint,
      "AwsSolutions-EC23",
      "Ingress is HTTPS from the VPC's own CIDR only; cdk-nag cannot resolve that CloudFormation reference and treats it as open.",
    );
    this.executeApiEndpoint = endpoint;
    const sendRole = new iam.Role(this, "SendRole", {
      assumedBy: new iam.ServicePrincipal("apigateway.amazonaws.com"),
      description: "API Gateway sends ingest bodies to the events queue",
    });
    props.queue.grantSendMessages(sendRole);
    const api = new apigateway.RestApi(this, "RestApi", {
      description: "kamailio-watcher-cleanup event ingest (private)",
      endpointConfiguration: { types: [apigateway.EndpointType.PRIVATE], vpcEndpoints: [endpoint] },
      policy: new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            principals: [new iam.AnyPrincipal()],
            actions: ["execute-api:Invoke"],
            resources: ["execute-api:/*"],
            conditions: { StringEquals: { "aws:SourceVpce": endpoint.vpcEndpointId } },
          }),
        ],
      }),
      cloudWatchRole: true,
      deployOptions: {
        stageName: "v1",
        throttlingRateLimit: rateLimit,
        throttlingBurstLimit: burstLimit,
        loggingLevel: apigateway.MethodLoggingLevel.ERROR,
        accessLogDestination: new apigateway.LogGroupLogDestination(this.accessLogs),
        accessLogFormat,
      },
    });
    this.restApi = api;
    const sendMessage = REST_SEND_MESSAGE;
    const integration = new apigateway.AwsIntegration({
      service: "sqs",
      path: `${Aws.ACCOUNT_ID}/${props.queue.queueName}`,
      integrationHttpMethod: "POST",
      options: {
        credentialsRole: sendRole,
        passthroughBehavior: apigateway.PassthroughBehavior.NEVER,
        requestParameters: {
          "integration.request.header.Content-Type": "'application/x-www-form-urlencoded'",
        },
        requestTemplates: {
          "application/json": sendMessage,
          "application/x-www-form-urlencoded": sendMessage,
        },
        integrationResponses: [
          { statusCode: "200", responseTemplates: { "application/json": '{"accepted":true}' } },
          { statusCode: "400", selectionPattern: "4\\d{2}" },
          { statusCode: "502", selectionPattern: "5\\d{2}" },
        ],
      },
    });
    const requestAuthorizer = new apigateway.RequestAuthorizer(this, "KeyAuthorizer", {
      handler: authorizer.function,
      identitySources: [apigateway.IdentitySource.header(INGEST_KEY_HEADER)],
      resultsCacheTtl: ttl,
    });
    api.root.addResource("events").addMethod("POST", integration, {
      authorizer: requestAuthorizer,
      requestParameters: { [`method.request.header.${INGEST_KEY_HEADER}`]: true },
      requestValidator: new apigateway.RequestValidator(this, "RequireKeyHeader", {
        restApi: api,
        validateRequestParameters: true,
        validateRequestBody: false,
      }),
      methodResponses: [{ statusCode: "200" }, { statusCode: "400" }, { statusCode: "502" }],
    });
    this.eventsUrl = `${api.url}events`;

    acknowledge(
      api,
      "AwsSolutions-APIG3",
      "Private API reachable only through the fleet's execute-api VPC endpoint; WAF adds cost without a public attack surface to filter.",
    );
    acknowledge(
      api,
      "AwsSolutions-COG4",
      "The callers are Kamailio nodes, not users: a Lambda request authorizer checks their shared key; there is no Cognito user pool to use.",
    );
    acknowledge(
      api,
      "AwsSolutions-APIG2",
      "The x-kwc-key header is validated here; bodies are validated by the worker event by event, so one bad event never sinks the valid events of its envelope (a gateway model would reject the whole POST).",
    );
    acknowledge(
      api,
      "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
      "API Gateway's account-level CloudWatch role uses the AWS managed AmazonAPIGatewayPushToCloudWatchLogs policy, which is what the service expects.",
    );
  }

  /** The imported keys secret, or a new one that maps no node yet (fail closed until keys are assigned). */
  private keysSecret(arn: string | undefined): secretsmanager.ISecret {
    if (arn) return secretsmanager.Secret.fromSecretCompleteArn(this, "IngestKeys", arn);
    const secret = new secretsmanager.Secret(this, "IngestKeys", {
      description: `kamailio-watcher-cleanup: per-node ${INGEST_KEY_HEADER} values {"<node id>": ["<key>", ...]} (each node's key is KWC_INGEST_KEY in its environment)`,
      // Not a secret yet: the operator writes the nodes' keys (docs/security.md).
      secretStringValue: SecretValue.unsafePlainText("{}"),
    });
    acknowledge(
      secret,
      "AwsSolutions-SMG4",
      "Per-node static keys configured in each Kamailio node's environment; a rotation is a per-node change with two valid keys (docs/security.md), which Secrets Manager's rotation Lambdas cannot perform on a Kamailio host.",
    );
    return secret;
  }
}
