/**
 * A Lambda Invoke-compatible HTTP endpoint for local mode, so the real `@aws-sdk/client-lambda`
 * (`InvokeCommand`, e.g. `kwc --remote`) runs against the on-demand cleanup handler on this
 * machine. Point the SDK at it with `AWS_ENDPOINT_URL_LAMBDA` or an explicit `endpoint`.
 *
 * Implements `POST /2015-03-31/functions/{FunctionName}/invocations` as Lambda does:
 * - FunctionName may be a name, a full or partial ARN, with or without a `:qualifier`;
 * - `X-Amz-Invocation-Type`: RequestResponse (200 + the JSON result), Event (202, runs in the
 *   background), DryRun (204);
 * - a handler that throws → 200 with `X-Amz-Function-Error: Unhandled` and
 *   `{errorType, errorMessage, trace}`, exactly what the SDK surfaces as `FunctionError`;
 * - unknown function → 404 ResourceNotFoundException; payload over 6 MB → 413
 *   RequestTooLargeException; invalid JSON → 400 InvalidRequestContentException;
 * - `X-Amz-Log-Type: Tail` gets an empty `X-Amz-Log-Result`: handler logs go to this process's stdout.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Context } from "aws-lambda";

export type InvokeHandler = (event: unknown, context: Context) => Promise<unknown>;

export interface InvokeServerOptions {
  /** Function name → handler (the same module the Lambda runs). */
  functions: Record<string, InvokeHandler>;
  region?: string;
  host?: string;
  port?: number;
  /** The function timeout: a longer invocation answers as Lambda's "Task timed out". */
  functionTimeoutMs?: number;
}

export interface InvokeServer {
  endpoint: string;
  /** The registry the server dispatches to (functions may be added after start). */
  functions: Record<string, InvokeHandler>;
  /** Invocations by function name. */
  invocations: Record<string, number>;
  close(): Promise<void>;
}

/** Lambda's limit for a synchronous request payload. */
const MAX_SYNC_PAYLOAD = 6 * 1024 * 1024;
const PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = body === undefined ? "" : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "x-amzn-requestid": randomUUID(),
    ...headers,
  });
  res.end(text);
}

function apiError(res: ServerResponse, status: number, type: string, message: string): void {
  sendJson(res, status, { Type: "User", message }, { "x-amzn-errortype": type });
}

/** `my-fn`, `my-fn:live`, `123456789012:function:my-fn`, `arn:aws:lambda:…:function:my-fn:1` → `my-fn`. */
export function functionNameOf(raw: string): string {
  const parts = raw.split(":");
  const at = parts.indexOf("function");
  if (at >= 0) return parts[at + 1] ?? "";
  return parts[0] ?? "";
}

function readAll(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on("end", () => resolve(size > limit ? undefined : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** A Lambda `Context` for a local invocation (the deadline starts now). */
export function lambdaContext(name: string, timeoutMs: number, region = "us-east-1"): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: name,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:${region}:000000000000:function:${name}`,
    memoryLimitInMB: "256",
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: "local",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

export async function startInvokeServer(options: InvokeServerOptions): Promise<InvokeServer> {
  const region = options.region ?? "us-east-1";
  const functionTimeoutMs = options.functionTimeoutMs ?? 900_000;
  const invocations: Record<string, number> = {};
  const background = new Set<Promise<unknown>>();

  async function run(handler: InvokeHandler, name: string, event: unknown): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new Error(`Task timed out after ${(functionTimeoutMs / 1000).toFixed(2)} seconds`);
        error.name = "Sandbox.Timedout";
        reject(error);
      }, functionTimeoutMs);
    });
    try {
      return await Promise.race([handler(event, lambdaContext(name, functionTimeoutMs, region)), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "").split("?")[0] ?? "";
    const match = PATH.exec(path);
    if (req.method !== "POST" || !match) {
      req.resume();
      return apiError(res, 404, "UnknownOperationException", `Unknown operation ${req.method} ${path}`);
    }
    const name = functionNameOf(decodeURIComponent(match[1] ?? ""));
    const handler = Object.hasOwn(options.functions, name) ? options.functions[name] : undefined;
    if (!handler) {
      req.resume();
      return apiError(
        res,
        404,
        "ResourceNotFoundException",
        `Function not found: arn:aws:lambda:${region}:000000000000:function:${name}`,
      );
    }
    const body = await readAll(req, MAX_SYNC_PAYLOAD);
    if (body === undefined) {
      return apiError(
        res,
        413,
        "RequestTooLargeException",
        `Request must be smaller than ${MAX_SYNC_PAYLOAD} bytes for the InvokeFunction operation`,
      );
    }
    let event: unknown = {};
    if (body.length > 0) {
      try {
        event = JSON.parse(body.toString("utf8"));
      } catch {
        return apiError(
          res,
          400,
          "InvalidRequestContentException",
          "Could not parse request body into json: Unexpected character",
        );
      }
    }
    const type = String(req.headers["x-amz-invocation-type"] ?? "RequestResponse");
    if (type === "DryRun") return sendJson(res, 204, undefined);
    invocations[name] = (invocations[name] ?? 0) + 1;
    if (type === "Event") {
      const job = run(handler, name, event).catch(() => {});
      background.add(job);
      void job.finally(() => background.delete(job));
      return sendJson(res, 202, undefined);
    }
    const headers: Record<string, string> = { "x-amz-executed-version": "$LATEST" };
    if (req.headers["x-amz-log-type"] === "Tail") headers["x-amz-log-result"] = "";
    try {
      const result = await run(handler, name, event);
      // Lambda serialises `undefined` as JSON null.
      return sendJson(res, 200, result ?? null, headers);
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      return sendJson(
        res,
        200,
        {
          errorType: err.name || "Error",
          errorMessage: err.message,
          trace: (err.stack ?? "").split("\n"),
        },
        { ...headers, "x-amz-function-error": "Unhandled" },
      );
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) apiError(res, 500, "ServiceException", String(error));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    endpoint: `http://${address}:${port}`,
    functions: options.functions,
    invocations,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await Promise.allSettled([...background]);
    },
  };
}
