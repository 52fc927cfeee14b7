/**
 * Fleet config and secret references, from AWS or from local files.
 *   KWC_FLEET_CONFIG=ssm-path:/kwc/fleet  → <path>/global (JSON) + <path>/nodes/<id> (one JSON per node),
 *                                          read with GetParametersByPath (paged, so 200 nodes fit)
 *   KWC_FLEET_CONFIG=file:/abs/fleet.json → one document `{ ...global, nodes: [...] }`
 * Secret references: `secretsmanager:<arn|name>`, `env:<VAR>`, `file:<abs path>`. Values are cached,
 * never logged. Both loaders re-read at most every `ttlMs` (config changes reach warm Lambdas).
 */
import { readFile } from "node:fs/promises";
import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { GetParametersByPathCommand, type SSMClient } from "@aws-sdk/client-ssm";
import { type FleetConfig, parseFleetConfig } from "../core/fleet.ts";

export const FLEET_CONFIG_TTL_MS = 5 * 60 * 1000;
export const SECRET_TTL_MS = 5 * 60 * 1000;

export interface ConfigSourceDeps {
  ssm?: Pick<SSMClient, "send">;
  secretsManager?: Pick<SecretsManagerClient, "send">;
  env?: NodeJS.ProcessEnv;
  readText?: (path: string) => Promise<string>;
}

const readText = (path: string) => readFile(path, "utf8");

async function loadFromSsm(path: string, ssm: Pick<SSMClient, "send">): Promise<unknown> {
  const base = path.replace(/\/+$/, "");
  let global: Record<string, unknown> | undefined;
  const nodes: { name: string; value: unknown }[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ssm.send(
      new GetParametersByPathCommand({
        Path: base,
        Recursive: true,
        WithDecryption: false,
        NextToken: nextToken,
      }),
    );
    for (const p of page.Parameters ?? []) {
      if (!p.Name || p.Value === undefined) continue;
      const rel = p.Name.slice(base.length);
      let value: unknown;
      try {
        value = JSON.parse(p.Value);
      } catch (e) {
        throw new Error(`fleet config: parameter ${p.Name} is not JSON (${(e as Error).message})`);
      }
      if (rel === "/global") global = value as Record<string, unknown>;
      else if (rel.startsWith("/nodes/")) nodes.push({ name: p.Name, value });
    }
    nextToken = page.NextToken;
  } while (nextToken);
  if (!global) throw new Error(`fleet config: parameter ${base}/global is missing`);
  nodes.sort((a, b) => a.name.localeCompare(b.name));
  return { ...global, nodes: nodes.map((n) => n.value) };
}

/** Loads and validates the fleet config named by `spec` (the KWC_FLEET_CONFIG value). */
export async function loadFleetConfig(spec: string, deps: ConfigSourceDeps = {}): Promise<FleetConfig> {
  if (spec.startsWith("file:")) {
    const text = await (deps.readText ?? readText)(spec.slice("file:".length));
    return parseFleetConfig(JSON.parse(text));
  }
  if (spec.startsWith("ssm-path:")) {
    if (!deps.ssm) throw new Error("fleet config: ssm-path needs an SSM client");
    return parseFleetConfig(await loadFromSsm(spec.slice("ssm-path:".length), deps.ssm));
  }
  throw new Error(
    `KWC_FLEET_CONFIG must start with file: or ssm-path:, got ${JSON.stringify(spec.slice(0, 40))}`,
  );
}

/** Resolves one secret reference to its value. */
export async function resolveSecret(ref: string, deps: ConfigSourceDeps = {}): Promise<string> {
  if (ref.startsWith("env:")) {
    const name = ref.slice(4);
    const value = (deps.env ?? process.env)[name];
    if (!value) throw new Error(`secret ${ref}: environment variable ${name} is not set`);
    return value;
  }
  if (ref.startsWith("file:")) {
    const value = (await (deps.readText ?? readText)(ref.slice(5))).replace(/\r?\n$/, "");
    if (!value) throw new Error(`secret ${ref}: file is empty`);
    return value;
  }
  if (ref.startsWith("secretsmanager:")) {
    if (!deps.secretsManager) throw new Error(`secret ${ref}: needs a Secrets Manager client`);
    const out = await deps.secretsManager.send(new GetSecretValueCommand({ SecretId: ref.slice(15) }));
    if (!out.SecretString) throw new Error(`secret ${ref}: no SecretString`);
    return out.SecretString;
  }
  throw new Error("secret reference must start with secretsmanager:, env: or file:");
}

/** Memoises an async loader for `ttlMs`; a failed load is not cached (the next call tries again). */
export function cached<T>(
  load: () => Promise<T>,
  ttlMs: number,
  now: () => number = Date.now,
): () => Promise<T> {
  let value: { at: number; promise: Promise<T> } | undefined;
  return () => {
    if (value && now() - value.at < ttlMs) return value.promise;
    const promise = load();
    const entry = { at: now(), promise };
    value = entry;
    promise.catch(() => {
      if (value === entry) value = undefined;
    });
    return promise;
  };
}

/** Per-reference secret cache (one fetch per reference per TTL). */
export function cachedSecrets(
  deps: ConfigSourceDeps,
  ttlMs = SECRET_TTL_MS,
): (ref: string) => Promise<string> {
  const byRef = new Map<string, () => Promise<string>>();
  return (ref) => {
    let get = byRef.get(ref);
    if (!get) {
      get = cached(() => resolveSecret(ref, deps), ttlMs);
      byRef.set(ref, get);
    }
    return get();
  };
}

export interface FleetSource {
  /** The fleet config, re-read at most every FLEET_CONFIG_TTL_MS. */
  loadFleet(): Promise<FleetConfig>;
  /** A node token (or any secret reference), cached per reference for SECRET_TTL_MS. */
  secret(ref: string): Promise<string>;
}
