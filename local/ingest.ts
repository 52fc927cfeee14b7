/**
 * Local ingest: the deployed ingest's contract (DESIGN.md §2), nothing more.
 *
 * The deployed default is an HTTP API with a cached Lambda request authorizer on the
 * `x-kwc-key` header and a direct SQS-SendMessage integration, so this server mirrors exactly
 * what that can do:
 * - only `POST /events` exists (anything else: 404 `{"message":"Not Found"}`), plus the local
 *   readiness probe `GET /healthz` (200 `{"ok":true}`, no key needed, no secret in it);
 * - no `x-kwc-key` → 401, a key of no node → 403, decided from the headers before the body is read
 *   (the authorizer never sees the body); the key is resolved to its node by the authorizer's own
 *   code (per-node keys, two during a rotation: lambdas/core/ingest-auth.ts);
 * - a body over the queue's maximum message size → 413 (SQS would refuse it);
 * - otherwise the whole body becomes ONE SQS message, with the authenticated node id as its
 *   `kwc-node` attribute (as the deployed integration maps it from the authorizer context), and the
 *   answer is 200; an SQS refusal of the body is a 400, SQS unreachable a 5xx, so the sender
 *   (Kamailio) keeps the events and re-queues them.
 * Unlike API Gateway it does not cache the authorizer's answer: a key removed from `keys` stops
 * working at once here, after up to the authorizer cache TTL there (docs/security.md).
 * It does not validate the body: the worker is the validator.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { createIngestKeyChecker, INGEST_KEY_HEADER, type IngestKeys } from "#core/ingest-auth.ts";
import { INGEST_NODE_ATTRIBUTE } from "#core/ingest-identity.ts";
import { mark } from "./trace.ts";

export interface IngestOptions {
  client: SQSClient;
  queueUrl: string;
  /** Each node's key(s), as in the deployed keys secret: a node sends its own in `x-kwc-key`. */
  keys: IngestKeys;
  /** The queue's maximum message size: bodies that do not fit with the kwc-node attribute get 413. */
  maxBodyBytes: number;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
}

export interface IngestStats {
  accepted: number;
  unauthorized: number;
  forbidden: number;
  tooLarge: number;
  failed: number;
  /** Requests answered 503 while the ingest was made unavailable (an outage, for tests). */
  unavailable: number;
}

export interface IngestServer {
  /** Base URL, e.g. http://127.0.0.1:40123 ; the route is `${url}/events`. */
  url: string;
  eventsUrl: string;
  stats: Readonly<IngestStats>;
  /**
   * false: every POST gets 503 and nothing is queued, as during an ingest outage (Kamailio keeps
   * and re-queues its envelopes, then drops them after its retries; the reconciler catches up).
   */
  setAvailable(up: boolean): void;
  /**
   * For the latency bench's baselines only: accepted bodies go to `sink` (answered 200 first)
   * instead of SQS; `undefined` restores the queue. The deployed ingest has no such switch.
   */
  divertTo(sink: ((body: string, node: string) => Promise<void>) | undefined): void;
  /** Calls `watcher` with each accepted body (queued or diverted); returns the unsubscribe. */
  onAccepted(watcher: (body: string) => void): () => void;
  close(): Promise<void>;
}

export { INGEST_KEY_HEADER };

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** Bytes the kwc-node attribute adds to a message, as SQS counts them (name + data type + value). */
export function nodeAttributeBytes(node: string): number {
  return Buffer.byteLength(INGEST_NODE_ATTRIBUTE) + Buffer.byteLength("String") + Buffer.byteLength(node);
}

/** Reads the body up to `limit` bytes; `undefined` once it is known to be larger. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) over = true;
      else chunks.push(chunk);
    });
    req.on("end", () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

export async function startIngestServer(options: IngestOptions): Promise<IngestServer> {
  const stats: IngestStats = {
    accepted: 0,
    unauthorized: 0,
    forbidden: 0,
    tooLarge: 0,
    failed: 0,
    unavailable: 0,
  };
  let available = true;
  const nodeForKey = createIngestKeyChecker({ loadKeys: async () => options.keys, ttlMs: 0 });
  let divert: ((body: string, node: string) => Promise<void>) | undefined;
  const watchers = new Set<(body: string) => void>();
  const accepted = (body: string) => {
    stats.accepted++;
    for (const watcher of watchers) watcher(body);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && path === "/healthz") {
      req.resume();
      return reply(res, 200, { ok: true, queue: "reachable" });
    }
    if (req.method !== "POST" || path !== "/events") {
      req.resume();
      return reply(res, 404, { message: "Not Found" });
    }
    const given = req.headers[INGEST_KEY_HEADER];
    if (given === undefined || given === "") {
      stats.unauthorized++;
      req.resume();
      return reply(res, 401, { message: "Unauthorized" });
    }
    const node = typeof given === "string" ? await nodeForKey(given) : undefined;
    if (node === undefined) {
      stats.forbidden++;
      req.resume();
      return reply(res, 403, { message: "Forbidden" });
    }
    if (!available) {
      stats.unavailable++;
      req.resume();
      return reply(res, 503, { message: "Service Unavailable" });
    }
    // SQS counts the attribute (name, type, value) towards the message size.
    const limit = options.maxBodyBytes - nodeAttributeBytes(node);
    const declared = Number(req.headers["content-length"] ?? Number.NaN);
    if (declared > limit) {
      stats.tooLarge++;
      req.resume();
      return reply(res, 413, { message: "Request Entity Too Large" });
    }
    const body = await readBody(req, limit);
    if (body === undefined) {
      stats.tooLarge++;
      return reply(res, 413, { message: "Request Entity Too Large" });
    }
    mark("ingest received");
    if (divert) {
      accepted(body.toString("utf8"));
      reply(res, 200, { MessageId: "diverted" });
      return divert(body.toString("utf8"), node);
    }
    try {
      const out = await options.client.send(
        new SendMessageCommand({
          QueueUrl: options.queueUrl,
          MessageBody: body.toString("utf8"),
          MessageAttributes: { [INGEST_NODE_ATTRIBUTE]: { DataType: "String", StringValue: node } },
        }),
      );
      accepted(body.toString("utf8"));
      mark("ingest queued");
      return reply(res, 200, { MessageId: out.MessageId, MD5OfMessageBody: out.MD5OfMessageBody });
    } catch (error) {
      // SQS refused (empty body, invalid characters) or is unreachable: nothing was queued.
      stats.failed++;
      const err = error as { name?: string; $metadata?: { httpStatusCode?: number } };
      const clientFault = (err.$metadata?.httpStatusCode ?? 500) < 500 && err.name !== "TimeoutError";
      return reply(res, clientFault ? 400 : 503, { message: err.name ?? "Service Unavailable" });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      stats.failed++;
      if (!res.headersSent) reply(res, 500, { message: `Internal Server Error: ${String(error)}` });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address.includes(":") ? `[${address}]` : address}:${port}`;
  return {
    url,
    eventsUrl: `${url}/events`,
    stats,
    setAvailable(up) {
      available = up;
    },
    divertTo(sink) {
      divert = sink;
    },
    onAccepted(watcher) {
      watchers.add(watcher);
      return () => watchers.delete(watcher);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
