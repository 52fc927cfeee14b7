/**
 * The ingest authorizer's logic: which node does the `x-kwc-key` header belong to?
 *
 * - Per-node keys (docs/security.md): one fleet-wide key would let any compromised node forge
 *   events for every node. The keys secret maps each node id to one key, or two during a
 *   rotation; the authorizer answers the node id, API Gateway caches that answer per key value and
 *   hands it to the SQS integration, which sets it as the `kwc-node` message attribute
 *   (core/ingest-identity.ts), and the worker ignores events that claim another node.
 * - Constant time: both sides are hashed to 32 bytes first, so neither the comparison nor an early
 *   length check tells a caller how much of a guess was right; every key is compared, match or not.
 * - The keys are cached for `ttlMs`; on a miss they are re-read at most once per
 *   `refreshOnMismatchMs`, so a new key works without a deploy while a flood of wrong keys cannot
 *   turn into a flood of Secrets Manager calls.
 * - It answers both API Gateway shapes: HTTP API (payload 2.0, simple response) and REST (IAM
 *   policy), so the same function serves the default and the private REST ingest.
 * - Error messages name nodes and positions, never a key value.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { NodeIdSchema } from "./contract.ts";

export const INGEST_KEY_HEADER = "x-kwc-key";
/** Key of the authorizer context that carries the authenticated node id (`$context.authorizer.node`). */
export const AUTHORIZER_NODE_CONTEXT = "node";

/** Header-safe (Kamailio puts the value into a header line as is) and long enough to be unguessable. */
export const INGEST_KEY_RE = /^[A-Za-z0-9._~+/=-]{32,256}$/;

/**
 * The keys secret: `{"<node id>": ["<key>"], ...}`; two keys for a node while it rotates
 * (docs/security.md, "Rotating a node's ingest key"). A key listed under two nodes is refused:
 * it could not say which node sent a POST.
 */
export const IngestKeysSchema = z
  .record(
    NodeIdSchema,
    z
      .array(z.string().regex(INGEST_KEY_RE, "a key of 32-256 header-safe characters [A-Za-z0-9._~+/=-]"))
      .min(1, "at least one key")
      .max(2, "at most two keys (the current one and the next, during a rotation)"),
  )
  .superRefine((keys, ctx) => {
    const owner = new Map<string, string>();
    for (const [node, list] of Object.entries(keys)) {
      list.forEach((key, i) => {
        const other = owner.get(key);
        if (other !== undefined && other !== node)
          ctx.addIssue({ code: "custom", path: [node, i], message: `the same key is also node ${other}'s` });
        owner.set(key, node);
      });
    }
  });
export type IngestKeys = z.infer<typeof IngestKeysSchema>;

/** Parses the keys secret; the error names where a problem is, never a key. */
export function parseIngestKeys(text: string): IngestKeys {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error('invalid ingest keys secret: not JSON (expected {"<node id>": ["<key>"], ...})');
  }
  const result = IngestKeysSchema.safeParse(raw);
  if (!result.success) {
    // Zod's own messages can quote the input; these name the path and the rule only.
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(`invalid ingest keys secret: ${problems.join("; ")}`);
  }
  return result.data;
}

export type LoadKeys = () => Promise<IngestKeys>;

export interface IngestKeyCheckerOptions {
  loadKeys: LoadKeys;
  /** How long a read of the secret is trusted. @default 5 minutes */
  ttlMs?: number;
  /** Least time between two re-reads caused by unknown keys. @default 30 seconds */
  refreshOnMismatchMs?: number;
  /** @default Date.now */
  now?: () => number;
}

const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();

export function keysMatch(presented: string, expected: string): boolean {
  // Hash first: timingSafeEqual needs equal lengths, and a length check would leak the key's length.
  return timingSafeEqual(digest(presented), digest(expected)) && expected.length > 0;
}

interface KeyTable {
  entries: { node: string; digest: Buffer }[];
  loadedAt: number;
}

/** The node whose key this is, comparing against every key so the time does not depend on which. */
function nodeOf(table: KeyTable, presented: string): string | undefined {
  const given = digest(presented);
  let found: string | undefined;
  for (const entry of table.entries) {
    if (timingSafeEqual(given, entry.digest) && found === undefined) found = entry.node;
  }
  return found;
}

/** Resolves presented keys to node ids against the cached keys secret; undefined = not a key. */
export function createIngestKeyChecker(
  options: IngestKeyCheckerOptions,
): (presented: string | undefined) => Promise<string | undefined> {
  const ttlMs = options.ttlMs ?? 5 * 60_000;
  const refreshOnMismatchMs = options.refreshOnMismatchMs ?? 30_000;
  const now = options.now ?? Date.now;
  let cached: KeyTable | undefined;

  const load = async (): Promise<KeyTable> => {
    const keys = await options.loadKeys();
    const entries = Object.entries(keys).flatMap(([node, list]) =>
      list.filter((key) => key.length > 0).map((key) => ({ node, digest: digest(key) })),
    );
    cached = { entries, loadedAt: now() };
    return cached;
  };

  return async (presented) => {
    if (presented === undefined || presented.length === 0) return undefined;
    const table = cached && now() - cached.loadedAt < ttlMs ? cached : await load();
    const node = nodeOf(table, presented);
    if (node !== undefined) return node;
    if (now() - table.loadedAt >= refreshOnMismatchMs) return nodeOf(await load(), presented);
    return undefined;
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
  | { isAuthorized: false }
  | { isAuthorized: true; context: { [AUTHORIZER_NODE_CONTEXT]: string } }
  | {
      principalId: string;
      policyDocument: {
        Version: "2012-10-17";
        Statement: [{ Action: "execute-api:Invoke"; Effect: "Allow" | "Deny"; Resource: string }];
      };
      context?: { [AUTHORIZER_NODE_CONTEXT]: string };
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

/** The authorizer: one decision (which node, if any), answered in the shape the calling API expects. */
export function createIngestAuthorizer(
  nodeForKey: (presented: string | undefined) => Promise<string | undefined>,
) {
  return async (event: AuthorizerEvent): Promise<AuthorizerResponse> => {
    const node = await nodeForKey(headerValue(event.headers, INGEST_KEY_HEADER));
    if (event.version === "2.0") {
      return node === undefined ? { isAuthorized: false } : { isAuthorized: true, context: { node } };
    }
    return {
      principalId: node ?? "unknown",
      policyDocument: {
        Version: "2012-10-17",
        Statement: [
          {
            Action: "execute-api:Invoke",
            Effect: node === undefined ? "Deny" : "Allow",
            Resource: event.methodArn ?? "*",
          },
        ],
      },
      ...(node === undefined ? {} : { context: { node } }),
    };
  };
}
