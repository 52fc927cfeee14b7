/**
 * OS services local mode needs: installs Kamailio and the database server packages through
 * scripts/setup.sh when they are missing, then starts the project's own database instance for
 * `engine` (scripts/db.sh is idempotent). Shared by `npm start` and `npm run demo`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Engine } from "./db.ts";
import { KAMAILIO_BIN } from "./kamailio.ts";

export const ROOT = resolve(import.meta.dirname, "..");

export function ensureServices(engine: Engine, say: (line: string) => void): void {
  const pgBinaries = existsSync("/usr/lib/postgresql") && readdirSync("/usr/lib/postgresql").length > 0;
  if (!existsSync(KAMAILIO_BIN) || !pgBinaries || !existsSync("/usr/sbin/mariadbd")) {
    say("Kamailio or database server packages are missing: running scripts/setup.sh");
    // Only what local mode runs: the Kamailio 6.0.1 chroot is for the tests.
    execFileSync("bash", [join(ROOT, "scripts/setup.sh"), "--without-kamailio-v6"], { stdio: "inherit" });
  }
  execFileSync("bash", [join(ROOT, "scripts/db.sh"), "start", engine === "postgres" ? "pg" : "mysql"], {
    stdio: ["ignore", "inherit", "inherit"],
  });
}
