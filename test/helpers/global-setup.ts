// Makes sure Kamailio and the project's own PostgreSQL and MariaDB instances are there before
// real-process tests run (scripts/setup.sh is idempotent: it installs only what is missing).
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export default function setup(): void {
  const script = fileURLToPath(new URL("../../scripts/setup.sh", import.meta.url));
  execFileSync("bash", [script], { stdio: "inherit" });
}
