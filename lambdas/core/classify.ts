/**
 * Error classification: what a fault means for the message that caused it.
 *   transient      → retry the record (SQS redelivers it: batchItemFailures)
 *   refresh-fault  → presence.refreshWatchers answered 500: reconcile that presentity once, refresh once more
 *   permanent      → log it with its message; retrying would not help
 * The meaning of a refresh 500 depends on the node's version and mode (DESIGN §2, FINDINGS.md).
 */
import type { DatabaseEngine, NodeFacts } from "./fleet.ts";
import { versionAtLeast } from "./fleet.ts";

/** Kamailio answered HTTP 200/500 with a JSON-RPC `error` member. */
export class RpcFaultError extends Error {
  override readonly name = "RpcFaultError";
  constructor(
    readonly method: string,
    readonly code: number,
    readonly rpcMessage: string,
    readonly httpStatus: number,
  ) {
    super(`${method}: JSON-RPC error ${code} ${JSON.stringify(rpcMessage)} (HTTP ${httpStatus})`);
  }
}

/** The node could not be reached or answered something that is not JSON-RPC (timeout, refused, 502...). */
export class RpcTransportError extends Error {
  override readonly name = "RpcTransportError";
  constructor(
    readonly method: string,
    detail: string,
    readonly httpStatus?: number,
  ) {
    super(`${method}: ${detail}`);
  }
}

/** Data API exception names that mean "try again later" (the SDK does not retry the 400 ones). */
export const TRANSIENT_DATA_API_ERRORS = new Set([
  "DatabaseResumingException",
  "StatementTimeoutException",
  "DatabaseUnavailableException",
  "InternalServerErrorException",
  "ServiceUnavailableError",
  "ThrottlingException",
  "TooManyRequestsException",
  "TimeoutError",
  "RequestTimeout",
  "AbortError",
]);

const TRANSIENT_NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

export type Fault =
  | { kind: "transient"; detail: string }
  | { kind: "refresh-fault"; detail: string; meaning: string }
  | { kind: "permanent"; detail: string };

function messageOf(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Data API / database errors. */
export function classifyStoreError(error: unknown): Fault {
  const e = error as {
    name?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
    cause?: unknown;
  };
  const status = e?.$metadata?.httpStatusCode;
  const causeCode = (e?.cause as { code?: string } | undefined)?.code;
  if (
    (e?.name && TRANSIENT_DATA_API_ERRORS.has(e.name)) ||
    (e?.code && TRANSIENT_NETWORK_CODES.has(e.code)) ||
    (causeCode && TRANSIENT_NETWORK_CODES.has(causeCode)) ||
    (status !== undefined && status >= 500)
  ) {
    return { kind: "transient", detail: messageOf(error) };
  }
  return { kind: "permanent", detail: messageOf(error) };
}

/** What a refresh 500 ("Execution failed") means on this node. */
export function refreshFaultMeaning(facts: NodeFacts, engine: DatabaseEngine): string {
  const v = facts.kamailioVersion;
  if (facts.notifierProcesses > 0) {
    if (engine === "postgres" && versionAtLeast(v, [5, 7, 0]))
      return `notifier mode on PostgreSQL is broken from 5.7.0 (GH #2739): Kamailio ${v} fails every refresh; run notifier_processes=0`;
    return `notifier mode on ${v}: the refresh could not be queued (database error on the node)`;
  }
  if (versionAtLeast(v, [5, 8, 6]))
    return `sync mode on ${v} (GH #4118 fixed): no NOTIFY went out for this presentity (every watcher failed)`;
  return `sync mode on ${v} (GH #4118 not fixed): a NOTIFY send failed and the watchers after it were skipped`;
}

/** Kamailio JSON-RPC errors, per method and per node. */
export function classifyRpcError(
  error: unknown,
  method: string,
  facts: NodeFacts,
  engine: DatabaseEngine,
): Fault {
  if (error instanceof RpcTransportError) return { kind: "transient", detail: error.message };
  if (error instanceof RpcFaultError) {
    if (
      method === "presence.refreshWatchers" &&
      error.code === 500 &&
      /execution failed/i.test(error.rpcMessage)
    ) {
      return { kind: "refresh-fault", detail: error.message, meaning: refreshFaultMeaning(facts, engine) };
    }
    // 401/403 from xhttp (bad token), Method Not Found, bad parameters: retrying cannot help.
    return { kind: "permanent", detail: error.message };
  }
  const code = (error as { code?: string; cause?: { code?: string } })?.code;
  const causeCode = (error as { cause?: { code?: string } })?.cause?.code;
  if ((code && TRANSIENT_NETWORK_CODES.has(code)) || (causeCode && TRANSIENT_NETWORK_CODES.has(causeCode)))
    return { kind: "transient", detail: messageOf(error) };
  if (error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError"))
    return { kind: "transient", detail: messageOf(error) };
  return { kind: "permanent", detail: messageOf(error) };
}
