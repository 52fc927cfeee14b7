import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import type { MetricName } from "#core/ports.ts";
import { acknowledge } from "./acknowledge.ts";
import type { EventIngest } from "./event-ingest.ts";
import type { EventQueue } from "./event-queue.ts";
import { ProblemList } from "./validation.ts";

export interface MonitoringProps {
  readonly ingest: EventIngest;
  readonly events: EventQueue;
  /** The refresh.requested follow-up queue (owed refreshes); its DLQ holds NOTIFYs never sent. */
  readonly followUps?: EventQueue;
  readonly worker: lambda.IFunction;
  readonly reconciler: lambda.IFunction;
  readonly onDemand: lambda.IFunction;
  /** EMF namespace the functions publish to. @default "KamailioWatcherCleanup" */
  readonly metricsNamespace?: string;
  /** Powertools `service` dimension. @default "kamailio-watcher-cleanup" */
  readonly serviceName?: string;
  /** Alarm when the oldest event waits longer than this. @default Duration.minutes(10) */
  readonly maxEventAge?: Duration;
  /**
   * Create an SNS topic as every alarm's action. An alarm without an action alerts nobody (and
   * fails cfn-guard CT.CLOUDWATCH.PR.1); a topic has no standing cost. @default true
   */
  readonly alarmTopic?: boolean;
  /** Subscribe this address to the alarm topic. @default - no subscription */
  readonly alarmEmail?: string;
}

export function validateMonitoringProps(
  props: Pick<MonitoringProps, "alarmEmail" | "maxEventAge">,
): readonly string[] {
  const problems = new ProblemList();
  if (props.alarmEmail !== undefined) {
    problems.require(
      /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(props.alarmEmail),
      `alarmEmail "${props.alarmEmail}" is not an e-mail address`,
    );
  }
  const age = (props.maxEventAge ?? Duration.minutes(10)).toSeconds();
  problems.require(age >= 60, `maxEventAge must be at least 60 s (got ${age})`);
  return problems.all;
}

/**
 * Alarms on what needs an operator (anything in the DLQ, events waiting too long, worker errors or
 * throttles, failed refreshes, rejects) and a dashboard that reads left to right like the pipeline.
 */
export class Monitoring extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarmTopic?: sns.Topic;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const problems = new ProblemList();
    problems.add(validateMonitoringProps(props));
    problems.throwIfAny(`Monitoring ${this.node.path}`);

    const namespace = props.metricsNamespace ?? "KamailioWatcherCleanup";
    const service = props.serviceName ?? "kamailio-watcher-cleanup";
    // MetricName: the names the functions emit (lambdas/core/ports.ts), so a renamed metric
    // cannot leave a widget or an alarm reading nothing.
    const emf = (metricName: MetricName) =>
      new cloudwatch.Metric({
        namespace,
        metricName,
        dimensionsMap: { service },
        statistic: cloudwatch.Stats.SUM,
        period: Duration.minutes(5),
      });
    const refreshFailed = emf("RefreshFailed");
    const rejected = emf("EventsRejected");
    const rowsDeleted = emf("RowsDeleted");
    // Dashboard only: a degraded refresh (still 500 after one reconcile) and a deferred one (queued
    // as a refresh.requested follow-up during an outage) are owed NOTIFYs, not failures to page on.
    const refreshDegraded = emf("RefreshDegraded");
    const refreshDeferred = emf("RefreshDeferred");

    const dlqVisible = props.events.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: Duration.minutes(1),
    });
    const oldestAge = props.events.queue.metricApproximateAgeOfOldestMessage({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: Duration.minutes(1),
    });
    const period5 = { period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM };
    const alarm = (
      name: string,
      metric: cloudwatch.IMetric,
      threshold: number,
      description: string,
      evaluationPeriods = 1,
    ) => {
      const created = new cloudwatch.Alarm(this, name, {
        metric,
        threshold,
        evaluationPeriods,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      this.alarms.push(created);
      return created;
    };
    alarm(
      "DeadLetterQueueNotEmpty",
      dlqVisible,
      1,
      "Events in the DLQ: read the reason attribute, fix, then redrive (docs/deploy.md).",
    );
    alarm(
      "EventsWaitingTooLong",
      oldestAge,
      (props.maxEventAge ?? Duration.minutes(10)).toSeconds(),
      "The oldest event has waited too long: the worker is failing, throttled or capped too low.",
      3,
    );
    alarm(
      "WorkerErrors",
      props.worker.metricErrors(period5),
      1,
      "Worker invocations failed (whole batches retried).",
    );
    alarm(
      "WorkerThrottles",
      props.worker.metricThrottles(period5),
      1,
      "Worker invocations throttled (account concurrency).",
    );
    alarm("ReconcilerErrors", props.reconciler.metricErrors(period5), 1, "A reconcile sweep failed.");
    alarm(
      "RefreshFailures",
      refreshFailed,
      1,
      "presence.refreshWatchers failed on a node: watchers may miss NOTIFYs.",
    );
    alarm("EventsRejected", rejected, 1, "Invalid events were sent to the DLQ (a cfg or contract mismatch).");
    if (props.followUps)
      alarm(
        "FollowUpDeadLetterQueueNotEmpty",
        props.followUps.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          statistic: cloudwatch.Stats.MAXIMUM,
          period: Duration.minutes(1),
        }),
        1,
        "Owed refreshes gave up (a node refused or failed them past maxReceiveCount): its watchers may hold a stale state until their next NOTIFY. Once the node is healthy, redrive the follow-up DLQ to its queue (docs/deploy.md).",
      );
    alarm(
      "EventsNodeMismatch",
      emf("EventsNodeMismatch"),
      1,
      "A node posted events naming another node with its own ingest key (a compromised or misconfigured node): they were ignored; see the event.node-mismatch records (docs/security.md).",
    );

    if ((props.alarmTopic ?? true) || props.alarmEmail) {
      const topic = new sns.Topic(this, "AlarmTopic", {
        displayName: "kamailio-watcher-cleanup alarms",
        enforceSSL: true,
      });
      acknowledge(
        topic,
        "AwsSolutions-SNS2",
        "CloudWatch alarms cannot publish to a topic encrypted with the AWS managed SNS key, and alarm notifications carry no data beyond metric names; a customer key would cost more than it protects.",
      );
      if (props.alarmEmail) topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
      for (const each of this.alarms) {
        each.addAlarmAction(new actions.SnsAction(topic));
        each.addOkAction(new actions.SnsAction(topic));
      }
      this.alarmTopic = topic;
    }

    const ingestRequests = props.ingest.httpApi
      ? [
          props.ingest.httpApi.metricCount(period5),
          props.ingest.httpApi.metricClientError(period5),
          props.ingest.httpApi.metricServerError(period5),
        ]
      : props.ingest.restApi
        ? [
            props.ingest.restApi.metricCount(period5),
            props.ingest.restApi.metricClientError(period5),
            props.ingest.restApi.metricServerError(period5),
          ]
        : [];
    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      defaultInterval: Duration.hours(6),
    });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: "1. Ingest: POSTs, 4xx, 5xx", left: ingestRequests, width: 6 }),
      new cloudwatch.GraphWidget({
        title: "2. Queue: sent, visible, oldest age (s)",
        left: [
          props.events.queue.metricNumberOfMessagesSent(period5),
          props.events.queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) }),
        ],
        right: [oldestAge],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: "3. Worker: invocations, errors, throttles",
        left: [
          props.worker.metricInvocations(period5),
          props.worker.metricErrors(period5),
          props.worker.metricThrottles(period5),
        ],
        right: [
          props.worker.metricDuration({
            period: Duration.minutes(5),
            statistic: cloudwatch.Stats.percentile(95),
          }),
        ],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: "4. Effect: rows deleted, refreshes failed/degraded/deferred, rejects; DLQ depth",
        left: [rowsDeleted, refreshFailed, refreshDegraded, refreshDeferred, rejected],
        right: [dlqVisible],
        width: 6,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Reconciler and on-demand cleanup",
        left: [
          props.reconciler.metricInvocations(period5),
          props.reconciler.metricErrors(period5),
          props.onDemand.metricInvocations(period5),
          props.onDemand.metricErrors(period5),
        ],
        width: 12,
      }),
      new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms: this.alarms, width: 12 }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title:
          "Refresh policy: owed, skipped (nobody starved), answered 200, refused by a node's budget, backed off, deferred",
        left: (
          [
            "RefreshSent",
            "RefreshSkipped",
            "RefreshOk",
            "RefreshRefusedByNode",
            "RefreshBackedOff",
            "RefreshDeferred",
          ] as const
        ).map(emf),
        right: props.followUps
          ? [
              props.followUps.queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) }),
              props.followUps.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
                period: Duration.minutes(5),
              }),
            ]
          : [],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: "Refreshes owed and skipped, by the refresh policy's reason (lambdas/core/refresh-policy.ts)",
        left: (["RefreshSent", "RefreshSkipped"] as const).map(
          (name) =>
            new cloudwatch.MathExpression({
              expression: `SEARCH('{${namespace},reason,service} MetricName="${name}" service="${service}"', 'Sum', 300)`,
              label: name,
              period: Duration.minutes(5),
            }),
        ),
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title:
          "Guard: rows kept (live, changed, no peer), events ignored, node mismatches, bisected statements",
        left: (
          [
            "GuardKeeps",
            "GuardKeepsChanged",
            "GuardKeepsNoPeer",
            "EventsIgnoredBoot",
            "EventsIgnoredStale",
            "EventsIgnored",
            "EventsNodeMismatch",
            "StatementsBisected",
          ] as const
        ).map(emf),
        width: 12,
      }),
    );
  }
}
