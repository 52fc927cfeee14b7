import { Aws, Duration } from "aws-cdk-lib";
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
import { INGEST_KEY_HEADER } from "../../lambdas/core/ingest-auth.ts";
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
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
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
 * How Kamailio reaches SQS: `POST /events` with the `x-kwc-key` header. Kamailio can send a static
 * header but cannot sign SigV4, so a cached Lambda request authorizer compares the header with a
 * Secrets Manager value in constant time; the body goes to SQS unchanged as one message, with no
 * Lambda in the data path. 401 without the header, 403 with a wrong one, 2xx = in the queue.
 */
export class EventIngest extends Construct {
  readonly kind: IngestKind;
  /** The full URL Kamailio POSTs to. */
  readonly eventsUrl: string;
  /** The shared key (`KWC_INGEST_KEY` on the Kamailio nodes). */
  readonly ingestSecret: secretsmanager.Secret;
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

    this.ingestSecret = new secretsmanager.Secret(this, "IngestKey", {
      description: `kamailio-watcher-cleanup: the ${INGEST_KEY_HEADER} header value (KWC_INGEST_KEY on the Kamailio nodes)`,
      // Header-safe characters only: Kamailio puts the value into a header line as is.
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
    });
    acknowledge(
      this.ingestSecret,
      "AwsSolutions-SMG4",
      "A static key configured in every Kamailio node's environment; rotating it is a coordinated fleet change (the authorizer re-reads the secret on a mismatch, so a new value is picked up without a deploy).",
    );

    const authorizer = new ServiceFunction(this, "Authorizer", {
      entry: props.authorizerEntry,
      description: `kamailio-watcher-cleanup: checks ${INGEST_KEY_HEADER} in constant time`,
      timeout: Duration.seconds(10),
      memorySize: 256,
      logRetention: props.logRetention,
      environment: { KWC_INGEST_SECRET_ARN: this.ingestSecret.secretArn },
    });
    this.authorizerFunction = authorizer.function;
    this.ingestSecret.grantRead(authorizer.function);

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
            .custom("MessageBody", "$request.body"),
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
    const sendMessage = "Action=SendMessage&MessageBody=$util.urlEncode($input.body)";
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
}
