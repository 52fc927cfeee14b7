import { Duration } from "aws-cdk-lib";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { ENVELOPE_MAX_BYTES } from "#core/contract.ts";
import { VISIBILITY_TO_TIMEOUT_FACTOR, visibilityTimeoutSeconds } from "../event-source-settings.ts";
import { isWholeNumberIn, ProblemList } from "./validation.ts";

/** SQS's own ceiling for one message. */
export const SQS_MAX_MESSAGE_BYTES = 1_048_576;

export interface EventQueueProps {
  /** Timeout of the function consuming the queue; the visibility timeout is derived from it. */
  readonly consumerTimeout: Duration;
  /**
   * Receives before a message moves to the DLQ. At least 5, so a Kamailio restart or an Aurora
   * resume (DatabaseResumingException) does not dead-letter good events.
   * @default 5
   */
  readonly maxReceiveCount?: number;
  /** @default Duration.days(4) */
  readonly retentionPeriod?: Duration;
  /** Must be longer than `retentionPeriod`: a standard DLQ keeps the original enqueue time. @default Duration.days(14) */
  readonly deadLetterRetentionPeriod?: Duration;
  /**
   * Largest accepted message. The ingest forwards each POST body as one message, so this is the
   * ingest's size limit; it must hold the largest envelope the cfg may send (ENVELOPE_MAX_BYTES).
   * @default 262_144 (256 KiB)
   */
  readonly maxMessageSizeBytes?: number;
}

export function validateEventQueueProps(props: EventQueueProps): readonly string[] {
  const problems = new ProblemList();
  const maxReceiveCount = props.maxReceiveCount ?? 5;
  problems.require(
    isWholeNumberIn(maxReceiveCount, 5, 1000),
    `maxReceiveCount must be a whole number from 5 to 1000 (got ${maxReceiveCount})`,
  );
  const retention = (props.retentionPeriod ?? Duration.days(4)).toSeconds();
  const dlqRetention = (props.deadLetterRetentionPeriod ?? Duration.days(14)).toSeconds();
  problems.require(
    dlqRetention > retention,
    `deadLetterRetentionPeriod (${dlqRetention} s) must be longer than retentionPeriod (${retention} s): a DLQ keeps the original enqueue time`,
  );
  problems.require(
    retention >= 60 && dlqRetention <= 1_209_600,
    "retention periods must be between 60 s and 14 days",
  );
  const maxBytes = props.maxMessageSizeBytes ?? 262_144;
  problems.require(
    isWholeNumberIn(maxBytes, ENVELOPE_MAX_BYTES, SQS_MAX_MESSAGE_BYTES),
    `maxMessageSizeBytes must be from ENVELOPE_MAX_BYTES (${ENVELOPE_MAX_BYTES}) to ${SQS_MAX_MESSAGE_BYTES} (got ${maxBytes})`,
  );
  const visibility = visibilityTimeoutSeconds(props.consumerTimeout.toSeconds());
  problems.require(
    visibility <= 43_200,
    `consumer timeout ×${VISIBILITY_TO_TIMEOUT_FACTOR} (${visibility} s) exceeds SQS's 12 h visibility limit`,
  );
  return problems.all;
}

/**
 * The events queue and its DLQ: SSE with SQS-managed keys, TLS-only access, a redrive policy, a
 * DLQ that outlives the source, and a visibility timeout derived from the consumer's timeout.
 */
export class EventQueue extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly maxReceiveCount: number;
  readonly maxMessageSizeBytes: number;
  readonly visibilityTimeout: Duration;

  constructor(scope: Construct, id: string, props: EventQueueProps) {
    super(scope, id);
    const problems = new ProblemList();
    problems.add(validateEventQueueProps(props));
    problems.throwIfAny(`EventQueue ${this.node.path}`);

    this.maxReceiveCount = props.maxReceiveCount ?? 5;
    this.maxMessageSizeBytes = props.maxMessageSizeBytes ?? 262_144;
    this.visibilityTimeout = Duration.seconds(visibilityTimeoutSeconds(props.consumerTimeout.toSeconds()));
    this.deadLetterQueue = new sqs.Queue(this, "DeadLetterQueue", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: props.deadLetterRetentionPeriod ?? Duration.days(14),
      maxMessageSizeBytes: this.maxMessageSizeBytes,
      // Any queue of the account may name it as its DLQ (SQS's default, stated: cfn-guard
      // CT.SQS.PR.1 wants a DLQ to declare it). BY_QUEUE would list the source queue's ARN here
      // while the source queue's RedrivePolicy names this one: a CloudFormation cycle.
      redriveAllowPolicy: { redrivePermission: sqs.RedrivePermission.ALLOW_ALL },
    });
    this.queue = new sqs.Queue(this, "Queue", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: props.retentionPeriod ?? Duration.days(4),
      maxMessageSizeBytes: this.maxMessageSizeBytes,
      visibilityTimeout: this.visibilityTimeout,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: this.maxReceiveCount },
    });
  }
}
