// What a loaded Kamailio node says about itself, for the benches that load one (refresh capacity,
// mass disconnect): shm in use (kamcmd core.shmmem over the node's ctl socket), and from its log
// the allocation failures and the most frequent errors.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { KamailioNode } from "./kamailio.ts";

const run = promisify(execFile);

/** shm in use now, MB (`real_used`). */
export async function shmUsedMb(node: KamailioNode): Promise<number> {
  const { stdout } = await run("kamcmd", ["-s", `unix:${join(node.runDir, "kamailio_ctl")}`, "core.shmmem"]);
  return Number(stdout.match(/real_used:\s*(\d+)/)?.[1] ?? Number.NaN) / 1024 / 1024;
}

/** Log lines of a failed shm or pkg allocation. */
export function allocationFailures(log: string): number {
  return log.split("\n").filter((l) => /no more shm|could not allocate|out of memory|no more pkg/i.test(l))
    .length;
}

/** The three most frequent ERROR lines, numbers folded to N: "1750× module [file:N]: …". */
export function topErrors(log: string): string[] {
  const counts = new Map<string, number>();
  for (const line of log.split("\n")) {
    if (!line.includes("ERROR")) continue;
    const what = line
      .replace(/^.*ERROR: /, "")
      .replace(/\d+/g, "N")
      .slice(0, 120);
    counts.set(what, (counts.get(what) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([what, n]) => `${n}× ${what}`);
}
