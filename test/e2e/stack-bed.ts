// One local pipeline (`npm start`'s stack, in-process) per e2e file, over its own database and
// state dir, on fresh loopback addresses, with short SQS timers; close() removes all of it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { type LocalStack, type LocalStackOptions, startLocalStack } from "../../local/stack.ts";
import { createTestDb, type Engine, type TestDb } from "../helpers/db.ts";
import { loopbackAddress } from "../helpers/ports.ts";
import type { SipWsClient } from "../helpers/sip-ws-client.ts";

export interface StackBed {
  db: TestDb;
  stack: LocalStack;
  /** Clients the tests opened; closed by close(). */
  clients: SipWsClient[];
  close(): Promise<void>;
}

export async function startStackBed(
  engine: Engine,
  prefix: string,
  options: { nodes: 1 | 2 } & Partial<Omit<LocalStackOptions, "engine" | "database" | "stateDir">>,
): Promise<StackBed> {
  const db = await createTestDb(engine, prefix);
  const stateDir = mkdtempSync(join(tmpdir(), `kwc-${prefix}-`));
  const clients: SipWsClient[] = [];
  const close = async () => {
    for (const c of clients) c.close();
    await stack?.stop();
    await db.drop();
    rmSync(stateDir, { recursive: true, force: true });
  };
  let stack: LocalStack | undefined;
  try {
    stack = await startLocalStack({
      listenIps: Array.from({ length: options.nodes }, () => loopbackAddress()),
      visibilityTimeoutSeconds: 2,
      waitTimeSeconds: 1,
      // off unless a test turns it on: then the timer is what deletes a stale row
      reconcileEveryMs: 0,
      log: () => {},
      ...options,
      engine,
      database: db.name,
      stateDir,
    });
  } catch (e) {
    await close();
    throw e;
  }
  return { db, stack, clients, close };
}

/** The `kwc-reason` of each message in the stack's DLQ (left visible: VisibilityTimeout 0). */
export async function dlqReasons(stack: LocalStack): Promise<string[]> {
  const sqs = stack.sqs.createClient();
  try {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: stack.sqs.dlqUrl,
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ["All"],
        VisibilityTimeout: 0,
      }),
    );
    return (out.Messages ?? []).map((m) => m.MessageAttributes?.["kwc-reason"]?.StringValue ?? "");
  } finally {
    sqs.destroy();
  }
}
