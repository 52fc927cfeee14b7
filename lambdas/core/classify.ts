/**
 * Error classification: what a fault means for the message that caused it.
 *   transient      → retry the record (SQS redelivers it: batchItemFailures)
 *   refresh-fault  → presence.refreshWatchers answered 500: reconcile that presentity once, refresh once more
 *   permanent      → log it with its message; retrying would not help
 * The meaning of a refresh 500 depends on the node's version and mode (DESIGN §2, FINDINGS.md).
 */
import type { DatabaseEngine, NodeFacts } from "./fleet.ts";
import { versionAtLeast } from "./fleet.ts";

/** Kamailio answered with a JSON-RPC `error` member (HTTP 200/500), or refused the token (HTTP 401/403). */
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
  override readonly name: string = "RpcTransportError";
  constructor(
    readonly method: string,
    detail: string,
    readonly httpStatus?: number,
  ) {
    super(`${method}: ${detail}`);
  }
}

/**
 * The node refused the call over its refresh budget (kwc.cfg route KWC_REFRESH_BUDGET answers 503):
 * transient, and a signal to send it nothing more for now. Every caller of the node meets there.
 */
export class NodeOverloadedError extends RpcTransportError {
  override readonly name: string = "NodeOverloadedError";
  constructor(method: string, nodeId: string) {
    super(method, `node ${nodeId} refused it over its refresh budget (HTTP 503)`, 503);
  }
}

/**
 * The two Data API exceptions the model answers with HTTP 400 that still mean "try again later"
 * (a paused Aurora cluster is resuming; a statement timed out while it resumed). The SDK does not
 * retry them. Every other fault is judged by its class, not its name: 5xx, 429, `$fault: "server"`
 * or an SDK-retryable error is transient, a 4xx is not.
 */
export const RETRY_LATER_400_ERRORS = new Set(["DatabaseResumingException", "StatementTimeoutException"]);

/** No answer at all (the request may not have reached the service): client-side timeouts. */
const CLIENT_TIMEOUT_ERRORS = new Set(["TimeoutError", "AbortError"]);

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
  /** overloaded: the node answered 503 over its refresh budget (back off, never drop). */
  | { kind: "transient"; detail: string; overloaded?: true }
  | { kind: "refresh-fault"; detail: string; meaning: string }
  | { kind: "permanent"; detail: string };

function messageOf(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function hasNetworkCode(error: unknown): boolean {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | undefined;
  return [e?.code, e?.cause?.code].some(
    (code) => typeof code === "string" && TRANSIENT_NETWORK_CODES.has(code),
  );
}

/** Data API / database errors, by retryability and status class (see RETRY_LATER_400_ERRORS). */
export function classifyStoreError(error: unknown): Fault {
  const e = error as
    | {
        name?: string;
        $fault?: "client" | "server";
        $retryable?: unknown;
        $metadata?: { httpStatusCode?: number };
      }
    | undefined;
  const status = e?.$metadata?.httpStatusCode;
  const transient =
    (status !== undefined && (status >= 500 || status === 429)) ||
    e?.$fault === "server" ||
    Boolean(e?.$retryable) ||
    (e?.name !== undefined && RETRY_LATER_400_ERRORS.has(e.name)) ||
    (status === undefined && e?.name !== undefined && CLIENT_TIMEOUT_ERRORS.has(e.name)) ||
    hasNetworkCode(error) ||
    isConcurrencyConflict(error);
  return { kind: transient ? "transient" : "permanent", detail: messageOf(error) };
}

/**
 * The Data API refused to return a result that big (over the 1 MiB response limit): a client fault
 * (4xx, never retried as is) whose message says so; the caller may ask for a smaller page. The
 * exception's name is not relied on (BadRequestException or UnsupportedResultException).
 */
export function isResponseTooLarge(error: unknown): boolean {
  const e = error as { message?: unknown; $fault?: unknown; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  const clientFault = e?.$fault === "client" || (status !== undefined && status >= 400 && status < 500);
  return clientFault && /response size|too large|exceed/i.test(String(e?.message ?? ""));
}

/** What a refresh 500 ("Execution failed") means on this node. */
export function refreshFaultMeaning(facts: NodeFacts, engine: DatabaseEngine): string {
  const v = facts.kamailioVersion;
  if (facts.notifierProcesses > 0) {
    if (engine === "postgres" && versionAtLeast(v, [5, 7, 0]))
      return `notifier mode on PostgreSQL is broken from 5.7.0 (commit c80cccd996; same "transaction not in progress" error as GH #2739): Kamailio ${v} fails every refresh; run notifier_processes=0`;
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
  if (error instanceof NodeOverloadedError)
    return { kind: "transient", detail: error.message, overloaded: true };
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
  if (hasNetworkCode(error)) return { kind: "transient", detail: messageOf(error) };
  if (error instanceof Error && CLIENT_TIMEOUT_ERRORS.has(error.name))
    return { kind: "transient", detail: messageOf(error) };
  return { kind: "permanent", detail: messageOf(error) };
}

/**
 * MySQL error numbers that say "this value cannot be used here" (the SQLSTATE class 22 family):
 * incorrect string value, data too long, out of range, truncated/illegal value, bad character set.
 */
const MYSQL_DATA_ERRORS = new Set([1264, 1265, 1292, 1300, 1366, 1367, 1406, 3854]);

/** PostgreSQL: deadlock, serialization failure, lock not available; MySQL: deadlock, lock wait timeout. */
const PG_CONFLICT_STATES = new Set(["40P01", "40001", "55P03"]);
const MYSQL_CONFLICT_CODES = new Set([1213, 1205]);

/**
 * True when a statement lost a race with another session (a deadlock with Kamailio's own presence
 * writes or a concurrent worker, a lock wait timeout): the database rolled it back, and the same
 * statement succeeds when run again. Found by bench/mass-disconnect.ts, where a 40P01 was taken
 * for permanent and dead-lettered 40 close events.
 */
export function isConcurrencyConflict(error: unknown): boolean {
  const message = String((error as { message?: unknown } | undefined)?.message ?? "");
  const pg = message.match(/SQLState:\s*([0-9A-Z]{5})/i);
  if (pg?.[1]) return PG_CONFLICT_STATES.has(pg[1].toUpperCase());
  const my = message.match(/Database error code:\s*(\d+)/i);
  return my?.[1] !== undefined && MYSQL_CONFLICT_CODES.has(Number(my[1]));
}

/**
 * True when a statement failed because of the data it carried (PostgreSQL SQLSTATE class 22, e.g.
 * 22021 for a NUL byte; its MySQL equivalents): one event's value, not the statement or the
 * database, is at fault, so the caller may split the statement to find that event. Permission
 * (42501 / 1142) and missing-table (42P01 / 1146) errors are never data errors.
 */
export function isDataError(error: unknown): boolean {
  const message = String((error as { message?: unknown } | undefined)?.message ?? "");
  const pg = message.match(/SQLState:\s*([0-9A-Z]{5})/i);
  if (pg?.[1]) return pg[1].startsWith("22");
  const my = message.match(/Database error code:\s*(\d+)/i);
  return my?.[1] !== undefined && MYSQL_DATA_ERRORS.has(Number(my[1]));
}
