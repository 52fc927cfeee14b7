/**
 * `kwc` command line → Command. The verb is found first; the line is then parsed (node:util
 * parseArgs, strict) with exactly that verb's options from cli/commands.ts, so a flag the verb
 * does not use is a usage error naming the flag and the verb, never silently dropped. The help
 * text is generated from the same table. The cleanup verbs build a CleanupRequest (the zod schema
 * the cleanup Lambda takes), so local and --remote runs agree.
 */
import { parseArgs } from "node:util";
import {
  COMMANDS,
  type Command,
  type GlobalOptions,
  OPTIONS,
  type OptionName,
  UsageError,
  type Values,
  type VerbSpec,
} from "./commands.ts";

export { type Command, type GlobalOptions, UsageError } from "./commands.ts";

export const EXIT = { ok: 0, error: 1, usage: 2, staleFound: 3 } as const;

const nameOf = (verb: VerbSpec) => verb.words.join(" ");
const HELP_COLUMN = 48;
const OPTION_COLUMN = 21;

/** `  left  text`, text at `width`; a left side too long for it gets its own line. */
function pad(left: string, width: number): string {
  const cell = `  ${left}`;
  return cell.length < width - 1 ? `${cell.padEnd(width - 1)} ` : `${cell}\n${" ".repeat(width)}`;
}

function optionLine(name: OptionName, verbs?: string): string {
  const spec: { short?: string; value?: string; help: string } = OPTIONS[name];
  const flag = `${spec.short ? `-${spec.short}, ` : ""}--${name}${spec.value ? ` ${spec.value}` : ""}`;
  return `${pad(flag, OPTION_COLUMN)}${spec.help}${verbs ? ` [${verbs}]` : ""}`;
}

function usageLines(verbs: readonly VerbSpec[]): string[] {
  return verbs.flatMap((v) =>
    v.usage.map(([synopsis, what]) => `${pad(`kwc ${synopsis}`, HELP_COLUMN)}${what}`),
  );
}

/** Each option once, with the verbs that take it when not every verb does. */
function optionLines(): string[] {
  return (Object.keys(OPTIONS) as OptionName[]).map((name) => {
    const takers = COMMANDS.filter((v) => v.options.includes(name));
    const all = name === "help" || takers.length === COMMANDS.length;
    return optionLine(name, all ? undefined : takers.map(nameOf).join(", "));
  });
}

export const HELP = `kwc: clean up stale Kamailio presence watchers (active_watchers rows of dead WebSocket clients)

Usage:
${usageLines(COMMANDS).join("\n")}

  A row is stale when its WebSocket peer is not connected to its node (core.tcp_list, read after
  the rows) or, where Kamailio does not purge them itself, when it has expired. A connected peer
  always keeps its rows; clean --include-live removes live rows of the scope too.

Options (a verb refuses the options it does not take; kwc VERB --help lists them):
${optionLines().join("\n")}

  Local runs reach the database through the RDS Data API (AWS_ENDPOINT_URL_RDS_DATA for a local
  one) and each node's JSON-RPC with its token; --remote needs only lambda:InvokeFunction.
  nodes check and db create-node-table always run locally. db check connects to the database
  directly: --database-url, else DATABASE_URL, PG* or MYSQL_* (as npm start does).

Exit codes:
  0  done, nothing left to do (or, without --dry-run, everything stale was deleted)
  1  error: a node failed or was refused (unsafe topology, subs_db_mode != 3, ...), or a fault
  2  bad usage: unknown command or option, an option the command does not take, invalid value
  3  --dry-run found stale rows (run again without --dry-run to delete them)
`;

/** `kwc VERB --help`: the verb's usage lines and exactly the options it takes. */
export function helpFor(verbName: string | undefined): string {
  const verb = COMMANDS.find((v) => nameOf(v) === verbName);
  if (!verb) return HELP;
  const options = [...verb.options, "help" as const].map((name) => optionLine(name));
  return `Usage:\n${usageLines([verb]).join("\n")}\n\nOptions:\n${options.join("\n")}\n`;
}

/** The verb named by the leading positional words (the longest match). */
function findVerb(positionals: readonly string[]): VerbSpec {
  const matches = COMMANDS.filter((v) => v.words.every((w, i) => positionals[i] === w));
  const verb = matches.sort((a, b) => b.words.length - a.words.length)[0];
  if (verb) return verb;
  const group = COMMANDS.filter((v) => v.words.length > 1 && v.words[0] === positionals[0]);
  const typed = positionals.slice(0, 2).join(" ");
  if (group.length > 0) {
    const tries = group.map((v) => `kwc ${v.usage[0]?.[0] ?? nameOf(v)}`).join(" | ");
    throw new UsageError(`unknown command "${typed}" (try: ${tries})`);
  }
  throw new UsageError(`unknown command "${positionals[0]}"`);
}

/** Refuses a known option the verb does not take, naming both (parseArgs names unknown ones). */
function refuseForeignOptions(verb: VerbSpec, tokens: ReturnType<typeof parseArgs>["tokens"]): void {
  for (const token of tokens ?? []) {
    if (token.kind !== "option" || token.name === "help") continue;
    const name = token.name as OptionName;
    if (name in OPTIONS && !verb.options.includes(name)) {
      const takes = verb.options.map((o) => `--${o}`).join(", ");
      throw new UsageError(`${nameOf(verb)} does not take --${name} (it takes: ${takes})`);
    }
  }
}

function strictValues(verb: VerbSpec, argv: readonly string[]): { values: Values; positionals: string[] } {
  const options = Object.fromEntries([...verb.options, "help"].map((n) => [n, OPTIONS[n as OptionName]]));
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options,
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Values, positionals };
  } catch (err) {
    throw new UsageError(`${nameOf(verb)}: ${(err as Error).message}`);
  }
}

function globalOptions(v: Values, env: Record<string, string | undefined>): GlobalOptions {
  const global: GlobalOptions = {
    json: v.json === true,
    progress: v["no-progress"] !== true,
    remote: v.remote === true,
  };
  const functionName = (v.function as string | undefined) ?? env.KWC_CLEANUP_FUNCTION;
  if (functionName) global.functionName = functionName;
  const fleet = (v.fleet as string | undefined) ?? env.KWC_FLEET_CONFIG;
  if (fleet) global.fleet = fleet;
  if (global.remote && !global.functionName) {
    throw new UsageError("--remote needs --function NAME or KWC_CLEANUP_FUNCTION");
  }
  return global;
}

export function parseCommandLine(
  argv: readonly string[],
  env: Record<string, string | undefined> = {},
): Command {
  // A loose first pass with every known option, only to find the verb's words among the values.
  const loose = parseArgs({
    args: [...argv],
    options: OPTIONS,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  if (loose.positionals.length === 0) return { kind: "help" };
  const verb = findVerb(loose.positionals);
  if (loose.values.help === true) return { kind: "help", verb: nameOf(verb) };
  refuseForeignOptions(verb, loose.tokens);
  const { values, positionals } = strictValues(verb, argv);
  const operands = positionals.slice(verb.words.length);
  const expected = verb.operands ?? [];
  if (operands.length !== expected.length) {
    throw new UsageError(
      expected.length === 0
        ? `unexpected argument "${operands[0]}"`
        : `${nameOf(verb)} takes exactly ${expected.length} argument (${expected.join(" ")}), received ${operands.length}`,
    );
  }
  return verb.build({ values, operands, global: globalOptions(values, env) });
}
