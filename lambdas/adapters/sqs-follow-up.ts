/**
 * FollowUpSink over SQS: refresh.requested envelopes to the service's own events queue, each with
 * a DelaySeconds so that a Kamailio blip can pass before the worker tries again. Sent in batches
 * of 10; any entry that fails makes send() throw, so the caller keeps the intent.
 */
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { RefreshRequested } from "../core/contract.ts";
import { FOLLOW_UP_DELAY_SECONDS, followUpBodies } from "../core/follow-up.ts";
import type { FollowUpSink } from "../core/ports.ts";

export class SqsFollowUpSink implements FollowUpSink {
  constructor(
    private readonly sqs: Pick<SQSClient, "send">,
    private readonly queueUrl: string,
    private readonly delaySeconds = FOLLOW_UP_DELAY_SECONDS,
  ) {}

  async send(events: RefreshRequested[]): Promise<void> {
    const bodies = followUpBodies(events);
    for (let i = 0; i < bodies.length; i += 10) {
      const out = await this.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: bodies.slice(i, i + 10).map((body, j) => ({
            Id: String(j),
            MessageBody: body,
            DelaySeconds: this.delaySeconds,
          })),
        }),
      );
      if (out.Failed && out.Failed.length > 0) {
        const first = out.Failed[0];
        throw new Error(
          `follow-up send failed for ${out.Failed.length} envelopes: ${first?.Code} ${first?.Message ?? ""}`,
        );
      }
    }
  }
}

/** The events queue as the sink of refresh.requested follow-ups, when KWC_EVENTS_QUEUE_URL is set. */
export function followUpsFromEnv(env: NodeJS.ProcessEnv = process.env): FollowUpSink | undefined {
  const url = env.KWC_EVENTS_QUEUE_URL;
  if (!url) return undefined;
  const delay = Number(env.KWC_FOLLOW_UP_DELAY_SECONDS ?? FOLLOW_UP_DELAY_SECONDS);
  // With AWS_ENDPOINT_URL_SQS (local mode) every call goes there, not to the QueueUrl's host.
  const sqs = new SQSClient({ useQueueUrlAsEndpoint: !env.AWS_ENDPOINT_URL_SQS });
  // SQS accepts 0-900 s.
  const valid = Number.isInteger(delay) && delay >= 0 && delay <= 900;
  return new SqsFollowUpSink(sqs, url, valid ? delay : FOLLOW_UP_DELAY_SECONDS);
}
