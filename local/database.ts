/**
 * Which database the local pipeline (and `kwc db check`) talks to, from the conventions an
 * operator already uses, first match wins:
 *   1. `--database-url` (postgres[ql]://… or mysql://… / mariadb://…)
 *   2. `DATABASE_URL`
 *   3. libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, PGSSLROOTCERT
 *   4. MySQL's MYSQL_HOST, MYSQL_TCP_PORT, MYSQL_PWD (+ MYSQL_USER, MYSQL_DATABASE as container
 *      images name them)
 * None of them: the project's own instance on loopback (scripts/db.sh), as before.
 *
 * TLS only where asked: sslmode=require (encrypt, no verification), verify-ca / verify-full (verify
 * against sslrootcert or the system CAs); MySQL ssl-mode=REQUIRED / VERIFY_CA / VERIFY_IDENTITY
 * with ssl-ca. `prefer` and `allow` connect without TLS (node's drivers cannot fall back).
 * Nothing here ever creates a role or a database.
 */
import { readFileSync } from "node:fs";
import type { DbTls } from "./dataapi/engines/engine.ts";
import type { Engine } from "./db.ts";

export interface DbTarget {
  engine: Engine;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  ssl?: DbTls;
  /** Where the settings came from, e.g. "--database-url", "PG* environment". */
  source: string;
}

const DEFAULT_PORT: Record<Engine, number> = { postgres: 5432, mysql: 3306 };

function engineOfScheme(scheme: string): Engine {
  if (scheme === "postgres:" || scheme === "postgresql:") return "postgres";
  if (scheme === "mysql:" || scheme === "mariadb:") return "mysql";
  throw new Error(`database URL scheme ${scheme} is not postgres://, postgresql://, mysql:// or mariadb://`);
}

/** libpq sslmode / MySQL ssl-mode → the drivers' TLS settings; undefined for no TLS. */
export function tlsFor(mode: string | undefined, caFile: string | undefined): DbTls | undefined {
  const m = (mode ?? "").toLowerCase().replace(/_/g, "-");
  const ca = caFile ? readFileSync(caFile, "utf8") : undefined;
  if (["", "disable", "disabled", "allow", "prefer", "preferred"].includes(m)) {
    return ca ? { rejectUnauthorized: true, ca } : undefined;
  }
  if (m === "require" || m === "required" || m === "true") {
    // libpq: require with a root cert file behaves like verify-ca
    return ca ? { rejectUnauthorized: true, ca } : { rejectUnauthorized: false };
  }
  if (["verify-ca", "verify-full", "verify-identity"].includes(m)) {
    return ca ? { rejectUnauthorized: true, ca } : { rejectUnauthorized: true };
  }
  throw new Error(`unknown TLS mode "${mode}" (sslmode: disable|prefer|require|verify-ca|verify-full)`);
}

export function targetFromUrl(text: string, source: string): DbTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`${source}: not a URL (expected postgres://user:password@host:port/database)`);
  }
  const engine = engineOfScheme(url.protocol);
  const q = url.searchParams;
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!url.hostname) throw new Error(`${source}: the URL names no host`);
  if (!database) throw new Error(`${source}: the URL names no database (…/kamailio)`);
  const ssl =
    engine === "postgres"
      ? tlsFor(q.get("sslmode") ?? undefined, q.get("sslrootcert") ?? undefined)
      : tlsFor(
          q.get("ssl-mode") ?? q.get("sslmode") ?? q.get("ssl") ?? undefined,
          q.get("ssl-ca") ?? undefined,
        );
  return {
    engine,
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port ? Number(url.port) : DEFAULT_PORT[engine],
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database,
    ...(ssl ? { ssl } : {}),
    source,
  };
}

/** The operator's database from flags and environment, or undefined for the project's own instance. */
export function resolveDbTarget(
  databaseUrl: string | undefined,
  env: NodeJS.ProcessEnv,
): DbTarget | undefined {
  if (databaseUrl) return targetFromUrl(databaseUrl, "--database-url");
  if (env.DATABASE_URL) return targetFromUrl(env.DATABASE_URL, "DATABASE_URL");
  if (env.PGHOST || env.PGDATABASE || env.PGUSER) {
    const user = env.PGUSER ?? env.USER ?? "postgres";
    const ssl = tlsFor(env.PGSSLMODE, env.PGSSLROOTCERT);
    return {
      engine: "postgres",
      host: env.PGHOST ?? "localhost",
      port: Number(env.PGPORT ?? 5432),
      user,
      password: env.PGPASSWORD ?? "",
      database: env.PGDATABASE ?? user,
      ...(ssl ? { ssl } : {}),
      source: "PG* environment",
    };
  }
  if (env.MYSQL_HOST) {
    return {
      engine: "mysql",
      host: env.MYSQL_HOST,
      port: Number(env.MYSQL_TCP_PORT ?? 3306),
      user: env.MYSQL_USER ?? env.USER ?? "root",
      password: env.MYSQL_PWD ?? env.MYSQL_PASSWORD ?? "",
      database: env.MYSQL_DATABASE ?? "kamailio",
      source: "MYSQL_* environment",
    };
  }
  return undefined;
}

/** For start-up lines: never the password. */
export function describeTarget(t: DbTarget): string {
  const engine = t.engine === "postgres" ? "PostgreSQL" : "MySQL/MariaDB";
  const tls = t.ssl ? (t.ssl.rejectUnauthorized ? "TLS, verified" : "TLS, not verified") : "no TLS";
  return `${engine} ${t.user}@${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port}/${t.database} (${tls}; from ${t.source})`;
}
