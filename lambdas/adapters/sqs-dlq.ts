/**
 * DeadLetterSink over SQS: each rejected event becomes its own DLQ message, its reason in the
 * `kwc-reason` message attribute (and the source message id / event index, and the source's
 * `kwc-node` when it had one), sent in batches of 10.
 * Any entry that fails makes send() throw, so the source record is retried rather than lost.
 * Body and reason are always valid SQS text (core/parse.ts sqsSafeText).
 */
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { INGEST_NODE_ATTRIBUTE } from "../core/ingest-identity.ts";
import { sqsSafeText } from "../core/parse.ts";
import type { DeadLetterSink, DlqItem } from "../core/ports.ts";

/** SQS message attribute values are limited to the message size; keep reasons readable. */
const MAX_REASON_CHARS = 1024;

export class SqsDeadLetterSink implements DeadLetterSink {
  constructor(
    private readonly sqs: Pick<SQSClient, "send">,
    private readonly queueUrl: string,
  ) {}

  async send(items: DlqItem[]): Promise<void> {
    for (let i = 0; i < items.length; i += 10) {
      const batch = items.slice(i, i + 10);
      const out = await this.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: batch.map((item, j) => ({
            Id: String(j),
            // A rejected body may hold what SQS refuses (U+FFFF, a lone surrogate): escape it.
            MessageBody: item.body.length > 0 ? sqsSafeText(item.body) : "(empty)",
            MessageAttributes: {
              "kwc-reason": {
                DataType: "String",
                StringValue: sqsSafeText(item.reason.slice(0, MAX_REASON_CHARS)),
              },
              "kwc-source-message-id": { DataType: "String", StringValue: item.sourceMessageId },
              ...(item.eventIndex === undefined
                ? {}
                : { "kwc-event-index": { DataType: "Number", StringValue: String(item.eventIndex) } }),
              // The node the ingest authenticated: a redrive is checked against it as the POST was.
              ...(item.ingestNode === undefined
                ? {}
                : { [INGEST_NODE_ATTRIBUTE]: { DataType: "String", StringValue: item.ingestNode } }),
            },
          })),
        }),
      );
      if (out.Failed && out.Failed.length > 0) {
        const first = out.Failed[0];
        throw new Error(
          `DLQ send failed for ${out.Failed.length} entries: ${first?.Code} ${first?.Message ?? ""}`,
        );
      }
    }
  }
}
