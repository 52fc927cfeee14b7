/**
 * The ingest authorizer's logic: does the `x-kwc-key` header equal the shared key?
 *
 * - Constant time: both sides are hashed to 32 bytes first, so neither the comparison nor an early
 *   length check tells a caller how much of a guess was right.
 * - The key (a Secrets Manager value) is cached for `ttlMs`; on a mismatch it is re-read at most
 *   once per `refreshOnMismatchMs`, so a rotated key works without a deploy while a flood of wrong
 *   keys cannot turn into a flood of Secrets Manager calls.
 * - It answers both API Gateway shapes: HTTP API (payload 2.0, simple response) and REST (IAM
 *   policy), so the same function serves the default and the private REST ingest.
 */
import { createHash, timingSafeEqual } from "node:crypto";

export const INGEST_KEY_HEADER = "x-kwc-key";

export type LoadKey = () => Promise<string>;

export interface IngestKeyCheckerOptions {
  loadKey: LoadKey;
  /** @default 5 minutes */
  ttlMs?: number;
  /** @default 30 seconds */
  refreshOnMismatchMs?: number;
  /** @default Date.now */
  now?: () => number;
}

const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();

export function keysMatch(presented: string, expected: string): boolean {
  // Hash first: timingSafeEqual needs equal lengths, and a length check would leak the key's length.
  return timingSafeEqual(digest(presented), digest(expected)) && expected.length > 0;
}

/** Checks presented keys against the cached shared key. */
export function createIngestKeyChecker(
  options: IngestKeyCheckerOptions,
): (presented: string | undefined) => Promise<boolean> {
  const ttlMs = options.ttlMs ?? 5 * 60_000;
  const refreshOnMismatchMs = options.refreshOnMismatchMs ?? 30_000;
  const now = options.now ?? Date.now;
  let cached: { key: string; loadedAt: number } | undefined;

  const load = async () => {
    cached = { key: await options.loadKey(), loadedAt: now() };
    return cached.key;
  };

  return async (presented) => {
    if (presented === undefined || presented.length === 0) return false;
    const fresh = cached && now() - cached.loadedAt < ttlMs;
    const key = fresh && cached ? cached.key : await load();
    if (keysMatch(presented, key)) return true;
    if (cached && now() - cached.loadedAt >= refreshOnMismatchMs) {
      return keysMatch(presented, await load());
    }
    return false;
  };
}

/** The parts of either authorizer event this function reads. */
export interface AuthorizerEvent {
  version?: string;
  type?: string;
  methodArn?: string;
  routeArn?: string;
  headers?: Record<string, string | undefined> | null;
}

export type AuthorizerResponse =
  | { isAuthorized: boolean }
  | {
      principalId: string;
      policyDocument: {
        Version: "2012-10-17";
        Statement: [{ Action: "execute-api:Invoke"; Effect: "Allow" | "Deny"; Resource: string }];
      };
    };

/** Header lookup that ignores case: HTTP APIs lower-case header names, REST APIs keep them. */
export function headerValue(headers: AuthorizerEvent["headers"], name: string): string | undefined {
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted) return value;
  }
  return undefined;
}

/** The authorizer: one decision, answered in the shape the calling API expects. */
export function createIngestAuthorizer(isValidKey: (presented: string | undefined) => Promise<boolean>) {
  return async (event: AuthorizerEvent): Promise<AuthorizerResponse> => {
    const allowed = await isValidKey(headerValue(event.headers, INGEST_KEY_HEADER));
    if (event.version === "2.0") return { isAuthorized: allowed };
    return {
      principalId: "kamailio",
      policyDocument: {
        Version: "2012-10-17",
        Statement: [
          {
            Action: "execute-api:Invoke",
            Effect: allowed ? "Allow" : "Deny",
            Resource: event.methodArn ?? "*",
          },
        ],
      },
    };
  };
}
