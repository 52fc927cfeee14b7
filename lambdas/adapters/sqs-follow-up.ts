/**
 * FollowUpSink over SQS: refresh.requested envelopes to the service's own follow-up queue (only
 * the functions may send to it; the worker consumes it next to the events queue), each with
 * a DelaySeconds so that a Kamailio blip can pass before the worker tries again. Sent in batches
 * of 10; any entry that fails makes send() throw, so the caller keeps the intent.
 */
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
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
