// Makes sure the project's own PostgreSQL and MariaDB instances answer before real-process tests
// run (scripts/db.sh start is idempotent and never touches the system instances).
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export default function setup(): void {
  const script = fileURLToPath(new URL("../../scripts/db.sh", import.meta.url));
  execFileSync("bash", [script, "start", "all"], { stdio: "inherit" });
}
