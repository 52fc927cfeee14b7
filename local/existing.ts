/**
 * `npm start -- --existing-kamailio`: what the local pipeline needs to work for an operator's own
 * Kamailio in one pass. The ingest key survives restarts (Kamailio reads it once, at its start), the
 * exact defines are printed (never a secret), the node's own report is read and judged before
 * anything starts, and the contact style it declares is cross-checked against the rows it writes.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { DatabaseEngine } from "#core/fleet.ts";
import { contactStyleWarnings, type ReportedFacts, startRefusals } from "#core/start-gate.ts";
import { connectLocalDb, type DbConnectionSettings, type Engine } from "./db.ts";

export const INGEST_KEY_FILE = "ingest-key";
/** The ingest port `--existing-kamailio` uses unless `--ingest-port` says otherwise. */
export const DEFAULT_EXISTING_INGEST_PORT = 8089;

export interface IngestKey {
  key: string;
  /** "env" (KWC_INGEST_KEY) or the path of the key file. */
  source: "env" | "file";
  file: string;
}

/**
 * KWC_INGEST_KEY when set; else the key kept in `<stateDir>/ingest-key` (mode 0600), made once
 * and reused, so a Kamailio started with it keeps working across `npm start` restarts.
 */
export function ingestKey(stateDir: string, env: NodeJS.ProcessEnv): IngestKey {
  const file = join(stateDir, INGEST_KEY_FILE);
  const fromEnv = env.KWC_INGEST_KEY;
  if (fromEnv) {
    if (fromEnv.length < 16) throw new Error("KWC_INGEST_KEY is shorter than 16 characters");
    return { key: fromEnv, source: "env", file };
  }
  if (existsSync(file)) {
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    const key = readFileSync(file, "utf8").trim();
    if (key.length >= 16) return { key, source: "file", file };
  }
  const key = randomBytes(24).toString("hex");
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { key, source: "file", file };
}

const ReportSchema = z
  .object({
    node: z.string().min(1),
    boot: z.string().min(1),
    version: z.string(),
    subsDbMode: z.number().int(),
    notifierProcesses: z.number().int(),
    sendFastNotify: z.number().int().optional(),
    contactStyle: z.enum(["nated", "alias"]).optional(),
    watchersTable: z.string().min(1),
  })
  .loose();

export interface NodeReport extends ReportedFacts {
  node: string;
  boot: string;
  watchersTable: string;
}

export type ReportResult = { ok: true; report: NodeReport } | { ok: false; why: string };

/** GET /kwc/status with the node's token; never throws. */
export async function readNodeReport(statusUrl: string, token: string): Promise<ReportResult> {
  let res: Response;
  try {
    res = await fetch(statusUrl, {
      headers: { authorization: `Bearer ${token}`, connection: "close" },
      signal: AbortSignal.timeout(2000),
    });
  } catch (error) {
    const e = error as Error & { cause?: { code?: string } };
    return { ok: false, why: e.cause?.code ?? e.message };
  }
  const text = await res.text().catch(() => "");
  if (res.status === 401)
    return { ok: false, why: "401: KWC_RPC_TOKEN here is not the node's KWC_RPC_TOKEN" };
  if (res.status === 403)
    return { ok: false, why: "403: this machine's address does not match the node's KWC_RPC_ALLOW" };
  if (!res.ok) return { ok: false, why: `HTTP ${res.status} ${text.slice(0, 200)}` };
  let parsed: z.infer<typeof ReportSchema>;
  try {
    parsed = ReportSchema.parse(JSON.parse(text));
  } catch (error) {
    return { ok: false, why: `not a kwc status: ${(error as Error).message.slice(0, 300)}` };
  }
  const version = parsed.version.match(/\d+\.\d+\.\d+/)?.[0] ?? parsed.version;
  return {
    ok: true,
    report: {
      node: parsed.node,
      boot: parsed.boot,
      watchersTable: parsed.watchersTable,
      kamailioVersion: version,
      subsDbMode: parsed.subsDbMode,
      notifierProcesses: parsed.notifierProcesses,
      ...(parsed.sendFastNotify !== undefined ? { sendFastNotify: parsed.sendFastNotify } : {}),
      ...(parsed.contactStyle ? { contactStyle: parsed.contactStyle } : {}),
    },
  };
}

/** Polls the status endpoint until the node answers (Kamailio may be started after npm start). */
export async function waitForNode(
  statusUrl: string,
  token: string,
  say: (line: string) => void,
  timeoutMs: number,
): Promise<NodeReport> {
  const deadline = Date.now() + timeoutMs;
  let lastWhy = "";
  for (;;) {
    const result = await readNodeReport(statusUrl, token);
    if (result.ok) return result.report;
    if (result.why !== lastWhy) say(`waiting for the node at ${statusUrl}: ${result.why}`);
    lastWhy = result.why;
    if (Date.now() > deadline) throw new Error(`the node at ${statusUrl} did not answer: ${lastWhy}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function refusalsFor(report: NodeReport, engine: DatabaseEngine): string[] {
  return startRefusals(report.node, report, engine);
}

/** `http://10.0.0.5:5081/kwc/status` → the KWC_HTTP_IP / KWC_HTTP_PORT defines that make it. */
function listenerDefines(statusUrl: string): string[] {
  const url = new URL(statusUrl);
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  const out = [`-A KWC_HTTP_IP=${url.hostname}`, `-A KWC_HTTP_PORT=${port}`];
  if (url.protocol === "https:") out.push("-A KWC_HTTP_TLS");
  return out;
}

/** What to give Kamailio: exact defines, environment variable NAMES, where the key is. Never a secret. */
export function kamailioInstructions(o: { ingestUrl: string; statusUrl: string; key: IngestKey }): string[] {
  const keyWhere =
    o.key.source === "env"
      ? "the same value as KWC_INGEST_KEY in this environment"
      : `the content of ${o.key.file} (mode 0600)`;
  return [
    'Kamailio needs these defines (command line, or #!define before include_file "kwc.cfg"):',
    `  -A 'KWC_INGEST_URL="${o.ingestUrl}"' ${listenerDefines(o.statusUrl).join(" ")}`,
    "  and your own: -A 'KWC_NODE_ID=\"<node>\"' -A 'KWC_WATCHERS_TABLE=\"<presence active_watchers_table>\"'",
    "  -A KWC_SUBS_DB_MODE=3 -A KWC_NOTIFIER_PROCESSES=<0|1> -A KWC_SEND_FAST_NOTIFY=<1|0>",
    '  -A \'KWC_CONTACT_STYLE="nated"\' (fix_nated_contact()) or "alias" (set_contact_alias(), add_contact_alias()+msg_apply_changes())',
    `and in its environment: KWC_INGEST_KEY = ${keyWhere}; KWC_RPC_TOKEN = the token given here in KWC_RPC_TOKEN`,
  ];
}

export interface ContactStyleWatch {
  /** Checks once now; returns the warnings not reported before. */
  check(): Promise<string[]>;
}

/** Cross-checks the declared contact style with the node's WebSocket rows (newest 500). */
export function contactStyleWatch(o: {
  engine: Engine;
  database: string;
  db?: DbConnectionSettings;
  nodeId: string;
  table: string;
  socketInfo: string[];
  style: "nated" | "alias";
}): ContactStyleWatch {
  const reported = new Set<string>();
  return {
    async check() {
      const db = await connectLocalDb(o.engine, o.database, o.db);
      try {
        const contacts = await db.contactsOn(o.table, o.socketInfo, 500);
        const fresh: string[] = [];
        for (const warning of contactStyleWarnings(o.nodeId, o.style, contacts)) {
          const kind = warning.includes("name no peer") ? "no-peer" : "other-style";
          if (reported.has(kind)) continue;
          reported.add(kind);
          fresh.push(warning);
        }
        return fresh;
      } finally {
        await db.close();
      }
    },
  };
}
