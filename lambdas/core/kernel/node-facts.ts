/**
 * What governs a node now (version, mode, boot), from its status endpoint, cached per worker
 * instance for a short while. Two reads:
 *   - `facts()` for refreshes: the fleet config stands in when the node cannot be asked;
 *   - `current()` before deleting on behalf of events: the status is required (unreachable means
 *     retry), and an event boot other than the cached one forces one fresh read, so that the
 *     cache never makes a restarted node's new-boot events look old.
 */
import { type Clock, systemClock } from "../clock.ts";
import { factsFromConfig, type NodeConfig, type NodeFacts } from "../fleet.ts";
import { factsFromStatus, type KamailioClient, type Telemetry } from "../ports.ts";

export const STATUS_TTL_MS = 30_000;

export class NodeFactsCache {
  readonly #cache = new Map<string, { at: number; facts: NodeFacts }>();

  constructor(
    private readonly kamailio: KamailioClient,
    private readonly telemetry: Telemetry,
    private readonly clock: Clock = systemClock,
    private readonly ttlMs = STATUS_TTL_MS,
  ) {}

  /** Status-backed facts; the config when the node cannot be asked. */
  async facts(node: NodeConfig): Promise<NodeFacts> {
    const hit = this.#fresh(node);
    if (hit) return hit;
    try {
      return await this.#read(node);
    } catch (error) {
      this.telemetry.warn("node status unavailable; using the fleet config", {
        node: node.id,
        error: String(error),
      });
      return factsFromConfig(node);
    }
  }

  /** Status-backed facts or a throw; re-read when an event names a boot the cache does not hold. */
  async current(node: NodeConfig, eventBoots: Iterable<string>): Promise<NodeFacts> {
    const hit = this.#fresh(node);
    if (hit?.bootId !== undefined && [...eventBoots].every((b) => b === hit.bootId)) return hit;
    return this.#read(node);
  }

  #fresh(node: NodeConfig): NodeFacts | undefined {
    const hit = this.#cache.get(node.id);
    return hit && this.clock.now() - hit.at < this.ttlMs ? hit.facts : undefined;
  }

  async #read(node: NodeConfig): Promise<NodeFacts> {
    const status = await this.kamailio.status(node);
    const facts = factsFromStatus(node, status);
    const config = factsFromConfig(node);
    const differs = (["kamailioVersion", "subsDbMode", "notifierProcesses"] as const).some(
      (k) => String(facts[k]) !== String(config[k]),
    );
    if (differs) {
      this.telemetry.warn("node status differs from the fleet config; the node wins", {
        node: node.id,
        status,
        config: { ...config, watchersTable: node.watchersTable },
      });
    }
    this.#cache.set(node.id, { at: this.clock.now(), facts });
    return facts;
  }
}
