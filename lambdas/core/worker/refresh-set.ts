/** The refreshes a batch owes, one per (node, presentity, event), with who asked for each. */
import type { NodeConfig } from "../fleet.ts";
import { presentityKeyId, type SourcedEvent } from "../plan.ts";
import type { PresentityKey } from "../ports.ts";

export interface OwedRefresh {
  node: NodeConfig;
  key: PresentityKey;
  /** Events that asked for it (presence.changed, refresh.requested): a transient fault retries them. */
  sources: SourcedEvent[];
  /** Records whose events deleted rows of that presentity: if no follow-up can be sent, they retry. */
  causes: Set<string>;
}

export class RefreshSet {
  readonly #entries = new Map<string, OwedRefresh>();

  add(node: NodeConfig, key: PresentityKey, sources: readonly SourcedEvent[], cause?: string): void {
    const id = `${node.id}\u0000${presentityKeyId(key)}`;
    const entry = this.#entries.get(id) ?? { node, key, sources: [], causes: new Set<string>() };
    entry.sources.push(...sources);
    if (cause !== undefined) entry.causes.add(cause);
    this.#entries.set(id, entry);
  }

  all(): OwedRefresh[] {
    return [...this.#entries.values()];
  }
}
