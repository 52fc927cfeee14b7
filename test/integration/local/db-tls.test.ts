// "TLS where asked": a private PostgreSQL that accepts TLS connections only (pg_hba `hostssl`, no
// `host` line), reached the way an operator names it (a URL with sslmode / sslrootcert), by npm
// start's database connection and by the local Data API server. Controls: sslmode=disable is
// refused by the server; verify-full without the CA refuses the self-signed certificate.
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExecuteStatementCommand } from "@aws-sdk/client-rds-data";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDataApiServer } from "../../../local/dataapi/server.ts";
import { type DbTarget, targetFromUrl } from "../../../local/database.ts";
import { connectLocalDb } from "../../../local/db.ts";
import { localDataApiClient } from "../../helpers/dataapi.ts";
import { freePort } from "../../helpers/ports.ts";
import { makeSelfSignedCert } from "../../helpers/tls.ts";

const PG_BIN = `/usr/lib/postgresql/${readdirSync("/usr/lib/postgresql").sort().at(-1)}/bin`;
const dir = mkdtempSync(join(tmpdir(), "kwc-pg-tls-"));
let port = 0;
let certFile = "";
const asPostgres = (cmd: string) =>
  execFileSync("su", ["postgres", "-s", "/bin/sh", "-c", cmd], { stdio: "pipe" });
const settings = (t: DbTarget) => ({
  host: t.host,
  port: t.port,
  user: t.user,
  password: t.password,
  ...(t.ssl ? { ssl: t.ssl } : {}),
});

beforeAll(async () => {
  chmodSync(dir, 0o755);
  const cert = makeSelfSignedCert(dir, ["127.0.0.1"]);
  certFile = cert.certFile;
  const { uid, gid } = {
    uid: Number(execFileSync("id", ["-u", "postgres"]).toString()),
    gid: Number(execFileSync("id", ["-g", "postgres"]).toString()),
  };
  for (const f of [cert.certFile, cert.keyFile]) chownSync(f, uid, gid);
  chmodSync(cert.keyFile, 0o600);
  chownSync(dir, uid, gid);
  asPostgres(
    `'${PG_BIN}/initdb' -D '${dir}/data' -N -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null`,
  );
  writeFileSync(
    join(dir, "data", "pg_hba.conf"),
    "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
  );
  port = await freePort();
  asPostgres(
    `'${PG_BIN}/pg_ctl' -D '${dir}/data' -l '${dir}/pg.log' -w -o "-c listen_addresses=127.0.0.1 -c port=${port} ` +
      `-c unix_socket_directories='${dir}' -c ssl=on -c ssl_cert_file='${cert.certFile}' -c ssl_key_file='${cert.keyFile}' -c fsync=off" start >/dev/null`,
  );
  const c = new pg.Client({
    host: "127.0.0.1",
    port,
    user: "postgres",
    database: "postgres",
    ssl: { rejectUnauthorized: false },
  });
  await c.connect();
  await c.query("CREATE TABLE active_watchers_tls (id int)");
  await c.query("INSERT INTO active_watchers_tls VALUES (1), (2)");
  await c.end();
}, 60_000);

afterAll(() => {
  try {
    asPostgres(`'${PG_BIN}/pg_ctl' -D '${dir}/data' -m immediate -w stop >/dev/null`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("database TLS where the URL asks for it", () => {
  const url = (query: string) => `postgres://postgres@127.0.0.1:${port}/postgres?${query}`;

  it("verify-full with the CA: npm start's connection reads over TLS", async () => {
    const t = targetFromUrl(url(`sslmode=verify-full&sslrootcert=${certFile}`), "--database-url");
    expect(t.ssl?.rejectUnauthorized).toBe(true);
    const db = await connectLocalDb("postgres", "postgres", settings(t));
    try {
      expect(await db.countRows("active_watchers_tls")).toBe(2);
    } finally {
      await db.close();
    }
  });

  it("the local Data API server reaches it with the same settings", async () => {
    const t = targetFromUrl(url(`sslmode=verify-full&sslrootcert=${certFile}`), "--database-url");
    const arn = "arn:aws:rds:us-east-1:000000000000:cluster:kwc-tls";
    const server = await startDataApiServer({
      targets: [{ resourceArn: arn, engine: "aurora-postgresql", ...settings(t), database: "postgres" }],
    });
    const client = localDataApiClient(server.endpoint);
    try {
      const out = await client.send(
        new ExecuteStatementCommand({
          resourceArn: arn,
          secretArn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:x",
          sql: "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        }),
      );
      expect(out.records?.[0]?.[0]).toEqual({ booleanValue: true });
    } finally {
      client.destroy();
      await server.close();
    }
  });

  it("sslmode=require encrypts without verifying; disable is refused by a TLS-only server", async () => {
    const required = await connectLocalDb(
      "postgres",
      "postgres",
      settings(targetFromUrl(url("sslmode=require"), "x")),
    );
    await required.close();
    await expect(
      connectLocalDb("postgres", "postgres", settings(targetFromUrl(url("sslmode=disable"), "x"))),
    ).rejects.toThrow(/no encryption|pg_hba/);
  });

  it("verify-full without the CA refuses the self-signed certificate", async () => {
    await expect(
      connectLocalDb("postgres", "postgres", settings(targetFromUrl(url("sslmode=verify-full"), "x"))),
    ).rejects.toThrow(/self-signed|certificate/);
  });
});
