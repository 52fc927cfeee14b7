// npm start --existing-kamailio's pure parts: the start gate's refusals, the contact-style
// cross-check, the database conventions (URL, PG*, MYSQL_*, TLS) and the ingest key's file.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { contactStyleWarnings, type ReportedFacts, startRefusals } from "#core/start-gate.ts";
import { resolveDbTarget, targetFromUrl, tlsFor } from "../../../local/database.ts";
import { ingestKey, kamailioInstructions } from "../../../local/existing.ts";

const supported: ReportedFacts = {
  kamailioVersion: "5.6.3",
  subsDbMode: 3,
  notifierProcesses: 0,
  sendFastNotify: 1,
  contactStyle: "nated",
};

describe("startRefusals", () => {
  it("lets the supported set-ups start", () => {
    expect(startRefusals("a", supported, "postgres")).toEqual([]);
    expect(startRefusals("a", { ...supported, notifierProcesses: 1 }, "mysql")).toEqual([]);
    expect(startRefusals("a", { ...supported, notifierProcesses: 1, sendFastNotify: 0 }, "postgres")).toEqual(
      [],
    );
  });

  it.each([
    ["subs_db_mode 2", { ...supported, subsDbMode: 2 }, "postgres", /subs_db_mode=2.*subs_db_mode", 3/],
    [
      "notifier on PostgreSQL 5.7",
      { ...supported, kamailioVersion: "5.7.4", notifierProcesses: 1, sendFastNotify: 0 },
      "postgres",
      /5\.7\.4.*notifier_processes=0/,
    ],
    [
      "notifier on 5.6 PostgreSQL without send_fast_notify=0",
      { ...supported, notifierProcesses: 2 },
      "postgres",
      /send_fast_notify=1.*KWC_SEND_FAST_NOTIFY=0/,
    ],
    ["no contact style", { ...supported, contactStyle: undefined }, "mysql", /KWC_CONTACT_STYLE/],
  ] as const)("refuses %s with the reason and the fix", (_name, facts, engine, message) => {
    const { contactStyle, ...rest } = facts;
    const refusals = startRefusals("node-x", contactStyle ? { ...rest, contactStyle } : rest, engine);
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatch(/^node node-x: /);
    expect(refusals[0]).toMatch(message);
  });
});

describe("contactStyleWarnings", () => {
  const nated = "sip:u1@10.1.2.3:40001;transport=ws";
  const alias = "sip:u2@abc.invalid;transport=ws;alias=10.1.2.3~40002~5";
  const noPeer = "sip:u3@abc.invalid;transport=ws";

  it("is silent when every row is in the declared style", () => {
    expect(contactStyleWarnings("a", "nated", [nated, nated])).toEqual([]);
    expect(contactStyleWarnings("a", "alias", [alias])).toEqual([]);
  });

  it("warns with the fix on rows of the other style", () => {
    const [w] = contactStyleWarnings("a", "nated", [nated, alias]);
    expect(w).toMatch(/1 of 2 WebSocket rows have alias-style contacts/);
    expect(w).toContain('KWC_CONTACT_STYLE="alias"');
    expect(contactStyleWarnings("a", "alias", [nated])[0]).toContain('KWC_CONTACT_STYLE="nated"');
  });

  it("warns with the fix on rows that name no peer (add_contact_alias without msg_apply_changes)", () => {
    const warnings = contactStyleWarnings("a", "alias", [noPeer, alias]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/1 of 2 WebSocket rows name no peer/);
    expect(warnings[0]).toContain("msg_apply_changes()");
  });
});

describe("database conventions", () => {
  it("reads postgres and mysql URLs, percent-decoded, with default ports", () => {
    expect(targetFromUrl("postgresql://kwc:p%40ss@db.example.com/kam", "x")).toMatchObject({
      engine: "postgres",
      host: "db.example.com",
      port: 5432,
      user: "kwc",
      password: "p@ss",
      database: "kam",
    });
    expect(targetFromUrl("mariadb://k:pw@[::1]:3307/kamailio", "x")).toMatchObject({
      engine: "mysql",
      host: "::1",
      port: 3307,
    });
    expect(() => targetFromUrl("redis://x/y", "x")).toThrow(/scheme/);
    expect(() => targetFromUrl("postgres://h/", "x")).toThrow(/no database/);
  });

  it("turns on TLS only where asked, verifying unless told not to", () => {
    expect(targetFromUrl("postgres://u@h/d", "x").ssl).toBeUndefined();
    expect(targetFromUrl("postgres://u@h/d?sslmode=prefer", "x").ssl).toBeUndefined();
    expect(targetFromUrl("postgres://u@h/d?sslmode=require", "x").ssl).toEqual({ rejectUnauthorized: false });
    expect(targetFromUrl("postgres://u@h/d?sslmode=verify-full", "x").ssl).toEqual({
      rejectUnauthorized: true,
    });
    expect(targetFromUrl("mysql://u@h/d?ssl-mode=VERIFY_IDENTITY", "x").ssl).toEqual({
      rejectUnauthorized: true,
    });
    expect(targetFromUrl("mysql://u@h/d?ssl-mode=REQUIRED", "x").ssl).toEqual({ rejectUnauthorized: false });
    expect(() => tlsFor("sometimes", undefined)).toThrow(/unknown TLS mode/);
  });

  it("takes --database-url, then DATABASE_URL, then PG*, then MYSQL_*, else the project's own", () => {
    const env = {
      DATABASE_URL: "postgres://a@envhost/envdb",
      PGHOST: "pghost",
      PGDATABASE: "pgdb",
      MYSQL_HOST: "myhost",
    };
    expect(resolveDbTarget("mysql://u@flag/d", env)?.host).toBe("flag");
    expect(resolveDbTarget(undefined, env)).toMatchObject({ host: "envhost", source: "DATABASE_URL" });
    const { DATABASE_URL: _, ...pg } = env;
    expect(resolveDbTarget(undefined, { ...pg, PGUSER: "kwc", PGSSLMODE: "require" })).toMatchObject({
      engine: "postgres",
      host: "pghost",
      user: "kwc",
      database: "pgdb",
      ssl: { rejectUnauthorized: false },
    });
    expect(resolveDbTarget(undefined, { MYSQL_HOST: "myhost", MYSQL_PWD: "s" })).toMatchObject({
      engine: "mysql",
      host: "myhost",
      port: 3306,
      password: "s",
    });
    expect(resolveDbTarget(undefined, {})).toBeUndefined();
  });
});

describe("ingest key", () => {
  const dir = mkdtempSync(join(tmpdir(), "kwc-key-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is made once with mode 0600 and reused; KWC_INGEST_KEY wins", () => {
    const first = ingestKey(dir, {});
    expect(first.source).toBe("file");
    expect(statSync(first.file).mode & 0o777).toBe(0o600);
    expect(ingestKey(dir, {}).key).toBe(first.key);
    expect(readFileSync(first.file, "utf8").trim()).toBe(first.key);
    const fromEnv = ingestKey(dir, { KWC_INGEST_KEY: "k".repeat(20) });
    expect(fromEnv).toMatchObject({ source: "env", key: "k".repeat(20) });
    expect(() => ingestKey(dir, { KWC_INGEST_KEY: "short" })).toThrow(/16 characters/);
  });

  it("tightens a key file others can read", () => {
    const other = mkdtempSync(join(dir, "loose-"));
    writeFileSync(join(other, "ingest-key"), `${"x".repeat(32)}\n`, { mode: 0o644 });
    expect(ingestKey(other, {}).key).toBe("x".repeat(32));
    expect(statSync(join(other, "ingest-key")).mode & 0o777).toBe(0o600);
  });

  it("prints the defines, the variable names and the key's place, never the key", () => {
    const key = ingestKey(dir, {});
    const text = kamailioInstructions({
      ingestUrl: "http://10.0.0.9:8089/events",
      statusUrl: "https://10.0.0.5:5081/kwc/status",
      key,
    }).join("\n");
    expect(text).toContain(
      `-A 'KWC_INGEST_URL="http://10.0.0.9:8089/events"' -A KWC_HTTP_IP=10.0.0.5 -A KWC_HTTP_PORT=5081 -A KWC_HTTP_TLS`,
    );
    expect(text).toContain("KWC_INGEST_KEY");
    expect(text).toContain(key.file);
    expect(text).not.toContain(key.key);
  });
});
