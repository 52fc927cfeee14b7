import { describe, expect, it } from "vitest";
import {
  createIngestAuthorizer,
  createIngestKeyChecker,
  headerValue,
  keysMatch,
} from "../../lambdas/core/ingest-auth.ts";

const KEY = "k3y-0f-the-fleet-48-chars-xxxxxxxxxxxxxxxxxxxxxx";

function fakeSecret(values: string[]) {
  let calls = 0;
  return {
    loadKey: async () => {
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
    expect(keysMatch(KEY, KEY)).toBe(true);
    expect(keysMatch(`${KEY} `, KEY)).toBe(false);
    expect(keysMatch(KEY.slice(0, -1), KEY)).toBe(false);
    expect(keysMatch(KEY.toUpperCase(), KEY)).toBe(false);
    expect(keysMatch("", KEY)).toBe(false);
  });

  it("never accepts anything against an empty expected key", () => {
    expect(keysMatch("", "")).toBe(false);
  });
});

describe("createIngestKeyChecker", () => {
  it("caches the key: many checks within the TTL read the secret once", async () => {
    const secret = fakeSecret([KEY]);
    let now = 1_000;
    const check = createIngestKeyChecker({ loadKey: secret.loadKey, ttlMs: 60_000, now: () => now });
    expect(await check(KEY)).toBe(true);
    now += 59_000;
    expect(await check(KEY)).toBe(true);
    expect(secret.calls).toBe(1);
    now += 2_000;
    expect(await check(KEY)).toBe(true);
    expect(secret.calls).toBe(2);
  });

  it("picks up a rotated key on a mismatch, but re-reads at most once per refresh interval", async () => {
    const rotated = "a-new-key-after-rotation";
    const secret = fakeSecret([KEY, rotated]);
    let now = 1_000;
    const check = createIngestKeyChecker({
      loadKey: secret.loadKey,
      ttlMs: 600_000,
      refreshOnMismatchMs: 30_000,
      now: () => now,
    });
    expect(await check(KEY)).toBe(true);
    // Within the refresh interval a wrong key costs no Secrets Manager call.
    expect(await check(rotated)).toBe(false);
    expect(await check("guess")).toBe(false);
    expect(secret.calls).toBe(1);
    now += 31_000;
    expect(await check(rotated)).toBe(true);
    expect(secret.calls).toBe(2);
    expect(await check(KEY)).toBe(false);
  });

  it("rejects a missing or empty header without reading the secret", async () => {
    const secret = fakeSecret([KEY]);
    const check = createIngestKeyChecker({ loadKey: secret.loadKey });
    expect(await check(undefined)).toBe(false);
    expect(await check("")).toBe(false);
    expect(secret.calls).toBe(0);
  });

  it("fails closed when the secret cannot be read", async () => {
    const check = createIngestKeyChecker({
      loadKey: async () => {
        throw new Error("AccessDenied");
      },
    });
    await expect(check(KEY)).rejects.toThrow("AccessDenied");
  });
});

describe("createIngestAuthorizer", () => {
  const authorizer = createIngestAuthorizer(createIngestKeyChecker({ loadKey: async () => KEY }));

  it("answers an HTTP API (payload 2.0) with a simple response", async () => {
    expect(await authorizer({ version: "2.0", type: "REQUEST", headers: { "x-kwc-key": KEY } })).toEqual({
      isAuthorized: true,
    });
    expect(await authorizer({ version: "2.0", type: "REQUEST", headers: { "x-kwc-key": "wrong" } })).toEqual({
      isAuthorized: false,
    });
  });

  it("answers a REST API with an IAM policy for the called method, reading the header case-insensitively", async () => {
    const methodArn = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/POST/events";
    const allowed = await authorizer({ type: "REQUEST", methodArn, headers: { "X-Kwc-Key": KEY } });
    expect(allowed).toEqual({
      principalId: "kamailio",
      policyDocument: {
        Version: "2012-10-17",
        Statement: [{ Action: "execute-api:Invoke", Effect: "Allow", Resource: methodArn }],
      },
    });
    const denied = await authorizer({ type: "REQUEST", methodArn, headers: { "X-Kwc-Key": "wrong" } });
    expect(denied).toMatchObject({ policyDocument: { Statement: [{ Effect: "Deny" }] } });
  });

  it("finds headers regardless of case, and nothing in absent headers", () => {
    expect(headerValue({ "X-KWC-KEY": "v" }, "x-kwc-key")).toBe("v");
    expect(headerValue(null, "x-kwc-key")).toBeUndefined();
    expect(headerValue({ other: "v" }, "x-kwc-key")).toBeUndefined();
  });
});
