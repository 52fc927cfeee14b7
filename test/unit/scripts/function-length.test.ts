// The function-length build step: Biome finds the functions, the script measures, names and
// judges them. A control at the limit passes; one line more fails, and fails the process.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BASELINE,
  findViolations,
  MAX_LINES,
  type MeasuredFunction,
  measureFunctions,
} from "../../../scripts/function-length.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
const SCRIPT = join(ROOT, "scripts/function-length.ts");

/** A function spanning exactly `lines` lines (first and last line included). */
function fn(header: string, lines: number): string {
  const body = Array.from({ length: lines - 2 }, (_, i) => `  total += ${i}; // step ${i}`);
  return [`${header} {`, ...body, "}"].join("\n");
}

describe("function-length check", () => {
  let dir: string;
  let measured: MeasuredFunction[];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "kwc-fl-test-"));
    writeFileSync(
      join(dir, "at-limit.ts"),
      `let total = 0;\nexport ${fn("function atLimit()", MAX_LINES)}\n`,
    );
    writeFileSync(
      join(dir, "too-long.ts"),
      [
        "let total = 0;",
        `export const tooLong = async () => ${fn("", MAX_LINES + 1).trimStart()};`,
        `export class Sweeper {\n${fn("  async sweep(n: number)", MAX_LINES + 5)}\n}`,
      ].join("\n"),
    );
    measured = measureFunctions(["at-limit.ts", "too-long.ts"], dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("measures every function from its first to its last line, with its name", () => {
    const byName = Object.fromEntries(measured.map((f) => [f.name, f.lines]));
    expect(byName).toEqual({ atLimit: MAX_LINES, tooLong: MAX_LINES + 1, sweep: MAX_LINES + 5 });
  });

  it("flags each function over the limit, and not one at it", () => {
    expect(findViolations(measured, [])).toEqual([
      expect.stringMatching(/^too-long\.ts:2 tooLong: 81 lines \(the limit is 80\)/),
      expect.stringMatching(/^too-long\.ts:\d+ sweep: 85 lines/),
    ]);
  });

  it("lets a baselined function stay, not grow, and refuses a stale baseline entry", () => {
    const baseline = [
      { file: "too-long.ts", name: "tooLong", lines: 81 },
      { file: "too-long.ts", name: "sweep", lines: 84 },
      { file: "gone.ts", name: "split", lines: 200 },
    ];
    expect(findViolations(measured, baseline)).toEqual([
      expect.stringMatching(/sweep: 85 lines \(its baseline is 84\)/),
      expect.stringMatching(/gone\.ts split: no longer over 80 lines; remove it from BASELINE/),
    ]);
  });

  it("exits non-zero on a long function (what fails npm test), zero without one", () => {
    const run = (file: string) =>
      spawnSync(process.execPath, ["--import", "tsx", SCRIPT, join(dir, file)], {
        cwd: ROOT,
        encoding: "utf8",
      });
    const failing = run("too-long.ts");
    expect(failing.status, failing.stderr).toBe(1);
    expect(failing.stderr).toMatch(/function-length: \/.*\/too-long\.ts:2 tooLong: 81 lines/);
    expect(run("at-limit.ts").status).toBe(0);
  });

  it("has an empty baseline: no function in lambdas/ is allowed over the limit", () => {
    expect(BASELINE).toEqual([]);
  });
});
