// The SQS DLQ sink over a mocked SQS client.
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { SqsDeadLetterSink } from "#adapters/sqs-dlq.ts";

describe("SqsDeadLetterSink", () => {
  it("sends one message per item with its reason as an attribute, in batches of 10; failures throw", async () => {
    const sqs = mockClient(SQSClient);
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const sink = new SqsDeadLetterSink(new SQSClient({}), "https://sqs/dlq");
    const items = Array.from({ length: 12 }, (_, i) => ({
      body: `b${i}`,
      reason: `r${i}`,
      sourceMessageId: "m",
      eventIndex: i,
    }));
    await sink.send(items);
    const calls = sqs.commandCalls(SendMessageBatchCommand);
    expect(calls.map((c) => c.args[0].input.Entries?.length)).toEqual([10, 2]);
    expect(calls[1]?.args[0].input.Entries?.[1]).toMatchObject({
      MessageBody: "b11",
      MessageAttributes: {
        "kwc-reason": { DataType: "String", StringValue: "r11" },
        "kwc-event-index": { DataType: "Number", StringValue: "11" },
      },
    });
    sqs.reset();
    sqs.on(SendMessageBatchCommand).resolves({ Failed: [{ Id: "0", Code: "Boom", SenderFault: false }] });
    await expect(sink.send(items.slice(0, 1))).rejects.toThrow(/Boom/);
    sqs.restore();
  });
});
