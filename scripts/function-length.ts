/**
 * Build step (scripts/test.sh): fails when a function in lambdas/ is longer than MAX_LINES lines,
 * counted from the line it starts on to the line it ends on, comments and blank lines included
 * (what a reader scrolls through). Biome parses: its noExcessiveLinesPerFunction rule, run with
 * `maxLines: 1`, reports every function of more than one code line with its location; this
 * script measures and names them. (TypeScript 7's native tsc has no JS API to walk the AST with.)
 *
 *   npx tsx scripts/function-length.ts           lambdas/, with BASELINE
 *   npx tsx scripts/function-length.ts PATH…     those files or directories, no baseline
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const MAX_LINES = 80;
const ROOT = resolve(import.meta.dirname, "..");

/**
 * Functions over the limit allowed for now, each at most its length when the check came in, so
 * none may grow. Empty since the kernel work (issues 12 and 13) split createWorker (446 lines),
 * processBatch (408), cleanNode (99) and sweepNode (150) into stages. An entry that no longer
 * matches a function over the limit fails the check as well, so the list can only shrink.
 */
export const BASELINE: readonly Allowed[] = [];

export interface Allowed {
  file: string;
  name: string;
  lines: number;
}

export interface MeasuredFunction {
  file: string;
  line: number;
  name: string;
  lines: number;
}

interface BiomeDiagnostic {
  category?: string;
  location?: { path?: string; start?: { line: number; column: number }; end?: { line: number } };
}

const BIOME_CONFIG = {
  root: true,
  vcs: { enabled: false },
  formatter: { enabled: false },
  assist: { enabled: false },
  linter: {
    enabled: true,
    rules: {
      preset: "none",
      complexity: { noExcessiveLinesPerFunction: { level: "error", options: { maxLines: 1 } } },
    },
  },
};

/** The name a reader searches for: `function f`, `const f = (…) =>`, `f: (…) =>`, a method `f(…)`. */
export function functionName(source: string, line: number, column: number): string {
  const text = source.split("\n")[line - 1] ?? "";
  const at = text.slice(column - 1);
  const before = text.slice(0, column - 1);
  const named = /^(?:async\s+)?function\s*\*?\s*([\w$]+)/.exec(at) ?? /([\w$]+)\s*[:=]\s*$/.exec(before);
  const method = /^(?:async\s+)?(?:(?:get|set|static)\s+)?\*?\s*([\w$#]+)\s*[(<]/.exec(at);
  const methodName = method?.[1] !== "async" && method?.[1] !== "function" ? method?.[1] : undefined;
  return named?.[1] ?? methodName ?? "(anonymous)";
}

/** Every function of the TypeScript files under `paths` (relative to `cwd`), with its length. */
export function measureFunctions(paths: readonly string[], cwd = ROOT): MeasuredFunction[] {
  const configDir = mkdtempSync(join(tmpdir(), "kwc-function-length-"));
  try {
    writeFileSync(join(configDir, "biome.json"), JSON.stringify(BIOME_CONFIG));
    const biome = join(ROOT, "node_modules/.bin/biome");
    const args = [
      "lint",
      `--config-path=${configDir}`,
      "--reporter=json",
      "--max-diagnostics=none",
      ...paths,
    ];
    const run = spawnSync(biome, args, { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    const start = run.stdout.indexOf('{"summary"');
    if (start < 0) throw new Error(`biome gave no report (exit ${run.status}): ${run.stderr}`);
    const report = JSON.parse(run.stdout.slice(start)) as { diagnostics: BiomeDiagnostic[] };
    const sources = new Map<string, string>();
    return report.diagnostics
      .filter((d) => d.category === "lint/complexity/noExcessiveLinesPerFunction")
      .map(({ location }) => {
        const file = location?.path ?? "?";
        const startAt = location?.start ?? { line: 0, column: 0 };
        if (!sources.has(file)) sources.set(file, readFileSync(resolve(cwd, file), "utf8"));
        const name = functionName(sources.get(file) ?? "", startAt.line, startAt.column);
        return { file, line: startAt.line, name, lines: (location?.end?.line ?? 0) - startAt.line + 1 };
      });
  } finally {
    rmSync(configDir, { recursive: true, force: true });
  }
}

/** Functions over `max` not covered by the baseline, and baseline entries that no longer apply. */
export function findViolations(
  functions: readonly MeasuredFunction[],
  baseline: readonly Allowed[] = BASELINE,
  max = MAX_LINES,
): string[] {
  const long = functions.filter((f) => f.lines > max);
  const problems: string[] = [];
  for (const f of long) {
    const allowed = baseline.find((a) => a.file === f.file && a.name === f.name);
    if (allowed && f.lines <= allowed.lines) continue;
    const why = allowed ? `its baseline is ${allowed.lines}` : `the limit is ${max}`;
    problems.push(`${f.file}:${f.line} ${f.name}: ${f.lines} lines (${why}); split it into named steps`);
  }
  for (const a of baseline) {
    if (!long.some((f) => f.file === a.file && f.name === a.name)) {
      problems.push(
        `${a.file} ${a.name}: no longer over ${max} lines; remove it from BASELINE in scripts/function-length.ts`,
      );
    }
  }
  return problems;
}

function main(): void {
  const paths = process.argv.slice(2);
  const functions = measureFunctions(paths.length > 0 ? paths : ["lambdas"]);
  const baselined = functions.filter((f) => f.lines > MAX_LINES);
  for (const f of baselined) console.log(`function-length: ${f.file}:${f.line} ${f.name}: ${f.lines} lines`);
  const problems = findViolations(functions, paths.length > 0 ? [] : BASELINE);
  for (const p of problems) console.error(`function-length: ${p}`);
  const largest = functions.reduce((a, b) => (b.lines > a.lines ? b : a), { lines: 0 } as MeasuredFunction);
  console.log(
    `function-length: ${functions.length} functions, largest ${largest.name ?? "-"} ${largest.lines} lines; ${problems.length} problems (limit ${MAX_LINES})`,
  );
  process.exitCode = problems.length > 0 ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) main();
