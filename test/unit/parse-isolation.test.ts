// Batch isolation at the parser: parseMessage never throws, whatever the body (deep nesting is
// checked iteratively before anything recursive runs); the contract refuses the characters SQS or
// the database would refuse, with a reason; what the DLQ receives is always valid SQS text.
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { mockClient } from "aws-sdk-client-mock";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SqsDeadLetterSink } from "#adapters/sqs-dlq.ts";
import { MAX_EVENT_DEPTH, parseMessage, sqsSafeText, valueDepth } from "#core/parse.ts";

/** What SQS accepts in a message (its documented character set). */
const SQS_TEXT = /^(?:[\t\n\r\u0020-\uD7FF\uE000-\uFFFD]|[\uD800-\uDBFF][\uDC00-\uDFFF])*$/;

const failed = (callId: string) => ({
  type: "notify.failed",
  node: "node-a",
  boot: "1795625653-3509dd04",
  dialog: { callId, toTag: "t", fromTag: "f" },
  presentity: "sip:alice@example.com",
  event: "presence",
  code: 408,
  contact: "sip:x@127.0.0.1:40123;transport=ws",
  version: 2,
  at: 1795625653,
});

describe("parseMessage never throws", () => {
  it("an event nested 6,000 deep (12 KB) is one rejection with a reason; its neighbour is kept", () => {
    const neighbour = {
      type: "presence.changed",
      node: "n",
      boot: "1-abcd",
      presentity: "sip:a@b",
      event: "presence",
      at: 1795625653,
    };
    const body = `{"v":1,"events":[${"[".repeat(6000)}${"]".repeat(6000)},${JSON.stringify(neighbour)}]}`;
    const parsed = parseMessage(body);
    expect(parsed.events.map((e) => e.index)).toEqual([1]);
    expect(parsed.rejections).toEqual([
      {
        index: 0,
        reason: `events[0]: expected an event nested at most ${MAX_EVENT_DEPTH} deep, received more`,
        raw: body,
      },
    ]);
  });

  it("depths up to 100,000 and bodies up to 1 MiB (property)", () => {
    const shapes = fc.oneof(
      fc.record({
        depth: fc.integer({ min: 1, max: 100_000 }),
        open: fc.constantFrom("[", '{"a":'),
        close: fc.constantFrom("]", "}"),
      }),
    );
    fc.assert(
      fc.property(shapes, fc.integer({ min: 0, max: 1024 * 1024 }), fc.boolean(), (s, pad, wrap) => {
        const nested = `${s.open.repeat(s.depth)}1${s.close.repeat(s.depth)}`;
        const inner = wrap ? `{"v":1,"events":[${nested}]}` : nested;
        const body = inner + " ".repeat(Math.max(0, pad - inner.length));
        const parsed = parseMessage(body);
        expect(parsed.events.length + parsed.rejections.length).toBeGreaterThan(0);
      }),
      { numRuns: 60 },
    );
  });

  it("counts depth iteratively, a million levels included", () => {
    expect(valueDepth(JSON.parse('{"a":"[[[[{{{","b":[[1]]}'))).toBe(3);
    expect(valueDepth(JSON.parse(`${"[".repeat(1e6)}${"]".repeat(1e6)}`), 10)).toBe(11);
  });
});

describe("the contract refuses what SQS or the database would refuse, with a reason", () => {
  it.each([
    ["NUL (PostgreSQL refuses it in a statement)", "a\u0000b"],
    ["another C0 control", "a\u001fb"],
    ["DEL", "a\u007fb"],
    ["U+FFFE", "a\ufffeb"],
    ["U+FFFF (SQS refuses it)", "a\uffffb"],
    ["a lone high surrogate", "a\ud800b"],
    ["a lone low surrogate", "a\udc00b"],
  ])("%s in a Call-ID", (_name, callId) => {
    const parsed = parseMessage(JSON.stringify({ v: 1, events: [failed(callId), failed("ok")] }));
    expect(parsed.events.map((e) => e.index)).toEqual([1]);
    expect(parsed.rejections[0]?.reason).toMatch(
      /^events\[0\]\.dialog\.callId: expected text without control characters/,
    );
  });

  it("control: astral characters (emoji) and other Unicode pass, as SQS accepts them", () => {
    const parsed = parseMessage(JSON.stringify({ v: 1, events: [failed("déjà-vu-\u{1F600}-\u4e2d")] }));
    expect(parsed.rejections).toEqual([]);
  });
});

describe("DLQ text is always valid SQS text", () => {
  it("sqsSafeText escapes exactly what SQS refuses (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        const safe = sqsSafeText(s);
        expect(SQS_TEXT.test(safe)).toBe(true);
        if (SQS_TEXT.test(s)) expect(safe).toBe(s);
      }),
    );
  });

  it("the sink sends a rejected body and reason holding U+FFFF as escapes", async () => {
    const sqs = mockClient(SQSClient);
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const body = JSON.stringify({ v: 1, events: [failed("a\uffffb")] }); // JSON.stringify keeps U+FFFF raw
    const parsed = parseMessage(body);
    const [r] = parsed.rejections;
    await new SqsDeadLetterSink(new SQSClient({}), "https://sqs/dlq").send([
      { body: r?.raw ?? "", reason: r?.reason ?? "", sourceMessageId: "m" },
    ]);
    const entry = sqs.commandCalls(SendMessageBatchCommand)[0]?.args[0].input.Entries?.[0];
    expect(SQS_TEXT.test(entry?.MessageBody ?? "\uffff")).toBe(true);
    expect(entry?.MessageBody).toContain("\\uffff");
    expect(SQS_TEXT.test(entry?.MessageAttributes?.["kwc-reason"]?.StringValue ?? "\uffff")).toBe(true);
    sqs.restore();
  });
});
