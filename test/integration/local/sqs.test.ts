// Local fidelity of the embedded SQS: it accepts what SQS accepts (astral characters such as an
// emoji, which fauxqs alone refuses) and refuses what SQS refuses (U+FFFF, a lone surrogate), for
// SendMessage and SendMessageBatch alike.
import { ReceiveMessageCommand, SendMessageBatchCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalSqs, startLocalSqs } from "../../../local/sqs.ts";

let sqs: LocalSqs;
beforeAll(async () => {
  sqs = await startLocalSqs();
});
afterAll(() => sqs?.stop());

describe("local SQS character set", () => {
  it("accepts astral characters and delivers them intact", async () => {
    const client = sqs.createClient();
    try {
      const body = JSON.stringify({ callId: "emoji-\u{1F600}-\u{10FFFF}" });
      await client.send(new SendMessageCommand({ QueueUrl: sqs.queueUrl, MessageBody: body }));
      const batch = await client.send(
        new SendMessageBatchCommand({ QueueUrl: sqs.queueUrl, Entries: [{ Id: "a", MessageBody: body }] }),
      );
      expect(batch.Failed ?? []).toEqual([]);
      const out = await client.send(
        new ReceiveMessageCommand({ QueueUrl: sqs.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
      );
      expect(out.Messages?.map((m) => m.Body)).toEqual([body, body]);
    } finally {
      client.destroy();
    }
  });

  it.each([
    ["U+FFFF", "a\uffffb"],
    ["U+FFFE", "a\ufffeb"],
    ["a lone surrogate", "a\ud83db"],
    ["a C0 control", "a\u0001b"],
  ])("refuses %s, as SQS does", async (_name, body) => {
    const client = sqs.createClient();
    try {
      await expect(
        client.send(new SendMessageCommand({ QueueUrl: sqs.queueUrl, MessageBody: body })),
      ).rejects.toThrow(/Invalid characters/);
      const batch = await client.send(
        new SendMessageBatchCommand({ QueueUrl: sqs.queueUrl, Entries: [{ Id: "a", MessageBody: body }] }),
      );
      expect(batch.Failed?.map((f) => f.Code)).toEqual(["InvalidMessageContents"]);
    } finally {
      client.destroy();
    }
  });
});
