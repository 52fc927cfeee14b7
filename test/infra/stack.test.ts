import { Duration } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { ENVELOPE_MAX_BYTES } from "#core/contract.ts";
import { visibilityTimeoutSeconds, WORKER_EVENT_SOURCE } from "../../infra/event-source-settings.ts";
import type { KamailioWatcherCleanupStack } from "../../infra/stack.ts";
import {
  actionsOf,
  allPolicyStatements,
  buildStack,
  IMPORTED_CLUSTER_ARN,
  IMPORTED_RUNTIME_SECRET_ARN,
  IMPORTED_SECRET_ARN,
  IMPORTED_VPC,
} from "./synth.ts";

type Built = ReturnType<typeof buildStack>;

describe("default stack (new VPC, new Aurora PostgreSQL, HTTP API ingest)", () => {
  let built: Built;
  let stack: KamailioWatcherCleanupStack;
  beforeAll(() => {
    built = buildStack();
    stack = built.stack;
  });

  it("redrives to a DLQ that outlives the events queue, after 5 receives; the follow-up queue has its own", () => {
    const { template } = built;
    const redriven = template.findResources("AWS::SQS::Queue", {
      Properties: { RedrivePolicy: Match.anyValue() },
    });
    // the events queue and the follow-up queue, each into its own DLQ: a redrive of the events
    // DLQ can never move an ingest body into the follow-up queue
    expect(Object.keys(redriven)).toHaveLength(2);
    const queue =
      template.toJSON().Resources[stack.getLogicalId(stack.events.queue.node.defaultChild as never)];
    const followUps =
      template.toJSON().Resources[stack.getLogicalId(stack.followUps.queue.node.defaultChild as never)];
    expect(followUps.Properties.RedrivePolicy.deadLetterTargetArn).toEqual(
      stack.resolve(stack.followUps.deadLetterQueue.queueArn),
    );
    expect(queue?.Properties.RedrivePolicy).toEqual({
      deadLetterTargetArn: stack.resolve(stack.events.deadLetterQueue.queueArn),
      maxReceiveCount: 5,
    });
    const dlq =
      template.toJSON().Resources[
        stack.getLogicalId(stack.events.deadLetterQueue.node.defaultChild as never)
      ];
    expect(queue?.Properties.MessageRetentionPeriod).toBe(4 * 86_400);
    expect(dlq.Properties.MessageRetentionPeriod).toBe(14 * 86_400);
    expect(dlq.Properties.MessageRetentionPeriod).toBeGreaterThan(queue?.Properties.MessageRetentionPeriod);
  });

  it("derives the visibility timeout as 6× the worker timeout", () => {
    const { template } = built;
    const functions = template.findResources("AWS::Lambda::Function");
    const worker =
      functions[stack.getLogicalId(stack.worker.serviceFunction.function.node.defaultChild as never)];
    expect(worker?.Properties.Timeout).toBe(30);
    template.hasResourceProperties("AWS::SQS::Queue", {
      VisibilityTimeout: 180,
      RedrivePolicy: Match.anyValue(),
    });
  });

  it("encrypts every queue and denies non-TLS access", () => {
    const { template } = built;
    const queues = Object.values(template.findResources("AWS::SQS::Queue"));
    expect(queues).toHaveLength(4); // events, follow-ups, and their DLQs
    for (const queue of queues) expect(queue.Properties.SqsManagedSseEnabled).toBe(true);
    const policies = Object.values(template.findResources("AWS::SQS::QueuePolicy"));
    expect(policies).toHaveLength(4);
    for (const policy of policies) {
      expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({
          Effect: "Deny",
          Action: "sqs:*",
          Condition: { Bool: { "aws:SecureTransport": "false" } },
        }),
      );
    }
  });

  it("keeps the size limits in agreement: queue message size ≥ ingest body ≥ cfg envelope cap", () => {
    const { template } = built;
    for (const queue of Object.values(template.findResources("AWS::SQS::Queue"))) {
      expect(queue.Properties.MaximumMessageSize).toBe(262_144);
      expect(queue.Properties.MaximumMessageSize).toBeGreaterThanOrEqual(ENVELOPE_MAX_BYTES);
    }
  });

  it("maps the events queue to the worker with the shared event-source settings: partial batch responses, no batching window, a concurrency cap", () => {
    built.template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      EventSourceArn: stack.resolve(stack.events.queue.queueArn),
      FunctionName: stack.resolve(stack.worker.serviceFunction.function.functionName),
      FunctionResponseTypes: ["ReportBatchItemFailures"],
      BatchSize: WORKER_EVENT_SOURCE.batchSize,
      MaximumBatchingWindowInSeconds: Match.absent(),
      ScalingConfig: { MaximumConcurrency: WORKER_EVENT_SOURCE.maxConcurrency },
    });
    built.template.hasResourceProperties("AWS::SQS::Queue", {
      RedrivePolicy: Match.anyValue(),
      VisibilityTimeout: visibilityTimeoutSeconds(WORKER_EVENT_SOURCE.functionTimeoutSeconds),
    });
  });

  it("runs every function on arm64 Node 24 with source maps, and only references in the environment", () => {
    const functions = Object.values(built.template.findResources("AWS::Lambda::Function"));
    expect(functions).toHaveLength(4);
    for (const fn of functions) {
      expect(fn.Properties.Runtime).toBe("nodejs24.x");
      expect(fn.Properties.Architectures).toEqual(["arm64"]);
      const env = fn.Properties.Environment.Variables as Record<string, unknown>;
      expect(env.NODE_OPTIONS).toBe("--enable-source-maps");
      expect(env.POWERTOOLS_METRICS_NAMESPACE).toBe("KamailioWatcherCleanup");
      expect(JSON.stringify(env)).not.toMatch(/SecretString|resolve:secretsmanager/);
    }
    built.template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: {
        Variables: Match.objectLike({
          KWC_FLEET_CONFIG: "ssm-path:/kwc/fleet",
          KWC_DLQ_URL: stack.resolve(stack.events.deadLetterQueue.queueUrl),
          KWC_FOLLOW_UP_QUEUE_URL: stack.resolve(stack.followUps.queue.queueUrl),
          KWC_FOLLOW_UP_QUEUE_ARN: stack.resolve(stack.followUps.queue.queueArn),
        }),
      },
    });
    // The worker, the reconciler and the on-demand cleanup post refresh.requested follow-ups to
    // their own queue, which the worker consumes; none of them writes to the events queue.
    const withFollowUps = functions.filter(
      (fn) =>
        JSON.stringify(fn.Properties.Environment.Variables.KWC_FOLLOW_UP_QUEUE_URL) ===
        JSON.stringify(stack.resolve(stack.followUps.queue.queueUrl)),
    );
    expect(withFollowUps).toHaveLength(3);
    expect(JSON.stringify(functions)).not.toContain("KWC_EVENTS_QUEUE_URL");
    built.template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      EventSourceArn: stack.resolve(stack.followUps.queue.queueArn),
      FunctionResponseTypes: ["ReportBatchItemFailures"],
    });
  });

  it("gives each log group a retention", () => {
    const groups = Object.values(built.template.findResources("AWS::Logs::LogGroup"));
    expect(groups.length).toBeGreaterThanOrEqual(5);
    for (const group of groups) expect(group.Properties.RetentionInDays).toBe(30);
  });

  it("scopes IAM: DLQ send to the DLQ, follow-ups to their own queue, Data API to the cluster, no Resource * anywhere", () => {
    const statements = allPolicyStatements(built.template);
    expect(statements.filter((statement) => statement.Resource === "*")).toEqual([]);
    // The worker may send to the DLQ (rejects) and, with sqs:SendMessage alone, to the follow-up
    // queue (its refresh.requested); the reconciler and the on-demand cleanup to the follow-up
    // queue only; API Gateway's integration role to the events queue only: no ingest body can
    // reach the follow-up queue, the only place refresh.requested is accepted from.
    const sendsOf = (fn: { role?: { roleName: string } | undefined }) => {
      const role = stack.resolve(fn.role?.roleName);
      const policy = Object.values(built.template.findResources("AWS::IAM::Policy")).find((p) =>
        JSON.stringify(p.Properties.Roles).includes(JSON.stringify(role)),
      );
      return ((policy?.Properties.PolicyDocument.Statement ?? []) as Parameters<typeof actionsOf>[0][])
        .filter((statement) => actionsOf(statement).includes("sqs:SendMessage"))
        .map((statement) => ({ actions: actionsOf(statement), resource: statement.Resource }));
    };
    const eventsQueue = stack.resolve(stack.events.queue.queueArn);
    const followUpQueue = stack.resolve(stack.followUps.queue.queueArn);
    const followUpSend = { actions: ["sqs:SendMessage"], resource: followUpQueue };
    expect(sendsOf(stack.worker.serviceFunction.function)).toEqual([
      expect.objectContaining({ resource: stack.resolve(stack.events.deadLetterQueue.queueArn) }),
      followUpSend,
    ]);
    expect(sendsOf(stack.reconciler.function)).toEqual([followUpSend]);
    expect(sendsOf(stack.onDemandCleanup.function)).toEqual([followUpSend]);
    const allSends = statements.filter((statement) => actionsOf(statement).includes("sqs:SendMessage"));
    expect(allSends.map((statement) => statement.Resource)).toEqual(
      expect.arrayContaining([
        eventsQueue,
        followUpQueue,
        stack.resolve(stack.events.deadLetterQueue.queueArn),
      ]),
    );
    expect(allSends).toHaveLength(5);
    // only the ingest sends to the events queue
    expect(
      allSends.filter((statement) => JSON.stringify(statement.Resource) === JSON.stringify(eventsQueue)),
    ).toHaveLength(1);
    const dataApi = statements.filter((statement) =>
      actionsOf(statement).includes("rds-data:ExecuteStatement"),
    );
    expect(dataApi).toHaveLength(3);
    for (const statement of dataApi)
      expect(statement.Resource).toEqual(stack.resolve(stack.database.clusterArn));
    const secretReads = statements.filter((statement) =>
      actionsOf(statement).includes("secretsmanager:GetSecretValue"),
    );
    for (const statement of secretReads) expect(JSON.stringify(statement.Resource)).not.toContain('"*"');
  });

  it("wires the ingest: HTTP API route with a cached request authorizer on x-kwc-key and a direct SQS integration", () => {
    const { template } = built;
    template.hasResourceProperties("AWS::ApiGatewayV2::Authorizer", {
      AuthorizerType: "REQUEST",
      IdentitySource: ["$request.header.x-kwc-key"],
      AuthorizerResultTtlInSeconds: 300,
      EnableSimpleResponses: true,
      AuthorizerPayloadFormatVersion: "2.0",
    });
    template.hasResourceProperties("AWS::ApiGatewayV2::Route", {
      RouteKey: "POST /events",
      AuthorizationType: "CUSTOM",
    });
    template.hasResourceProperties("AWS::ApiGatewayV2::Integration", {
      IntegrationType: "AWS_PROXY",
      IntegrationSubtype: "SQS-SendMessage",
      RequestParameters: {
        QueueUrl: stack.resolve(stack.events.queue.queueUrl),
        MessageBody: "$request.body",
        MessageAttributes: JSON.stringify({
          "kwc-node": { DataType: "String", StringValue: `\${context.authorizer.node}` },
        }),
      },
    });
    template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      StageName: "$default",
      DefaultRouteSettings: { ThrottlingRateLimit: 200, ThrottlingBurstLimit: 400 },
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp("requestId") },
    });
    expect(Object.keys(template.findResources("AWS::ApiGatewayV2::Route"))).toHaveLength(1);
    // The authorizer reads the keys from Secrets Manager: only the ARN is in its environment.
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: {
        Variables: Match.objectLike({
          KWC_INGEST_KEYS_SECRET_ARN: stack.resolve(stack.ingest.ingestKeysSecret.secretArn),
        }),
      },
    });
  });

  it("alarms on DLQ depth ≥ 1 (events and follow-ups), event age, worker errors and throttles, refresh failures and rejects", () => {
    const { template } = built;
    template.resourceCountIs("AWS::CloudWatch::Alarm", 9);
    for (const dlq of [stack.events.deadLetterQueue, stack.followUps.deadLetterQueue])
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        MetricName: "ApproximateNumberOfMessagesVisible",
        Dimensions: [{ Name: "QueueName", Value: stack.resolve(dlq.queueName) }],
        Threshold: 1,
        ComparisonOperator: "GreaterThanOrEqualToThreshold",
      });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      MetricName: "ApproximateAgeOfOldestMessage",
      Threshold: 600,
    });
    for (const metric of ["Errors", "Throttles"]) {
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "AWS/Lambda",
        MetricName: metric,
      });
    }
    for (const metric of ["RefreshFailed", "EventsRejected", "EventsNodeMismatch"]) {
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "KamailioWatcherCleanup",
        MetricName: metric,
      });
    }
    template.resourceCountIs("AWS::CloudWatch::Dashboard", 1);
    // the refresh policy's and the guard's counters are on the dashboard
    const body = JSON.stringify(Object.values(template.findResources("AWS::CloudWatch::Dashboard"))[0]);
    for (const metric of [
      "RefreshSent",
      "RefreshSkipped",
      "RefreshRefusedByNode",
      "RefreshBackedOff",
      "GuardKeepsChanged",
    ])
      expect(body).toContain(`\\"${metric}\\"`);
    // An alarm without an action alerts nobody: by default every alarm publishes to the topic.
    template.resourceCountIs("AWS::SNS::Topic", 1);
    for (const alarm of Object.values(template.findResources("AWS::CloudWatch::Alarm"))) {
      expect(alarm.Properties.AlarmActions).toHaveLength(1);
    }
  });

  it("alarmTopic: false leaves the alarms without an action (an operator wiring their own)", () => {
    const { template } = buildStack({ monitoring: { alarmTopic: false } });
    template.resourceCountIs("AWS::SNS::Topic", 0);
    for (const alarm of Object.values(template.findResources("AWS::CloudWatch::Alarm"))) {
      expect(alarm.Properties.AlarmActions).toBeUndefined();
    }
  });

  it("graphs every refresh outcome the worker counts on the dashboard's effect widget", () => {
    const [dashboard] = Object.values(built.template.findResources("AWS::CloudWatch::Dashboard"));
    // The body is an Fn::Join of JSON text and tokens: its string pieces hold every metric array.
    const pieces: unknown[] = dashboard?.Properties?.DashboardBody?.["Fn::Join"]?.[1] ?? [];
    const text = pieces.filter((p): p is string => typeof p === "string").join("");
    const effect = text.slice(text.indexOf('"title":"4. Effect'));
    for (const metric of [
      "RowsDeleted",
      "RefreshFailed",
      "RefreshDegraded",
      "RefreshDeferred",
      "EventsRejected",
    ]) {
      expect(effect).toContain(`["KamailioWatcherCleanup","${metric}","service","kamailio-watcher-cleanup"`);
    }
  });

  it("creates an Aurora Serverless v2 PostgreSQL cluster with the Data API, encrypted, deletion-protected", () => {
    built.template.hasResourceProperties("AWS::RDS::DBCluster", {
      Engine: "aurora-postgresql",
      EnableHttpEndpoint: true,
      StorageEncrypted: true,
      DeletionProtection: true,
      ServerlessV2ScalingConfiguration: { MinCapacity: 0, MaxCapacity: 4 },
    });
  });

  it("puts the fleet config in standard SSM parameters under /kwc/fleet", () => {
    built.template.hasResourceProperties("AWS::SSM::Parameter", {
      Name: "/kwc/fleet/global",
      Type: "String",
      Tier: "Standard",
    });
  });

  it("creates interface endpoints for every API the functions call, since the VPC has no NAT", () => {
    const endpoints = Object.values(built.template.findResources("AWS::EC2::VPCEndpoint"));
    const services = endpoints.map((endpoint) => JSON.stringify(endpoint.Properties.ServiceName));
    for (const service of ["rds-data", "sqs", "secretsmanager", "ssm"]) {
      expect(services.some((name) => name.includes(`.${service}"`))).toBe(true);
    }
    expect(endpoints).toHaveLength(4);
    built.template.resourceCountIs("AWS::EC2::NatGateway", 0);
  });

  it("lets the functions' security group out only to HTTPS and Kamailio's JSON-RPC port", () => {
    const group =
      built.template.toJSON().Resources[
        stack.getLogicalId(stack.network.functionSecurityGroup.node.defaultChild as never)
      ];
    const ports = (group.Properties.SecurityGroupEgress as { FromPort: number }[])
      .map((rule) => rule.FromPort)
      .sort();
    expect(ports).toEqual([443, 5081]);
  });

  it("gives operators a policy that may invoke the on-demand function and nothing else", () => {
    built.template.hasResourceProperties("AWS::IAM::ManagedPolicy", {
      PolicyDocument: {
        Statement: [
          {
            Action: "lambda:InvokeFunction",
            Effect: "Allow",
            Resource: stack.resolve(stack.onDemandCleanup.function.functionArn),
          },
        ],
      },
    });
  });

  it("schedules the reconciler every 5 minutes", () => {
    built.template.hasResourceProperties("AWS::Events::Rule", { ScheduleExpression: "rate(5 minutes)" });
  });
});

describe("variants", () => {
  it("import mode: uses the fleet's cluster, secret and VPC, creates none of them", () => {
    const { stack, template } = buildStack({
      database: {
        mode: "import",
        engine: "postgres",
        clusterArn: IMPORTED_CLUSTER_ARN,
        secretArn: IMPORTED_SECRET_ARN,
        runtimeSecretArn: IMPORTED_RUNTIME_SECRET_ARN,
      },
      network: { importVpc: { ...IMPORTED_VPC, natAvailable: true } },
    });
    template.resourceCountIs("AWS::RDS::DBCluster", 0);
    template.resourceCountIs("AWS::SecretsManager::Secret", 2); // the ingest keys and the RPC token only
    template.resourceCountIs("AWS::EC2::VPC", 0);
    template.resourceCountIs("AWS::EC2::VPCEndpoint", 0);
    const statements = allPolicyStatements(template);
    const dataApi = statements.filter((statement) =>
      actionsOf(statement).includes("rds-data:ExecuteStatement"),
    );
    expect(dataApi.length).toBe(3);
    for (const statement of dataApi)
      expect(JSON.stringify(stack.resolve(statement.Resource))).toContain("cluster:kamailio-fleet");
    const secretReads = (name: string) =>
      statements.filter(
        (statement) =>
          actionsOf(statement).includes("secretsmanager:GetSecretValue") &&
          JSON.stringify(statement.Resource).includes(name),
      );
    // The functions read the runtime user's secret, never the admin's.
    expect(secretReads("kamailio-runtime")).toHaveLength(3);
    for (const statement of secretReads("kamailio-runtime"))
      expect(statement.Resource).toBe(IMPORTED_RUNTIME_SECRET_ARN);
    expect(secretReads("kamailio-dataapi")).toHaveLength(0);
    template.hasResourceProperties("AWS::Lambda::Function", {
      VpcConfig: { SubnetIds: IMPORTED_VPC.privateSubnetIds },
    });
  });

  it("import mode without NAT still gets the interface endpoints", () => {
    const { template } = buildStack({
      database: {
        mode: "import",
        engine: "mysql",
        clusterArn: IMPORTED_CLUSTER_ARN,
        secretArn: IMPORTED_SECRET_ARN,
      },
      network: { importVpc: IMPORTED_VPC },
    });
    template.resourceCountIs("AWS::EC2::VPCEndpoint", 4);
  });

  it("MySQL mode: Aurora MySQL with the Data API", () => {
    const { template } = buildStack({ database: { mode: "create", engine: "mysql" } });
    template.hasResourceProperties("AWS::RDS::DBCluster", {
      Engine: "aurora-mysql",
      EnableHttpEndpoint: true,
      StorageEncrypted: true,
    });
    template.hasResourceProperties("AWS::SSM::Parameter", {
      Name: "/kwc/fleet/global",
      Value: Match.objectLike({
        "Fn::Join": Match.arrayWith([Match.arrayWith([Match.stringLikeRegexp('"engine":"mysql"')])]),
      }),
    });
  });

  it("private REST ingest: private endpoint type, resource policy bound to the VPC endpoint, same authorizer header", () => {
    const { stack, template } = buildStack({ ingest: { kind: "private-rest-api" } });
    template.resourceCountIs("AWS::ApiGatewayV2::Api", 0);
    template.hasResourceProperties("AWS::ApiGateway::RestApi", {
      EndpointConfiguration: { Types: ["PRIVATE"] },
      Policy: {
        Statement: [
          Match.objectLike({
            Action: "execute-api:Invoke",
            Condition: {
              StringEquals: {
                "aws:SourceVpce": stack.resolve(stack.ingest.executeApiEndpoint?.vpcEndpointId),
              },
            },
          }),
        ],
      },
    });
    template.hasResourceProperties("AWS::ApiGateway::Authorizer", {
      Type: "REQUEST",
      IdentitySource: "method.request.header.x-kwc-key",
      AuthorizerResultTtlInSeconds: 300,
    });
    template.hasResourceProperties("AWS::ApiGateway::Method", {
      HttpMethod: "POST",
      AuthorizationType: "CUSTOM",
      Integration: Match.objectLike({ Type: "AWS", IntegrationHttpMethod: "POST" }),
    });
  });

  it("alarm e-mail: a TLS-only topic receives every alarm", () => {
    const { template } = buildStack({ monitoring: { alarmEmail: "ops@example.org" } });
    template.resourceCountIs("AWS::SNS::Topic", 1);
    template.hasResourceProperties("AWS::SNS::Subscription", {
      Protocol: "email",
      Endpoint: "ops@example.org",
    });
    for (const alarm of Object.values(template.findResources("AWS::CloudWatch::Alarm"))) {
      expect(alarm.Properties.AlarmActions).toHaveLength(1);
    }
  });

  it("props flow through: maxReceiveCount, concurrency, worker timeout → visibility, reconcile rate", () => {
    const { template } = buildStack({
      queue: { maxReceiveCount: 8 },
      worker: { timeout: Duration.seconds(60), maxConcurrency: 5 },
      reconcileRate: Duration.minutes(15),
    });
    template.hasResourceProperties("AWS::SQS::Queue", {
      VisibilityTimeout: 360,
      RedrivePolicy: Match.objectLike({ maxReceiveCount: 8 }),
    });
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      ScalingConfig: { MaximumConcurrency: 5 },
    });
    template.hasResourceProperties("AWS::Events::Rule", { ScheduleExpression: "rate(15 minutes)" });
  });

  it("writes fleet nodes as one standard parameter each, with the generated token secret as reference", () => {
    const { stack, template } = buildStack({
      fleet: {
        nodes: [
          {
            id: "ws-a",
            rpcUrl: "http://10.20.1.5:5060/RPC",
            statusUrl: "http://10.20.1.5:5060/kwc/status",
            socketInfo: ["tcp:10.20.1.5:8080"],
            watchersTable: "active_watchers_ws_a",
            contactStyle: "nated",
            kamailioVersion: "5.6.3",
            subsDbMode: 3,
            notifierProcesses: 0,
          },
        ],
      },
    });
    const secretArn = stack.resolve(stack.fleetConfig.rpcTokenSecrets[0]?.secretArn);
    template.hasResourceProperties("AWS::SSM::Parameter", {
      Name: "/kwc/fleet/nodes/ws-a",
      Tier: "Standard",
      Value: {
        "Fn::Join": [
          "",
          Match.arrayWith([Match.stringLikeRegexp('"tokenSecret":"secretsmanager:'), secretArn]),
        ],
      },
    });
  });
});
