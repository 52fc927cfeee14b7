/**
 * Embedded SQS for local mode: fauxqs (in-process, in-memory) with the events queue, the follow-up
 * queue and their DLQs, with the character set SQS itself accepts (SQS_REFUSED_CHAR),
 * wired with the same redrive policy as the stack.
 *
 * fauxqs queue URLs use `sqs.<region>.localhost`, which does not resolve here: our clients get an
 * explicit endpoint and `useQueueUrlAsEndpoint: false`, and so does the worker's DLQ client when
 * `AWS_ENDPOINT_URL_SQS` is set (lambdas/handlers/compose.ts), so no DNS trick is needed.
 */
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  type QueueAttributeName,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { buildApp } from "fauxqs";

export const LOCAL_REGION = "us-east-1";
/** Dummy credentials: fauxqs does not authenticate, the SDK only needs something to sign with. */
export const LOCAL_CREDENTIALS = { accessKeyId: "local", secretAccessKey: "local" } as const;

export interface LocalSqsOptions {
  /** TCP port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  queueName?: string;
  dlqName?: string;
  /** Receives before SQS moves a message to the DLQ (the stack's redrive policy). */
  maxReceiveCount?: number;
  /** Seconds a received message stays invisible; tests go down to 1. */
  visibilityTimeoutSeconds?: number;
  /** The queue's maximum message size in bytes (also the ingest's 413 limit). */
  maximumMessageSizeBytes?: number;
}

export interface QueueDepth {
  visible: number;
  inFlight: number;
  delayed: number;
}

export interface LocalSqs {
  endpoint: string;
  region: string;
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
  dlqArn: string;
  /** The follow-up queue (refresh.requested from the functions) and its own DLQ, as in the stack. */
  followUpQueueUrl: string;
  followUpQueueArn: string;
  followUpDlqUrl: string;
  maxReceiveCount: number;
  visibilityTimeoutSeconds: number;
  maximumMessageSizeBytes: number;
  /** A new SDK client pointed at this server (callers own and destroy it). */
  createClient(): SQSClient;
  /** Message counts as SQS reports them (GetQueueAttributes). */
  depth(which: "queue" | "dlq"): Promise<QueueDepth>;
  stop(): Promise<void>;
}

export const DEFAULT_MAX_RECEIVE_COUNT = 5;
export const DEFAULT_MAXIMUM_MESSAGE_SIZE = 262_144;

export function createLocalSqsClient(endpoint: string): SQSClient {
  return new SQSClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    useQueueUrlAsEndpoint: false,
    maxAttempts: 2,
  });
}

/**
 * What SQS refuses in a message body: everything outside #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
 * #x10000-#x10FFFF (so U+FFFE/U+FFFF and lone surrogates). fauxqs 2.4.1 tests its own pattern
 * without the `u` flag, which refuses every astral character (an emoji) that SQS accepts.
 */
export const SQS_REFUSED_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

const sqsRefuses = (text: string): boolean => SQS_REFUSED_CHAR.test(text);

/**
 * Makes fauxqs accept what SQS accepts and refuse what it refuses: its check is one RegExp object
 * shared by SendMessage, SendMessageBatch and the query protocol, so its `test` is replaced on that
 * object (the module is loaded by file URL, the same instance fauxqs's own imports get).
 */
async function alignBodyCheckWithSqs(): Promise<void> {
  const types = (await import(new URL("./sqs/sqsTypes.js", import.meta.resolve("fauxqs")).href)) as {
    INVALID_MESSAGE_BODY_CHAR?: RegExp;
  };
  const check = types.INVALID_MESSAGE_BODY_CHAR;
  if (!check)
    throw new Error("fauxqs: INVALID_MESSAGE_BODY_CHAR not found (fauxqs upgraded? re-check local/sqs.ts)");
  if (check.test !== sqsRefuses) Object.defineProperty(check, "test", { value: sqsRefuses });
}

export async function startLocalSqs(options: LocalSqsOptions = {}): Promise<LocalSqs> {
  await alignBodyCheckWithSqs();
  const queueName = options.queueName ?? "kwc-events";
  const dlqName = options.dlqName ?? "kwc-events-dlq";
  const maxReceiveCount = options.maxReceiveCount ?? DEFAULT_MAX_RECEIVE_COUNT;
  const visibilityTimeoutSeconds = options.visibilityTimeoutSeconds ?? 30;
  const maximumMessageSizeBytes = options.maximumMessageSizeBytes ?? DEFAULT_MAXIMUM_MESSAGE_SIZE;
  // buildApp + our own listen (not startFauxqs, which binds 0.0.0.0): loopback only.
  const app = buildApp({ logger: false, defaultRegion: LOCAL_REGION });
  await app.listen({ port: options.port ?? 0, host: "127.0.0.1" });
  const address = app.server.address();
  if (!address || typeof address === "string") throw new Error("fauxqs did not bind a TCP port");
  const endpoint = `http://127.0.0.1:${address.port}`;
  const admin = createLocalSqsClient(endpoint);
  const create = async (name: string, attributes: Record<string, string>) => {
    const out = await admin.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
    const url = out.QueueUrl ?? "";
    const arnOut = await admin.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }),
    );
    return { queueUrl: url, queueArn: arnOut.Attributes?.QueueArn ?? "" };
  };
  // The DLQ keeps messages longer than the source queue, as in the stack.
  const dlq = await create(dlqName, { MessageRetentionPeriod: "1209600" });
  const queue = await create(queueName, {
    VisibilityTimeout: String(visibilityTimeoutSeconds),
    MessageRetentionPeriod: "345600",
    MaximumMessageSize: String(maximumMessageSizeBytes),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.queueArn, maxReceiveCount }),
  });
  const followUpDlq = await create(`${queueName}-follow-ups-dlq`, { MessageRetentionPeriod: "1209600" });
  const followUps = await create(`${queueName}-follow-ups`, {
    VisibilityTimeout: String(visibilityTimeoutSeconds),
    MessageRetentionPeriod: "345600",
    MaximumMessageSize: String(maximumMessageSizeBytes),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: followUpDlq.queueArn, maxReceiveCount }),
  });

  return {
    endpoint,
    region: LOCAL_REGION,
    queueUrl: queue.queueUrl,
    queueArn: queue.queueArn,
    dlqUrl: dlq.queueUrl,
    dlqArn: dlq.queueArn,
    followUpQueueUrl: followUps.queueUrl,
    followUpQueueArn: followUps.queueArn,
    followUpDlqUrl: followUpDlq.queueUrl,
    maxReceiveCount,
    visibilityTimeoutSeconds,
    maximumMessageSizeBytes,
    createClient: () => createLocalSqsClient(endpoint),
    async depth(which) {
      const out = await admin.send(
        new GetQueueAttributesCommand({
          QueueUrl: which === "queue" ? queue.queueUrl : dlq.queueUrl,
          AttributeNames: [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
          ],
        }),
      );
      const attr = (name: QueueAttributeName) => Number(out.Attributes?.[name] ?? 0);
      return {
        visible: attr("ApproximateNumberOfMessages"),
        inFlight: attr("ApproximateNumberOfMessagesNotVisible"),
        delayed: attr("ApproximateNumberOfMessagesDelayed"),
      };
    },
    async stop() {
      admin.destroy();
      await app.close();
    },
  };
}
