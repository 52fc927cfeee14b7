/**
 * Fleet config: which Kamailio nodes the service cleans up and how to reach them (one zod schema,
 * types inferred). Loaded by adapters/config-source.ts from SSM (`ssm-path:`) or a file (`file:`).
 * A node's status endpoint wins over `kamailioVersion` / `subsDbMode` / `notifierProcesses` here;
 * these are the fallback when the node cannot be asked (see NodeFacts).
 */
import { z } from "zod";
import { NodeIdSchema } from "./contract.ts";

/**
 * SQL identifier for a watchers table: validated strictly because identifiers cannot be bound as
 * parameters. Lower/upper ASCII letters, digits and `_`, starting with a letter or `_`, ≤ 64.
 */
export const SQL_IDENTIFIER_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const SqlIdentifierSchema = z
  .string()
  .regex(SQL_IDENTIFIER_RE, "an SQL identifier: [A-Za-z_][A-Za-z0-9_]{0,63}");

/** `secretsmanager:<arn or name>` (AWS), `env:<VAR>` or `file:<abs path>` (local). Never the secret itself. */
export const SecretRefSchema = z
  .string()
  .regex(
    /^(secretsmanager:.{1,2048}|env:[A-Za-z_][A-Za-z0-9_]{0,127}|file:\/.{1,4095})$/,
    "a secret reference: secretsmanager:<arn|name>, env:<VAR> or file:/abs/path",
  );

/**
 * Whether a `secretsmanager:` reference names the secret with this ARN: the full ARN, the ARN
 * without its 6-character suffix, or the secret's name (with or without the suffix).
 */
export function secretRefNames(ref: string, secretArn: string): boolean {
  if (!ref.startsWith("secretsmanager:")) return false;
  const given = ref.slice("secretsmanager:".length);
  const name = secretArn.match(/:secret:(.+)$/)?.[1];
  const bare = (value: string) => value.replace(/-[A-Za-z0-9]{6}$/, "");
  const candidates = new Set([secretArn, bare(secretArn)]);
  if (name) candidates.add(name).add(bare(name));
  return candidates.has(given) || candidates.has(bare(given));
}

/** True for loopback, RFC 1918, link-local, CGNAT, IPv6 ULA/loopback/link-local hosts and `localhost`. */
export function isPrivateOrLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  const v4 = host.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return (
      a === 127 ||
      a === 10 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 169 && b === 254) ||
      (a === 100 && b >= 64 && b <= 127)
    );
  }
  if (host.includes(":")) {
    return host === "::1" || /^f[cd][0-9a-f]{0,2}:/.test(host) || /^fe[89ab][0-9a-f]?:/.test(host);
  }
  return false;
}

/** https anywhere; plain http only towards loopback/private addresses (the token travels in it). */
export const NodeUrlSchema = z.url().refine(
  (value) => {
    // Zod runs this refinement even when z.url() already failed: a bad URL is a problem, not a throw.
    if (!URL.canParse(value)) return false;
    const url = new URL(value);
    if (url.protocol === "https:") return true;
    return url.protocol === "http:" && isPrivateOrLoopbackHost(url.hostname);
  },
  { message: "an https URL, or http only on a loopback/private address" },
);

/** `5.6.3`, `6.0.1`, optionally followed by a Debian suffix (`5.6.3-2`). */
export const KamailioVersionSchema = z
  .string()
  .regex(/^\d{1,2}\.\d{1,2}\.\d{1,3}([-+~.][0-9A-Za-z.+~-]*)?$/, "a Kamailio version like 5.6.3");

export const ContactStyleSchema = z.enum(["nated", "alias", "auto"]);

export const NodeConfigSchema = z.strictObject({
  id: NodeIdSchema,
  rpcUrl: NodeUrlSchema,
  statusUrl: NodeUrlSchema,
  tokenSecret: SecretRefSchema,
  /** Values of `active_watchers.socket_info` for this node's WS listeners, e.g. `tcp:10.0.1.5:8080`. */
  socketInfo: z.array(z.string().min(1).max(64)).min(1).max(32),
  watchersTable: SqlIdentifierSchema,
  /** `nated`: fix_nated_contact(); `alias`: set_contact_alias(); `auto`: either. */
  contactStyle: ContactStyleSchema,
  kamailioVersion: KamailioVersionSchema,
  subsDbMode: z.number().int().min(0).max(3),
  notifierProcesses: z.number().int().min(0).max(64),
});

/**
 * NOTIFY final replies that end a subscription (RFC 6665 §4.2.2 + RFC 5057 §5.1 "usage/dialog
 * destroyed"). Kamailio itself deletes on 481 and 408; the rest are explained in docs/worker.md.
 */
export const DEFAULT_NOTIFY_FAILURE_CODES = [
  404, 405, 408, 410, 416, 481, 482, 483, 484, 485, 489, 501, 502, 604,
] as const;

export const DatabaseConfigSchema = z.strictObject({
  engine: z.enum(["postgres", "mysql"]),
  resourceArn: z.string().min(1).max(2048),
  secretArn: z.string().min(1).max(2048),
  name: SqlIdentifierSchema,
});

export const FleetConfigSchema = z
  .strictObject({
    version: z.literal(1),
    database: DatabaseConfigSchema,
    notifyFailureCodes: z
      .array(z.number().int().min(300).max(699))
      .default([...DEFAULT_NOTIFY_FAILURE_CODES]),
    nodes: z.array(NodeConfigSchema).max(1000),
  })
  .superRefine((fleet, ctx) => {
    const seenIds = new Set<string>();
    const seenTables = new Map<string, string>();
    fleet.nodes.forEach((node, i) => {
      // The JSON-RPC token travels to the node in every request: it must never be the database's login.
      if (secretRefNames(node.tokenSecret, fleet.database.secretArn))
        ctx.addIssue({
          code: "custom",
          path: ["nodes", i, "tokenSecret"],
          message: "names the database secret; a node's JSON-RPC token needs a secret of its own",
        });
      if (seenIds.has(node.id))
        ctx.addIssue({ code: "custom", path: ["nodes", i, "id"], message: `duplicate node id ${node.id}` });
      seenIds.add(node.id);
      // One watchers table per node (DESIGN §1 item 12): a shared table loses live subscriptions.
      const owner = seenTables.get(node.watchersTable.toLowerCase());
      if (owner)
        ctx.addIssue({
          code: "custom",
          path: ["nodes", i, "watchersTable"],
          message: `table ${node.watchersTable} is also used by node ${owner}; Kamailio needs one watchers table per WS node`,
        });
      seenTables.set(node.watchersTable.toLowerCase(), node.id);
    });
  });

export type NodeConfig = z.infer<typeof NodeConfigSchema>;
export type FleetConfig = z.infer<typeof FleetConfigSchema>;
export type DatabaseConfig = z.infer<typeof DatabaseConfigSchema>;
export type ContactStyle = z.infer<typeof ContactStyleSchema>;
export type DatabaseEngine = DatabaseConfig["engine"];

/** What governs a node's behaviour now: from its status endpoint, else from the config. */
export interface NodeFacts {
  kamailioVersion: string;
  subsDbMode: number;
  notifierProcesses: number;
  /** Boot id reported by the node (undefined when the config was the fallback). */
  bootId?: string;
  /** The watchers table the node's status names (undefined when the config was the fallback). */
  watchersTable?: string;
  source: "status" | "config";
}

export function factsFromConfig(node: NodeConfig): NodeFacts {
  return {
    kamailioVersion: node.kamailioVersion,
    subsDbMode: node.subsDbMode,
    notifierProcesses: node.notifierProcesses,
    source: "config",
  };
}

export function findNode(fleet: FleetConfig, nodeId: string): NodeConfig | undefined {
  return fleet.nodes.find((n) => n.id === nodeId);
}

/** [major, minor, patch] of `5.6.3-2`. */
export function parseVersion(version: string): [number, number, number] {
  const m = version.match(/(\d+)\.(\d+)\.(\d+)/);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
}

export function versionAtLeast(version: string, min: [number, number, number]): boolean {
  const v = parseVersion(version);
  for (let i = 0; i < 3; i++) {
    const a = v[i] ?? 0;
    const b = min[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

/** Parses and validates a fleet document; throws an Error naming every problem. */
export function parseFleetConfig(raw: unknown): FleetConfig {
  const result = FleetConfigSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(`invalid fleet config: ${problems.join("; ")}`);
  }
  return result.data;
}
