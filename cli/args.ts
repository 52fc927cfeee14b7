/**
 * `kwc` command line: parsing into one of a few commands. The cleanup commands build a
 * CleanupRequest (the same zod schema the cleanup Lambda takes), so local and --remote runs agree.
 */
import { parseArgs } from "node:util";
import { type CleanupRequest, CleanupRequestSchema } from "../lambdas/core/cleanup-request.ts";
import { formatIssues } from "../lambdas/core/parse.ts";

export const EXIT = { ok: 0, error: 1, usage: 2, staleFound: 3 } as const;

export const HELP = `kwc: clean up stale Kamailio presence watchers (active_watchers rows of dead WebSocket clients)

Usage:
  kwc watchers list [--node N] [--presentity URI [--event E]] [--watcher AOR]   every row in scope, with its state
  kwc clean --presentity URI [--event E]    stale rows of one presentity
  kwc clean --watcher sip:user@domain       stale rows of one watcher AOR
  kwc clean --node N                        stale rows of one node
  kwc clean --dialog CALL-ID --to-tag T --from-tag F    one subscription dialog
  kwc clean --expired                       expired rows (5.6/5.7 never purge them)
  kwc reconcile [--node N]                  rows whose peer is not connected, and expired rows (5.6/5.7)
  kwc nodes check [--node N]                reachability, version, presence mode, boot id, topology
  kwc db create-node-table <node>           the node's own watchers table (+ its version row)

  A row is stale when its WebSocket peer is not connected to its node (core.tcp_list, read after
  the rows) or, where Kamailio does not purge them itself, when it has expired. A connected peer
  always keeps its rows; clean --include-live removes live rows of the scope too.

Options:
  --dry-run            list what would be deleted, delete nothing, refresh nothing
  --json               print the report as JSON (default: a table)
  --limit N            at most N rows deleted per node (default 100000)
  --include-live       clean: also delete rows whose peer is connected (they get 481 on refresh)
  --node N             restrict clean / watchers list / nodes check to one node
  --fleet REF          fleet config: file:/abs/fleet.json or ssm-path:/kwc/fleet (env KWC_FLEET_CONFIG)
  --remote             invoke the deployed cleanup Lambda instead of running here
  --function NAME      its function name or ARN (env KWC_CLEANUP_FUNCTION)
  --no-progress        no progress bar on stderr
  -h, --help           this text

  Local runs reach the database through the RDS Data API (AWS_ENDPOINT_URL_RDS_DATA for a local
  one) and each node's JSON-RPC with its token; --remote needs only lambda:InvokeFunction.
  nodes check and db create-node-table always run locally.

Exit codes:
  0  done, nothing left to do (or, without --dry-run, everything stale was deleted)
  1  error: a node failed or was refused (unsafe topology, subs_db_mode != 3, ...), or a fault
  2  bad usage: unknown command or option, invalid value
  3  --dry-run found stale rows (run again without --dry-run to delete them)
`;

export class UsageError extends Error {
  override name = "UsageError";
}

export interface GlobalOptions {
  json: boolean;
  progress: boolean;
  remote: boolean;
  functionName?: string;
  fleet?: string;
}

export type Command =
  | { kind: "help" }
  | {
      kind: "cleanup";
      verb: "clean" | "reconcile" | "watchers-list";
      request: CleanupRequest;
      global: GlobalOptions;
    }
  | { kind: "nodes-check"; node?: string; global: GlobalOptions }
  | { kind: "create-node-table"; node: string; dryRun: boolean; global: GlobalOptions };

const OPTIONS = {
  "dry-run": { type: "boolean" },
  json: { type: "boolean" },
  limit: { type: "string" },
  "include-live": { type: "boolean" },
  node: { type: "string" },
  presentity: { type: "string" },
  event: { type: "string" },
  watcher: { type: "string" },
  dialog: { type: "string" },
  "to-tag": { type: "string" },
  "from-tag": { type: "string" },
  expired: { type: "boolean" },
  fleet: { type: "string" },
  remote: { type: "boolean" },
  function: { type: "string" },
  "no-progress": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function parseRequest(raw: unknown): CleanupRequest {
  const result = CleanupRequestSchema.safeParse(raw);
  if (!result.success) throw new UsageError(formatIssues(result.error));
  return result.data;
}

function parseLimit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`--limit: expected a positive integer, received "${text}"`);
  return Number(text);
}

export function parseCommandLine(
  argv: readonly string[],
  env: Record<string, string | undefined> = {},
): Command {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (v.help || positionals.length === 0) return { kind: "help" };
  const global: GlobalOptions = {
    json: v.json ?? false,
    progress: !v["no-progress"],
    remote: v.remote ?? false,
  };
  const functionName = v.function ?? env.KWC_CLEANUP_FUNCTION;
  if (functionName) global.functionName = functionName;
  const fleet = v.fleet ?? env.KWC_FLEET_CONFIG;
  if (fleet) global.fleet = fleet;
  if (global.remote && !global.functionName) {
    throw new UsageError("--remote needs --function NAME or KWC_CLEANUP_FUNCTION");
  }
  const common = {
    dryRun: v["dry-run"] ?? false,
    ...(parseLimit(v.limit) !== undefined ? { limit: parseLimit(v.limit) } : {}),
    ...(v["include-live"] ? { includeLive: true } : {}),
  };
  const node = v.node ? { node: v.node } : {};
  const [verb, sub, ...rest] = positionals;
  const noMore = (allowed: number) => {
    if (positionals.length > allowed) throw new UsageError(`unexpected argument "${positionals[allowed]}"`);
  };
  const localOnly = (what: string) => {
    if (global.remote) throw new UsageError(`${what} runs locally only (drop --remote)`);
  };

  switch (verb) {
    case "watchers": {
      if (sub !== "list")
        throw new UsageError(`unknown command "watchers ${sub ?? ""}" (try: kwc watchers list)`);
      noMore(2);
      const base = { ...node, ...common, dryRun: true, list: "all" as const };
      if (v.presentity) {
        const event = v.event ? { event: v.event } : {};
        return {
          kind: "cleanup",
          verb: "watchers-list",
          request: parseRequest({ scope: "presentity", presentity: v.presentity, ...event, ...base }),
          global,
        };
      }
      if (v.watcher) {
        return {
          kind: "cleanup",
          verb: "watchers-list",
          request: parseRequest({ scope: "watcher", watcher: v.watcher, ...base }),
          global,
        };
      }
      return {
        kind: "cleanup",
        verb: "watchers-list",
        request: parseRequest({ scope: "reconcile", ...base }),
        global,
      };
    }
    case "clean": {
      noMore(1);
      const scopes = [
        v.presentity !== undefined,
        v.watcher !== undefined,
        v.dialog !== undefined,
        v.expired === true,
      ].filter(Boolean).length;
      if (scopes > 1) throw new UsageError("clean: give one of --presentity, --watcher, --dialog, --expired");
      let raw: Record<string, unknown>;
      if (v.presentity !== undefined) {
        raw = { scope: "presentity", presentity: v.presentity, ...(v.event ? { event: v.event } : {}) };
      } else if (v.watcher !== undefined) {
        raw = { scope: "watcher", watcher: v.watcher };
      } else if (v.dialog !== undefined) {
        if (v["to-tag"] === undefined || v["from-tag"] === undefined) {
          throw new UsageError("clean --dialog needs --to-tag and --from-tag (the dialog key is all three)");
        }
        raw = { scope: "dialog", dialog: { callId: v.dialog, toTag: v["to-tag"], fromTag: v["from-tag"] } };
      } else if (v.expired) {
        raw = { scope: "expired" };
      } else if (v.node !== undefined) {
        raw = { scope: "node" };
      } else {
        throw new UsageError("clean: give a scope: --presentity, --watcher, --node, --dialog or --expired");
      }
      return {
        kind: "cleanup",
        verb: "clean",
        request: parseRequest({ ...raw, ...node, ...common }),
        global,
      };
    }
    case "reconcile":
      noMore(1);
      return {
        kind: "cleanup",
        verb: "reconcile",
        request: parseRequest({ scope: "reconcile", ...node, ...common }),
        global,
      };
    case "nodes":
      if (sub !== "check")
        throw new UsageError(`unknown command "nodes ${sub ?? ""}" (try: kwc nodes check)`);
      noMore(2);
      localOnly("nodes check");
      return { kind: "nodes-check", ...node, global };
    case "db": {
      if (sub !== "create-node-table") {
        throw new UsageError(`unknown command "db ${sub ?? ""}" (try: kwc db create-node-table <node>)`);
      }
      localOnly("db create-node-table");
      const target = rest[0];
      if (!target || rest.length > 1) throw new UsageError("db create-node-table takes exactly one node id");
      return { kind: "create-node-table", node: target, dryRun: v["dry-run"] ?? false, global };
    }
    default:
      throw new UsageError(`unknown command "${verb}"`);
  }
}
