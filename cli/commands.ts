/**
 * `kwc`'s verbs, one table entry each: the words that name it, its usage lines, the options it
 * takes (names from OPTIONS) and `build`, which turns the parsed values into a Command. cli/args.ts
 * parses a command line with exactly the options of its verb (any other flag is a usage error
 * naming the flag and the verb) and generates `--help` from this table.
 *
 * Adding a verb is one entry in COMMANDS (and, for a new option, one entry in OPTIONS). When its
 * run differs from every existing kind, add the kind to `Command` below and its runner to RUNNERS
 * in cli/main.ts: tsc refuses a Command kind without a runner.
 */
import { type CleanupRequest, CleanupRequestSchema } from "#core/cleanup-request.ts";
import { formatIssues } from "#core/parse.ts";

export class UsageError extends Error {
  override name = "UsageError";
}

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** Placeholder of a string option's value in the help (`--limit N`). */
  value?: string;
  help: string;
}

/** Every option of every verb, described once; each verb lists the ones it takes. */
export const OPTIONS = {
  node: { type: "string", value: "N", help: "only this node (the whole fleet otherwise)" },
  presentity: { type: "string", value: "URI", help: "rows of this presentity" },
  event: { type: "string", value: "E", help: "with --presentity: only this event package" },
  watcher: { type: "string", value: "AOR", help: "rows of this watcher (sip:user@domain)" },
  dialog: { type: "string", value: "CALL-ID", help: "one subscription dialog (with --to-tag, --from-tag)" },
  "to-tag": { type: "string", value: "T", help: "with --dialog: the dialog's to-tag" },
  "from-tag": { type: "string", value: "F", help: "with --dialog: the dialog's from-tag" },
  expired: { type: "boolean", help: "expired rows (5.6/5.7 never purge them)" },
  "dry-run": { type: "boolean", help: "list what would be done, delete nothing, refresh nothing" },
  limit: { type: "string", value: "N", help: "at most N rows deleted (or listed) per node (default 100000)" },
  "include-live": {
    type: "boolean",
    help: "also delete rows whose peer is connected (they get 481 on refresh)",
  },
  json: { type: "boolean", help: "print the result as JSON (default: a table)" },
  fleet: {
    type: "string",
    value: "REF",
    help: "fleet config: file:/abs/fleet.json or ssm-path:/kwc/fleet (env KWC_FLEET_CONFIG)",
  },
  remote: { type: "boolean", help: "invoke the deployed cleanup Lambda instead of running here" },
  function: { type: "string", value: "NAME", help: "its function name or ARN (env KWC_CLEANUP_FUNCTION)" },
  "no-progress": { type: "boolean", help: "no progress bar on stderr" },
  "database-url": {
    type: "string",
    value: "URL",
    help: "db check: postgres://… or mysql://… (else DATABASE_URL, PG*, MYSQL_*)",
  },
  table: { type: "string", value: "T1,T2", help: "db check: the watchers tables (default active_watchers)" },
  "allow-stall": {
    type: "boolean",
    help: "db migrate: build on PostgreSQL although a node runs presence in notifier mode (its NOTIFYs stall for the build)",
  },
  help: { type: "boolean", short: "h", help: "this text (kwc VERB --help: that verb's)" },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;
/** The parsed values of a verb's options (parseArgs's shape). */
export type Values = Partial<Record<OptionName, string | boolean>>;

export interface GlobalOptions {
  json: boolean;
  progress: boolean;
  remote: boolean;
  functionName?: string;
  fleet?: string;
}

export type Command =
  | { kind: "help"; verb?: string }
  | {
      kind: "cleanup";
      verb: "clean" | "reconcile" | "watchers-list";
      request: CleanupRequest;
      global: GlobalOptions;
    }
  | { kind: "nodes-check"; node?: string; global: GlobalOptions }
  | { kind: "create-node-table"; node: string; dryRun: boolean; global: GlobalOptions }
  | { kind: "db-check"; databaseUrl?: string; tables: string[]; global: GlobalOptions }
  | { kind: "presentity-trace"; action: "install" | "remove"; dryRun: boolean; global: GlobalOptions }
  | {
      kind: "peer-index";
      action: "migrate" | "unmigrate";
      node?: string;
      dryRun: boolean;
      allowStall: boolean;
      global: GlobalOptions;
    };

export interface VerbInput {
  values: Values;
  /** Positional arguments after the verb's words. */
  operands: string[];
  global: GlobalOptions;
}

export interface VerbSpec {
  /** The words after `kwc` that name the verb. */
  words: readonly string[];
  /** Help lines: [what follows `kwc`, what it does]. */
  usage: readonly (readonly [string, string])[];
  /** The options this verb takes (`--help` is always accepted). */
  options: readonly OptionName[];
  /** Operand placeholders (`<node>`); a verb without them takes no positional argument. */
  operands?: readonly string[];
  build(input: VerbInput): Command;
}

const str = (v: Values, name: OptionName) => (typeof v[name] === "string" ? (v[name] as string) : undefined);
const flag = (v: Values, name: OptionName) => v[name] === true;

function parseRequest(raw: unknown): CleanupRequest {
  const result = CleanupRequestSchema.safeParse(raw);
  if (!result.success) throw new UsageError(formatIssues(result.error));
  return result.data;
}

function parseLimit(text: string | undefined): { limit?: number } {
  if (text === undefined) return {};
  if (!/^\d+$/.test(text)) throw new UsageError(`--limit: expected a positive integer, received "${text}"`);
  return { limit: Number(text) };
}

/** A flag that only means something next to another one is refused alone, never dropped. */
function needs(v: Values, option: OptionName, partner: OptionName): void {
  if (v[option] !== undefined && v[partner] === undefined) {
    throw new UsageError(`--${option} needs --${partner}`);
  }
}

function atMostOne(v: Values, verb: string, scopes: readonly OptionName[]): void {
  if (scopes.filter((s) => v[s] !== undefined).length > 1) {
    throw new UsageError(`${verb}: give one of ${scopes.map((s) => `--${s}`).join(", ")}`);
  }
}

/** The `--presentity URI [--event E]` / `--watcher AOR` part of a request, if given. */
function rowScope(v: Values): Record<string, unknown> | undefined {
  needs(v, "event", "presentity");
  const presentity = str(v, "presentity");
  if (presentity !== undefined) {
    const event = str(v, "event");
    return { scope: "presentity", presentity, ...(event !== undefined ? { event } : {}) };
  }
  const watcher = str(v, "watcher");
  return watcher !== undefined ? { scope: "watcher", watcher } : undefined;
}

function cleanScope(v: Values): Record<string, unknown> {
  atMostOne(v, "clean", ["presentity", "watcher", "dialog", "expired"]);
  needs(v, "to-tag", "dialog");
  needs(v, "from-tag", "dialog");
  const rows = rowScope(v);
  if (rows) return rows;
  const callId = str(v, "dialog");
  if (callId !== undefined) {
    const toTag = str(v, "to-tag");
    const fromTag = str(v, "from-tag");
    if (toTag === undefined || fromTag === undefined) {
      throw new UsageError("clean --dialog needs --to-tag and --from-tag (the dialog key is all three)");
    }
    return { scope: "dialog", dialog: { callId, toTag, fromTag } };
  }
  if (flag(v, "expired")) return { scope: "expired" };
  if (str(v, "node") !== undefined) return { scope: "node" };
  throw new UsageError("clean: give a scope: --presentity, --watcher, --node, --dialog or --expired");
}

function node(v: Values): { node?: string } {
  const id = str(v, "node");
  return id !== undefined ? { node: id } : {};
}

/** Options every verb that runs a cleanup request takes (here or, with --remote, in the Lambda). */
const REQUEST_OUTPUT = ["json", "fleet", "remote", "function", "no-progress"] as const;

export const COMMANDS: readonly VerbSpec[] = [
  {
    words: ["watchers", "list"],
    usage: [
      [
        "watchers list [--node N] [--presentity URI [--event E] | --watcher AOR]",
        "every row in scope, with its state",
      ],
    ],
    options: ["node", "presentity", "event", "watcher", "limit", ...REQUEST_OUTPUT],
    build: ({ values: v, global }) => {
      atMostOne(v, "watchers list", ["presentity", "watcher"]);
      const scope = rowScope(v) ?? { scope: "reconcile" };
      const raw = { ...scope, ...node(v), ...parseLimit(str(v, "limit")), dryRun: true, list: "all" };
      return { kind: "cleanup", verb: "watchers-list", request: parseRequest(raw), global };
    },
  },
  {
    words: ["clean"],
    usage: [
      ["clean --presentity URI [--event E]", "stale rows of one presentity"],
      ["clean --watcher sip:user@domain", "stale rows of one watcher AOR"],
      ["clean --node N", "stale rows of one node"],
      ["clean --dialog CALL-ID --to-tag T --from-tag F", "one subscription dialog"],
      ["clean --expired", "expired rows (5.6/5.7 never purge them)"],
    ],
    options: [
      ...["node", "presentity", "event", "watcher", "dialog", "to-tag", "from-tag", "expired"],
      ...["dry-run", "limit", "include-live", ...REQUEST_OUTPUT],
    ] as OptionName[],
    build: ({ values: v, global }) => {
      const raw = {
        ...cleanScope(v),
        ...node(v),
        dryRun: flag(v, "dry-run"),
        ...parseLimit(str(v, "limit")),
        ...(flag(v, "include-live") ? { includeLive: true } : {}),
      };
      return { kind: "cleanup", verb: "clean", request: parseRequest(raw), global };
    },
  },
  {
    words: ["reconcile"],
    usage: [["reconcile [--node N]", "rows whose peer is not connected, and expired rows (5.6/5.7)"]],
    options: ["node", "dry-run", "limit", ...REQUEST_OUTPUT],
    build: ({ values: v, global }) => {
      const raw = {
        scope: "reconcile",
        ...node(v),
        dryRun: flag(v, "dry-run"),
        ...parseLimit(str(v, "limit")),
      };
      return { kind: "cleanup", verb: "reconcile", request: parseRequest(raw), global };
    },
  },
  {
    words: ["nodes", "check"],
    usage: [["nodes check [--node N]", "reachability, version, presence mode, boot id, topology"]],
    options: ["node", "json", "fleet"],
    build: ({ values: v, global }) => ({ kind: "nodes-check", ...node(v), global }),
  },
  {
    words: ["db", "create-node-table"],
    usage: [["db create-node-table <node>", "the node's own watchers table (+ its version row)"]],
    options: ["dry-run", "json", "fleet"],
    operands: ["<node>"],
    build: ({ values: v, operands, global }) => ({
      kind: "create-node-table",
      node: operands[0] ?? "",
      dryRun: flag(v, "dry-run"),
      global,
    }),
  },
  {
    words: ["db", "check"],
    usage: [
      ["db check [--database-url URL] [--table T1,T2]", "runtime and setup privileges of these credentials"],
    ],
    options: ["database-url", "table", "json"],
    build: ({ values: v, global }) => {
      const url = str(v, "database-url");
      const tables = (str(v, "table") ?? "").split(",").filter(Boolean);
      return { kind: "db-check", ...(url ? { databaseUrl: url } : {}), tables, global };
    },
  },
  {
    words: ["db", "migrate"],
    usage: [
      ["db migrate [--node N] [--allow-stall]", "add the peer index to the node tables (online; optional)"],
    ],
    options: ["node", "dry-run", "allow-stall", "json", "fleet"],
    build: ({ values: v, global }) => ({
      kind: "peer-index",
      action: "migrate",
      ...node(v),
      dryRun: flag(v, "dry-run"),
      allowStall: flag(v, "allow-stall"),
      global,
    }),
  },
  {
    words: ["db", "trace"],
    usage: [
      ["db trace", "trace presentity deletions (a trigger): lets the worker skip refreshes on 5.6-5.8.5"],
    ],
    options: ["dry-run", "json", "fleet"],
    build: ({ values: v, global }) => ({
      kind: "presentity-trace",
      action: "install",
      dryRun: flag(v, "dry-run"),
      global,
    }),
  },
  {
    words: ["db", "untrace"],
    usage: [["db untrace", "remove the presentity deletion trace (every refresh is sent again)"]],
    options: ["dry-run", "json", "fleet"],
    build: ({ values: v, global }) => ({
      kind: "presentity-trace",
      action: "remove",
      dryRun: flag(v, "dry-run"),
      global,
    }),
  },
  {
    words: ["db", "unmigrate"],
    usage: [["db unmigrate [--node N]", "remove the peer index (before a Kamailio schema upgrade)"]],
    options: ["node", "dry-run", "json", "fleet"],
    build: ({ values: v, global }) => ({
      kind: "peer-index",
      action: "unmigrate",
      ...node(v),
      dryRun: flag(v, "dry-run"),
      allowStall: false,
      global,
    }),
  },
];
