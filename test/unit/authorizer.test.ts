import { describe, expect, it } from "vitest";
import {
  createIngestAuthorizer,
  createIngestKeyChecker,
  headerValue,
  type IngestKeys,
  keysMatch,
  parseIngestKeys,
} from "#core/ingest-auth.ts";

const KEY_A = "k3y-0f-node-a-48-chars-xxxxxxxxxxxxxxxxxxxxxxxxx";
const KEY_B = "k3y-0f-node-b-48-chars-yyyyyyyyyyyyyyyyyyyyyyyyy";
const NEXT_A = "next-k3y-0f-node-a-zzzzzzzzzzzzzzzzzzzzzzzzzzzzz";

function fakeSecret(values: IngestKeys[]) {
  let calls = 0;
  return {
    loadKeys: async () => {
      const value = values[Math.min(calls, values.length - 1)];
      calls += 1;
      if (value === undefined) throw new Error("no value");
      return value;
    },
    get calls() {
      return calls;
    },
  };
}

describe("keysMatch", () => {
  it("accepts the exact key and rejects near misses of any length", () => {
    expect(keysMatch(KEY_A, KEY_A)).toBe(true);
    expect(keysMatch(`${KEY_A} `, KEY_A)).toBe(false);
    expect(keysMatch(KEY_A.slice(0, -1), KEY_A)).toBe(false);
    expect(keysMatch(KEY_A.toUpperCase(), KEY_A)).toBe(false);
    expect(keysMatch("", KEY_A)).toBe(false);
  });

  it("never accepts anything against an empty expected key", () => {
    expect(keysMatch("", "")).toBe(false);
  });
});

describe("parseIngestKeys", () => {
  it("reads a map of node id → one or two keys", () => {
    expect(parseIngestKeys(JSON.stringify({ "ws-a": [KEY_A, NEXT_A], "ws-b": [KEY_B] }))).toEqual({
      "ws-a": [KEY_A, NEXT_A],
      "ws-b": [KEY_B],
    });
    expect(parseIngestKeys("{}")).toEqual({});
  });

  it.each([
    ["not JSON", KEY_A, "not JSON"],
    ["a plain string (the old fleet-wide key)", JSON.stringify(KEY_A), "(root)"],
    ["three keys for a node", JSON.stringify({ "ws-a": [KEY_A, NEXT_A, `${KEY_A}3`] }), "at most two keys"],
    ["no key for a node", JSON.stringify({ "ws-a": [] }), "at least one key"],
    ["a short key", JSON.stringify({ "ws-a": ["short"] }), "ws-a.0: a key of 32-256"],
    ["a key with a header-breaking character", JSON.stringify({ "ws-a": [`${KEY_A}\r\nx`] }), "ws-a.0"],
    ["a bad node id", JSON.stringify({ "bad node": [KEY_A] }), "bad node"],
    ["one key under two nodes", JSON.stringify({ "ws-a": [KEY_A], "ws-b": [KEY_A] }), "also node ws-a's"],
  ])("refuses %s, without quoting any key", (_name, text, expected) => {
    let message = "";
    try {
      parseIngestKeys(text);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain(expected);
    for (const key of [KEY_A, NEXT_A, "short"]) expect(message).not.toContain(key);
  });
});

describe("createIngestKeyChecker", () => {
  it("maps each node's key to that node, and any other value to nothing", async () => {
    const check = createIngestKeyChecker({ loadKeys: async () => ({ "ws-a": [KEY_A], "ws-b": [KEY_B] }) });
    expect(await check(KEY_A)).toBe("ws-a");
    expect(await check(KEY_B)).toBe("ws-b");
    expect(await check(`${KEY_A}x`)).toBeUndefined();
    expect(await check("guess")).toBeUndefined();
  });

  it("accepts both keys of a node during a rotation, each for that node only", async () => {
    const check = createIngestKeyChecker({
      loadKeys: async () => ({ "ws-a": [KEY_A, NEXT_A], "ws-b": [KEY_B] }),
    });
    expect(await check(KEY_A)).toBe("ws-a");
    expect(await check(NEXT_A)).toBe("ws-a");
    expect(await check(KEY_B)).toBe("ws-b");
  });

  it("caches the keys: many checks within the TTL read the secret once", async () => {
    const secret = fakeSecret([{ "ws-a": [KEY_A] }]);
    let now = 1_000;
    const check = createIngestKeyChecker({ loadKeys: secret.loadKeys, ttlMs: 60_000, now: () => now });
    expect(await check(KEY_A)).toBe("ws-a");
    now += 59_000;
    expect(await check(KEY_A)).toBe("ws-a");
    expect(secret.calls).toBe(1);
    now += 2_000;
    expect(await check(KEY_A)).toBe("ws-a");
    expect(secret.calls).toBe(2);
  });

  it("rotation: picks up an added key on a miss (at most once per refresh interval); a removed key ends with the TTL", async () => {
    const secret = fakeSecret([{ "ws-a": [KEY_A] }, { "ws-a": [KEY_A, NEXT_A] }, { "ws-a": [NEXT_A] }]);
    let now = 1_000;
    const check = createIngestKeyChecker({
      loadKeys: secret.loadKeys,
      ttlMs: 600_000,
      refreshOnMismatchMs: 30_000,
      now: () => now,
    });
    expect(await check(KEY_A)).toBe("ws-a");
    // Within the refresh interval an unknown key costs no Secrets Manager call.
    expect(await check(NEXT_A)).toBeUndefined();
    expect(await check("guess")).toBeUndefined();
    expect(secret.calls).toBe(1);
    now += 31_000;
    // Step 1 of a rotation: both keys valid.
    expect(await check(NEXT_A)).toBe("ws-a");
    expect(await check(KEY_A)).toBe("ws-a");
    expect(secret.calls).toBe(2);
    // Step 3: the old key was removed from the secret; the cached table keeps it until the TTL.
    now += 500_000;
    expect(await check(KEY_A)).toBe("ws-a");
    expect(secret.calls).toBe(2);
    now += 100_000;
    expect(await check(KEY_A)).toBeUndefined();
    expect(await check(NEXT_A)).toBe("ws-a");
    expect(secret.calls).toBe(3);
  });

  it("rejects a missing or empty header without reading the secret", async () => {
    const secret = fakeSecret([{ "ws-a": [KEY_A] }]);
    const check = createIngestKeyChecker({ loadKeys: secret.loadKeys });
    expect(await check(undefined)).toBeUndefined();
    expect(await check("")).toBeUndefined();
    expect(secret.calls).toBe(0);
  });

  it("fails closed when the secret cannot be read", async () => {
    const check = createIngestKeyChecker({
      loadKeys: async () => {
        throw new Error("AccessDenied");
      },
    });
    await expect(check(KEY_A)).rejects.toThrow("AccessDenied");
  });
});

describe("createIngestAuthorizer", () => {
  const authorizer = createIngestAuthorizer(
    createIngestKeyChecker({ loadKeys: async () => ({ "ws-a": [KEY_A], "ws-b": [KEY_B] }) }),
  );

  it("answers an HTTP API (payload 2.0) with a simple response carrying the key's node", async () => {
    expect(await authorizer({ version: "2.0", type: "REQUEST", headers: { "x-kwc-key": KEY_A } })).toEqual({
      isAuthorized: true,
      context: { node: "ws-a" },
    });
    expect(await authorizer({ version: "2.0", type: "REQUEST", headers: { "x-kwc-key": KEY_B } })).toEqual({
      isAuthorized: true,
      context: { node: "ws-b" },
    });
  });

  it("denies without a key and with a wrong one (API Gateway: 401 without the header, 403 on a deny)", async () => {
    expect(await authorizer({ version: "2.0", type: "REQUEST", headers: {} })).toEqual({
      isAuthorized: false,
    });
    expect(await authorizer({ version: "2.0", type: "REQUEST", headers: { "x-kwc-key": "wrong" } })).toEqual({
      isAuthorized: false,
    });
  });

  it("answers a REST API with an IAM policy for the called method and the node in its context", async () => {
    const methodArn = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/POST/events";
    const allowed = await authorizer({ type: "REQUEST", methodArn, headers: { "X-Kwc-Key": KEY_B } });
    expect(allowed).toEqual({
      principalId: "ws-b",
      policyDocument: {
        Version: "2012-10-17",
        Statement: [{ Action: "execute-api:Invoke", Effect: "Allow", Resource: methodArn }],
      },
      context: { node: "ws-b" },
    });
    const denied = await authorizer({ type: "REQUEST", methodArn, headers: { "X-Kwc-Key": "wrong" } });
    expect(denied).toMatchObject({ policyDocument: { Statement: [{ Effect: "Deny" }] } });
    expect(denied).not.toHaveProperty("context");
  });

  it("finds headers regardless of case, and nothing in absent headers", () => {
    expect(headerValue({ "X-KWC-KEY": "v" }, "x-kwc-key")).toBe("v");
    expect(headerValue(null, "x-kwc-key")).toBeUndefined();
    expect(headerValue({ other: "v" }, "x-kwc-key")).toBeUndefined();
  });
});
