/**
 * Planning: from a batch of parsed events and the fleet config, what to do per node. Pure.
 *   connection.closed → the node's rows naming that peer (liveness-guarded later)
 *   notify.failed     → the exact dialog, when the code ends the subscription
 *   presence.changed  → a refresh of that presentity on every other node holding watchers of it
 *   refresh.requested → a refresh of that presentity on that node (the service's own follow-up)
 * Duplicates coalesce (one peer, one dialog, one presentity per batch); every entry keeps the
 * events that asked for it, so a fault is reported against exactly those SQS records.
 */
import type {
  ConnectionClosed,
  DialogKey,
  KamailioEvent,
  NotifyFailed,
  PresenceChanged,
  RefreshRequested,
} from "./contract.ts";
import { type FleetConfig, findNode, type NodeConfig } from "./fleet.ts";
import { type Peer, peerKey } from "./peer.ts";
import type { PresentityKey } from "./ports.ts";

/** One event and the SQS record it came in. */
export interface SourcedEvent<E extends KamailioEvent = KamailioEvent> {
  messageId: string;
  index: number;
  event: E;
}

export interface PeerWork {
  peer: Peer;
  sources: SourcedEvent<ConnectionClosed>[];
}

export interface DialogWork {
  key: DialogKey;
  sources: SourcedEvent<NotifyFailed>[];
}

export interface NodePlan {
  node: NodeConfig;
  peers: Map<string, PeerWork>;
  dialogs: Map<string, DialogWork>;
}

export interface FanoutWork {
  key: PresentityKey;
  /** Nodes that posted the change: a node is refreshed unless it is the only origin. */
  origins: Set<string>;
  sources: SourcedEvent<PresenceChanged>[];
}

/** A refresh owed on one node (refresh.requested), coalesced per (node, presentity, event). */
export interface RefreshRequestWork {
  node: NodeConfig;
  key: PresentityKey;
  sources: SourcedEvent<RefreshRequested>[];
}

export interface Plan {
  nodes: Map<string, NodePlan>;
  fanout: Map<string, FanoutWork>;
  refreshRequests: Map<string, RefreshRequestWork>;
  unknownNode: SourcedEvent[];
  /** Valid events that need no work (e.g. a NOTIFY failure code that does not end a subscription). */
  ignored: { source: SourcedEvent; reason: string }[];
}

/** Case-sensitive: dialog keys differing only in letter case are different dialogs. */
export function dialogKeyId(key: DialogKey): string {
  return JSON.stringify([key.callId, key.toTag, key.fromTag]);
}

export function presentityKeyId(key: PresentityKey): string {
  return JSON.stringify([key.presentityUri, key.event]);
}

export function planBatch(events: readonly SourcedEvent[], fleet: FleetConfig): Plan {
  const plan: Plan = {
    nodes: new Map(),
    fanout: new Map(),
    refreshRequests: new Map(),
    unknownNode: [],
    ignored: [],
  };
  const endingCodes = new Set(fleet.notifyFailureCodes);
  const nodePlan = (node: NodeConfig): NodePlan => {
    let p = plan.nodes.get(node.id);
    if (!p) {
      p = { node, peers: new Map(), dialogs: new Map() };
      plan.nodes.set(node.id, p);
    }
    return p;
  };
  for (const source of events) {
    const { event } = source;
    const node = findNode(fleet, event.node);
    if (!node) {
      plan.unknownNode.push(source);
      continue;
    }
    switch (event.type) {
      case "connection.closed": {
        const key = peerKey(event.peer);
        const work = nodePlan(node).peers;
        const entry = work.get(key) ?? { peer: event.peer, sources: [] };
        entry.sources.push(source as SourcedEvent<ConnectionClosed>);
        work.set(key, entry);
        break;
      }
      case "notify.failed": {
        if (!endingCodes.has(event.code)) {
          plan.ignored.push({ source, reason: `NOTIFY reply ${event.code} does not end a subscription` });
          break;
        }
        const id = dialogKeyId(event.dialog);
        const work = nodePlan(node).dialogs;
        const entry = work.get(id) ?? { key: event.dialog, sources: [] };
        entry.sources.push(source as SourcedEvent<NotifyFailed>);
        work.set(id, entry);
        break;
      }
      case "presence.changed": {
        const key = { presentityUri: event.presentity, event: event.event };
        const id = presentityKeyId(key);
        const entry = plan.fanout.get(id) ?? { key, origins: new Set<string>(), sources: [] };
        entry.origins.add(event.node);
        entry.sources.push(source as SourcedEvent<PresenceChanged>);
        plan.fanout.set(id, entry);
        break;
      }
      case "refresh.requested": {
        const key = { presentityUri: event.presentity, event: event.event };
        const id = `${node.id}\u0000${presentityKeyId(key)}`;
        const entry = plan.refreshRequests.get(id) ?? { node, key, sources: [] };
        entry.sources.push(source as SourcedEvent<RefreshRequested>);
        plan.refreshRequests.set(id, entry);
        break;
      }
    }
  }
  return plan;
}

/** Fan-out targets: a node with watchers of the presentity, unless it alone posted the change. */
export function fanoutTargets(
  work: FanoutWork,
  watching: readonly { nodeId: string; presentityUri: string; event: string }[],
): string[] {
  const targets = new Set<string>();
  for (const w of watching) {
    // Byte-exact re-check: MySQL's `_ci` comparison may have returned another letter case.
    if (w.presentityUri !== work.key.presentityUri || w.event !== work.key.event) continue;
    if (work.origins.size === 1 && work.origins.has(w.nodeId)) continue;
    targets.add(w.nodeId);
  }
  return [...targets].sort();
}
