// Seeded, deterministic fault injection for the service's retry paths: the next N matching calls
// fail the way Aurora does when it resumes, times out, is unavailable, or drops the connection.

export const faultKinds = [
  "DatabaseResumingException",
  "StatementTimeoutException",
  "ServiceUnavailableError",
  "connection-drop",
] as const;
export type FaultKind = (typeof faultKinds)[number];

export interface FaultOptions {
  /** only calls whose SQL matches (operations without SQL match against the operation name) */
  match?: RegExp;
  /** only this operation, e.g. "ExecuteStatement" */
  operation?: string;
  /** chance that a matching call fails (default 1), drawn from a PRNG seeded with `seed` */
  probability?: number;
  seed?: number;
}

interface Rule {
  remaining: number;
  kind: FaultKind;
  options: FaultOptions;
  random: () => number;
}

/** mulberry32: a tiny seeded PRNG, so a failing run can be replayed exactly */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultInjector {
  private rules: Rule[] = [];
  /** every fault injected so far, in order */
  readonly injected: { operation: string; kind: FaultKind }[] = [];

  /** Makes the next `count` matching calls fail with `kind`. Rules are consumed in the order added. */
  failNext(count: number, kind: FaultKind, options: FaultOptions = {}): void {
    this.rules.push({ remaining: count, kind, options, random: seeded(options.seed ?? 1) });
  }

  clear(): void {
    this.rules = [];
  }

  /** How many injections are still pending. */
  get pending(): number {
    return this.rules.reduce((sum, r) => sum + r.remaining, 0);
  }

  /** The fault to inject into this call, if any (consumes one). */
  take(operation: string, sql: string | undefined): FaultKind | undefined {
    for (const rule of this.rules) {
      if (rule.remaining <= 0) continue;
      if (rule.options.operation && rule.options.operation !== operation) continue;
      if (rule.options.match && !rule.options.match.test(sql ?? operation)) continue;
      if (rule.random() >= (rule.options.probability ?? 1)) continue;
      rule.remaining--;
      this.rules = this.rules.filter((r) => r.remaining > 0);
      this.injected.push({ operation, kind: rule.kind });
      return rule.kind;
    }
    return undefined;
  }
}
