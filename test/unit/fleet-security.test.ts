// The fleet config refuses what would leak a token or inject SQL: URL schemes other than https
// (plain http only on loopback/private hosts), table names that are not plain identifiers, a
// tokenSecret that is a literal value instead of a reference, or that names the database secret.
import { describe, expect, it } from "vitest";
import { FleetConfigSchema, isPrivateOrLoopbackHost, parseFleetConfig, secretRefNames } from "#core/fleet.ts";
import { fleetOf, nodeConfig } from "../helpers/fakes.ts";

const DB_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kwc-runtime-AbC123";
const fleet = (node: Record<string, unknown>) => ({
  ...fleetOf([]),
  database: { ...fleetOf([]).database, secretArn: DB_SECRET },
  nodes: [{ ...nodeConfig("ws-a"), ...node }],
});
const problemOf = (node: Record<string, unknown>): string => {
  try {
    parseFleetConfig(fleet(node));
  } catch (error) {
    return (error as Error).message;
  }
  return "accepted";
};

describe("fleet config refusals", () => {
  it("control: a node with https URLs, a plain table name and its own token secret is accepted", () => {
    expect(
      problemOf({
        rpcUrl: "https://kam-a.example.com:5081/RPC",
        tokenSecret: "secretsmanager:kwc-rpc-token-ws-a",
      }),
    ).toBe("accepted");
    expect(problemOf({ rpcUrl: "http://10.0.1.5:5081/RPC" })).toBe("accepted"); // private address
  });

  it.each([
    ["ftp://10.0.1.5/RPC"],
    ["file:///etc/passwd"],
    ["javascript:alert(1)"],
    ["ws://10.0.1.5:5081/RPC"],
    ["gopher://10.0.1.5:5081/"],
    ["http://203.0.113.5:5081/RPC"], // plain http to a public address: the token would travel in clear
    ["http://kam.example.com/RPC"],
    ["//10.0.1.5/RPC"],
  ])("refuses the URL %s (rpcUrl and statusUrl)", (url) => {
    expect(problemOf({ rpcUrl: url })).toMatch(/nodes\.0\.rpcUrl: /);
    expect(problemOf({ statusUrl: url })).toMatch(/nodes\.0\.statusUrl: /);
  });

  it.each([
    ["aw; DROP TABLE version"],
    ['aw"x'],
    ["aw`x"],
    ["active-watchers"],
    ["1aw"],
    ["a".repeat(65)],
    ["aw\u00e9"],
    [""],
  ])("refuses the table name %j", (watchersTable) => {
    expect(problemOf({ watchersTable })).toMatch(/nodes\.0\.watchersTable: an SQL identifier/);
  });

  it.each([
    ["the database secret's ARN", `secretsmanager:${DB_SECRET}`],
    ["its ARN without the suffix", `secretsmanager:${DB_SECRET.slice(0, -7)}`],
    ["its name", "secretsmanager:kwc-runtime"],
    ["its name with the suffix", "secretsmanager:kwc-runtime-AbC123"],
  ])("refuses a tokenSecret naming %s", (_name, tokenSecret) => {
    expect(problemOf({ tokenSecret })).toMatch(/nodes\.0\.tokenSecret: names the database secret/);
  });

  it.each([
    ["a literal token", "0123456789abcdef0123456789abcdef"],
    ["a relative file", "file:token"],
    ["an unknown scheme", "vault:kv/kwc"],
  ])("refuses a tokenSecret that is %s, not a reference", (_name, tokenSecret) => {
    const message = problemOf({ tokenSecret });
    expect(message).toMatch(/nodes\.0\.tokenSecret: a secret reference/);
    expect(message).not.toContain("0123456789abcdef"); // the value itself is never echoed
  });
});

describe("secretRefNames", () => {
  it("matches ARN, ARN without suffix, name and name with suffix; nothing else", () => {
    for (const ref of [DB_SECRET, DB_SECRET.slice(0, -7), "kwc-runtime", "kwc-runtime-AbC123"])
      expect(secretRefNames(`secretsmanager:${ref}`, DB_SECRET)).toBe(true);
    for (const ref of ["secretsmanager:kwc-runtime-token", "secretsmanager:kwc", `env:${DB_SECRET}`])
      expect(secretRefNames(ref, DB_SECRET)).toBe(false);
  });
});

describe("fleet schema", () => {
  it("accepts https anywhere and http only on loopback/private hosts", () => {
    expect(isPrivateOrLoopbackHost("10.1.2.3")).toBe(true);
    expect(isPrivateOrLoopbackHost("[fd00::1]")).toBe(true);
    expect(isPrivateOrLoopbackHost("172.32.0.1")).toBe(false);
    expect(isPrivateOrLoopbackHost("kamailio.example.com")).toBe(false);
    const base = {
      version: 1,
      database: { engine: "postgres", resourceArn: "a", secretArn: "s", name: "kamailio" },
    };
    const ok = FleetConfigSchema.safeParse({
      ...base,
      nodes: [{ ...nodeConfig("node-1"), rpcUrl: "https://kam.example.com/RPC" }],
    });
    expect(ok.success).toBe(true);
    expect(ok.data?.notifyFailureCodes).toContain(410); // the documented default
    const shared = FleetConfigSchema.safeParse({
      ...base,
      nodes: [
        nodeConfig("node-1"),
        { ...nodeConfig("node-2"), watchersTable: nodeConfig("node-1").watchersTable },
      ],
    });
    expect(shared.success).toBe(false);
    expect(shared.error?.issues[0]?.message).toMatch(/one watchers table per WS node/);
  });
});
