/**
 * The worker's use case: one SQS batch → parse → plan → per node (rows first, connections second,
 * then delete by id AND the same predicate) → refreshes (each distinct (node, presentity, event)
 * once; a refresh owed after deletions that hits a transient fault becomes a delayed
 * refresh.requested follow-up on the events queue) → DLQ for rejected events → the ids of the
 * records whose work hit a transient fault.
 * I/O only through the ports; the handler (lambdas/handlers/worker.ts) wires the adapters.
 */
import {
  classifyRpcError,
  classifyStoreError,
  type Fault,
  RpcFaultError,
  RpcTransportError,
} from "./classify.ts";
import type { RefreshRequested } from "./contract.ts";
import {
  type DatabaseEngine,
  type FleetConfig,
  factsFromConfig,
  findNode,
  type NodeConfig,
  type NodeFacts,
} from "./fleet.ts";
import { refreshRequested } from "./follow-up.ts";
import { admitEvent } from "./ingest-identity.ts";
import { isOverloaded, NodeBackOff } from "./node-back-off.ts";
import { parseMessage } from "./parse.ts";
import { contactMatchesPeer, type Peer, peerKey } from "./peer.ts";
import {
  dialogKeyId,
  fanoutTargets,
  type NodePlan,
  planBatch,
  presentityKeyId,
  type SourcedEvent,
} from "./plan.ts";
import { forEachBounded } from "./pool.ts";
import type {
  AuditRecord,
  DeadLetterSink,
  DlqItem,
  FollowUpSink,
  KamailioClient,
  PresentityKey,
  Telemetry,
  WatcherCriteria,
  WatcherRow,
  WatcherStore,
} from "./ports.ts";
import { factsFromStatus, scopeOf } from "./ports.ts";
import { contactPeer } from "./reconcile.ts";
import { RefreshGate } from "./refresh-gate.ts";

export interface InputRecord {
  messageId: string;
  body: string;
  /** The `kwc-node` message attribute: the node the ingest authenticated (core/ingest-identity.ts). */
  ingestNode?: string | undefined;
}

export interface WorkerDeps {
  fleet: () => Promise<FleetConfig>;
  storeFor: (fleet: FleetConfig) => WatcherStore;
  kamailio: KamailioClient;
  dlq: DeadLetterSink;
  /**
   * The events queue, for refresh.requested follow-ups. Without it a refresh owed after deletions
   * that hits a transient fault can only be reported degraded.
   */
  followUps?: FollowUpSink;
  telemetry: Telemetry;
  /** How long a node's status answer is trusted (ms). */
  statusTtlMs?: number;
  now?: () => number;
  /** Nodes handled at once. */
  concurrency?: number;
  /** Test seam: runs between the row read / liveness check and the DELETE. */
  beforeDelete?: (nodeId: string, ids: number[]) => Promise<void>;
}

export interface BatchResult {
  failedMessageIds: string[];
  deleted: number;
  guardKeeps: number;
  refreshes: {
    node: string;
    presentityUri: string;
    event: string;
    outcome: "ok" | "failed" | "degraded" | "retry" | "deferred" | "skipped";
  }[];
  /** Refreshes owed after deletions by verdict and reason (refresh-policy.ts), e.g. "skipped:version-continues". */
  refreshReasons?: Record<string, number>;
  /** refresh.requested follow-ups sent to the events queue in this batch. */
  followUps: RefreshRequested[];
  dlq: DlqItem[];
}

const STATUS_TTL_MS = 30_000;

/** A row chosen for deletion, with what its audit record will say. */
interface Doomed {
  row: WatcherRow;
  reason: AuditRecord["reason"];
  source?: SourcedEvent | undefined;
  peer?: Peer;
}

/** Creates the batch processor; keeps per-instance caches (node status) between invocations. */
export function createWorker(deps: WorkerDeps) {
  const now = deps.now ?? Date.now;
  const statusCache = new Map<string, { at: number; facts: NodeFacts }>();
  const log = deps.telemetry;
  /**
   * Follow-ups whose send failed: their source records are retried, but the retry finds no rows
   * (they are gone) and so cannot re-plan the refresh. The intent is kept here and sent first by
   * the next batch of this instance, whichever records it carries.
   */
  const pendingFollowUps = new Map<string, RefreshRequested>();
  const followUpId = (e: RefreshRequested) => JSON.stringify([e.node, e.presentity, e.event]);

  async function nodeFacts(node: NodeConfig): Promise<NodeFacts> {
    const hit = statusCache.get(node.id);
    if (hit && now() - hit.at < (deps.statusTtlMs ?? STATUS_TTL_MS)) return hit.facts;
    const fallback = factsFromConfig(node);
    try {
      const status = await deps.kamailio.status(node);
      const facts = factsFromStatus(node, status);
      const mismatches = (["kamailioVersion", "subsDbMode", "notifierProcesses"] as const).filter(
        (k) => String(facts[k]) !== String(fallback[k]),
      );
      if (mismatches.length > 0 || (status.watchersTable && status.watchersTable !== node.watchersTable)) {
        log.warn("node status differs from the fleet config; the node wins", {
          node: node.id,
          status,
          config: { ...fallback, watchersTable: node.watchersTable },
        });
      }
      statusCache.set(node.id, { at: now(), facts });
      return facts;
    } catch (error) {
      log.warn("node status unavailable; using the fleet config", { node: node.id, error: String(error) });
      return fallback;
    }
  }

  return async function processBatch(records: readonly InputRecord[]): Promise<BatchResult> {
    const failed = new Set<string>();
    const dlq: DlqItem[] = [];
    const result: BatchResult = {
      failedMessageIds: [],
      deleted: 0,
      guardKeeps: 0,
      refreshes: [],
      dlq,
      followUps: [],
    };

    const sendFollowUps = async (events: RefreshRequested[]): Promise<boolean> => {
      if (!deps.followUps || events.length === 0) return false;
      try {
        await deps.followUps.send(events);
      } catch (error) {
        for (const e of events) pendingFollowUps.set(followUpId(e), e);
        log.error("follow-up send failed; keeping the refreshes owed for the next batch", {
          error: String(error),
          followUps: events,
        });
        return false;
      }
      for (const e of events) pendingFollowUps.delete(followUpId(e));
      result.followUps.push(...events);
      log.count("RefreshDeferred", events.length);
      return true;
    };
    // Refreshes owed from an earlier batch whose follow-up could not be sent: send them first.
    if (pendingFollowUps.size > 0) await sendFollowUps([...pendingFollowUps.values()]);
    const events: SourcedEvent[] = [];

    for (const record of records) {
      const parsed = parseMessage(record.body);
      for (const r of parsed.rejections) {
        log.count("EventsRejected");
        log.warn("event rejected", { messageId: record.messageId, index: r.index, reason: r.reason });
        const item: DlqItem = { body: r.raw, reason: r.reason, sourceMessageId: record.messageId };
        if (r.index !== undefined) item.eventIndex = r.index;
        dlq.push(item);
      }
      for (const e of parsed.events.filter((p) => admitEvent(record, p, log)))
        events.push({ messageId: record.messageId, index: e.index, event: e.event });
    }
    log.count("EventsReceived", events.length);

    const failSources = (sources: readonly SourcedEvent[], fault: Fault, what: string) => {
      log.count("TransientFailures");
      log.warn(`${what}: transient fault, records will be retried`, {
        detail: fault.detail,
        messageIds: [...new Set(sources.map((s) => s.messageId))],
      });
      for (const s of sources) failed.add(s.messageId);
    };

    let fleet: FleetConfig;
    try {
      fleet = await deps.fleet();
    } catch (error) {
      log.error("fleet config unavailable; retrying the whole batch", { error: String(error) });
      return { ...result, failedMessageIds: records.map((r) => r.messageId) };
    }
    const engine: DatabaseEngine = fleet.database.engine;
    const store = deps.storeFor(fleet);
    const plan = planBatch(events, fleet);

    for (const s of plan.unknownNode) {
      log.count("EventsUnknownNode");
      dlq.push({
        body: JSON.stringify(s.event),
        reason: `node ${JSON.stringify(s.event.node)} is not in the fleet config (redrive once it is added)`,
        sourceMessageId: s.messageId,
        eventIndex: s.index,
      });
    }
    for (const { source, reason } of plan.ignored) {
      log.count("EventsIgnored");
      log.info("event needs no cleanup", {
        reason,
        messageId: source.messageId,
        event: source.event,
      });
    }

    // Per batch: one core.tcp_list per node, shared by the cleanup and the reconcile-once path.
    const liveCache = new Map<string, Promise<Set<string>>>();
    const livePeers = (node: NodeConfig) => {
      let p = liveCache.get(node.id);
      if (!p) {
        p = deps.kamailio
          .tcpList(node)
          .then((list) => new Set(list.map((c) => peerKey({ ip: c.srcIp, port: c.srcPort }))));
        liveCache.set(node.id, p);
        p.catch(() => liveCache.delete(node.id));
      }
      return p;
    };

    /**
     * Refreshes to send. `sources`: events that asked for it (a transient fault retries their
     * records). `causes`: records whose events deleted rows of that presentity (a transient fault
     * becomes a follow-up; if that cannot be sent, these records are retried).
     */
    const refreshes = new Map<
      string,
      { node: NodeConfig; key: PresentityKey; sources: SourcedEvent[]; causes: Set<string> }
    >();
    const addRefresh = (node: NodeConfig, key: PresentityKey, sources: SourcedEvent[], cause?: string) => {
      const id = `${node.id}\u0000${presentityKeyId(key)}`;
      const entry = refreshes.get(id) ?? { node, key, sources: [], causes: new Set<string>() };
      entry.sources.push(...sources);
      if (cause !== undefined) entry.causes.add(cause);
      refreshes.set(id, entry);
    };
    const deferred: { event: RefreshRequested; causes: Set<string> }[] = [];
    const [backOff, gate] = [new NodeBackOff(log), new RefreshGate(log, now)];
    result.refreshReasons = gate.reasons;

    const audit = (
      node: NodeConfig,
      row: WatcherRow,
      reason: AuditRecord["reason"],
      source: SourcedEvent | undefined,
      peer?: Peer,
    ) => {
      const record: AuditRecord = {
        action: "watcher.deleted",
        node: node.id,
        table: node.watchersTable,
        rowId: row.id,
        dialog: { callId: row.callId, toTag: row.toTag, fromTag: row.fromTag },
        watcher: `sip:${row.watcherUsername}@${row.watcherDomain}`,
        presentity: row.presentityUri,
        event: row.event,
        contact: row.contact,
        reason,
      };
      if (peer) record.peer = peerKey(peer);
      if (source) {
        record.sourceMessageId = source.messageId;
        record.sourceEvent = source.event;
        if (source.event.type === "connection.closed") record.cause = source.event.cause;
        if (source.event.type === "notify.failed") record.notifyCode = source.event.code;
      }
      log.audit(record);
    };

    async function cleanNode(work: NodePlan): Promise<void> {
      const { node } = work;
      const allSources = [
        ...[...work.peers.values()].flatMap((p) => p.sources),
        ...[...work.dialogs.values()].flatMap((d) => d.sources),
      ];
      const facts = await nodeFacts(node);
      if (facts.subsDbMode !== 3) {
        // Modes 0-2 keep subscriptions in shared memory: deleting rows changes nothing (DESIGN §1 item 9).
        const reason = `node ${node.id} runs subs_db_mode=${facts.subsDbMode} (from its ${facts.source}): subscriptions live in shared memory and deleting rows cannot help; cleanup refused (use subs_db_mode=3)`;
        log.error("cleanup refused", { node: node.id, reason });
        for (const s of allSources) {
          log.count("EventsRefused");
          dlq.push({
            body: JSON.stringify(s.event),
            reason,
            sourceMessageId: s.messageId,
            eventIndex: s.index,
          });
        }
        return;
      }
      const scope = scopeOf(node);
      const criteria: WatcherCriteria = {
        peers: [...work.peers.values()].map((p) => p.peer),
        dialogs: [...work.dialogs.values()].map((d) => d.key),
      };
      try {
        // 1. Rows first.
        const rows = await store.selectCandidates(scope, criteria);
        const chosen = new Map<number, Doomed>();
        const peerRows: (Doomed & { peer: Peer })[] = [];
        for (const row of rows) {
          // Byte-exact re-check of the dialog key (the plan's map is keyed the same way).
          const d = work.dialogs.get(dialogKeyId(row));
          if (d) {
            chosen.set(row.id, { row, reason: "notify.failed", source: d.sources[0] });
            continue;
          }
          // The TS matcher re-checks what the SQL pre-selected (the SQL may be wider, never narrower).
          const p = [...work.peers.values()].find((w) =>
            contactMatchesPeer(row.contact, w.peer, node.contactStyle),
          );
          if (p) peerRows.push({ row, reason: "connection.closed", peer: p.peer, source: p.sources[0] });
        }
        // 2. Connections second: a peer connected now keeps its rows, whatever the boot id says.
        if (peerRows.length > 0) {
          const live = await livePeers(node);
          for (const pr of peerRows) {
            if (live.has(peerKey(pr.peer))) {
              result.guardKeeps++;
              log.count("GuardKeeps");
              log.info("row kept: its peer is connected now", {
                node: node.id,
                rowId: pr.row.id,
                peer: peerKey(pr.peer),
              });
              continue;
            }
            chosen.set(pr.row.id, pr);
          }
        }
        if (chosen.size === 0) return;
        const ids = [...chosen.keys()];
        await deps.beforeDelete?.(node.id, ids);
        // 3. Delete by id AND the same predicate: a row rewritten in between stays.
        const deletedIds = await store.deleteWatchers(scope, ids, criteria);
        for (const id of deletedIds) {
          const c = chosen.get(id);
          if (!c) continue;
          result.deleted++;
          log.count("RowsDeleted");
          audit(node, c.row, c.reason, c.source, c.peer);
          const key = { presentityUri: c.row.presentityUri, event: c.row.event };
          addRefresh(node, key, [], c.source?.messageId);
          gate.died(node.id, key, c.source?.event);
        }
      } catch (error) {
        const fault =
          error instanceof RpcFaultError || error instanceof RpcTransportError
            ? classifyRpcError(error, "core.tcp_list", facts, engine)
            : classifyStoreError(error);
        if (fault.kind === "permanent") {
          log.error("cleanup failed permanently", { node: node.id, detail: fault.detail });
          for (const s of allSources)
            dlq.push({
              body: JSON.stringify(s.event),
              reason: `cleanup on node ${node.id} failed: ${fault.detail}`,
              sourceMessageId: s.messageId,
              eventIndex: s.index,
            });
        } else {
          failSources(allSources, fault, `cleanup on node ${node.id}`);
        }
      }
    }

    await forEachBounded([...plan.nodes.values()], deps.concurrency ?? 4, cleanNode);

    // Fan-out: one query over the node tables finds who watches each changed presentity.
    if (plan.fanout.size > 0) {
      const fanoutSources = [...plan.fanout.values()].flatMap((f) => f.sources);
      try {
        const watching = await store.findWatchingScopes(
          fleet.nodes.map(scopeOf),
          [...plan.fanout.values()].map((f) => f.key),
        );
        for (const work of plan.fanout.values()) {
          for (const nodeId of fanoutTargets(work, watching)) {
            const node = findNode(fleet, nodeId);
            if (node) addRefresh(node, work.key, work.sources);
          }
        }
      } catch (error) {
        const fault = classifyStoreError(error);
        if (fault.kind === "permanent")
          log.error("fan-out lookup failed permanently", { detail: fault.detail });
        else failSources(fanoutSources, fault, "fan-out lookup");
      }
    }

    // refresh.requested: refresh that presentity on that node (coalesced with any other reason).
    for (const work of plan.refreshRequests.values()) addRefresh(work.node, work.key, work.sources);

    /**
     * Reconcile one presentity on one node: delete its WebSocket watchers whose peer is not
     * connected now (judged as the reconcile sweep judges them: a row that names no WS peer, e.g.
     * a UDP watcher, has no connection to look for and stays).
     */
    async function reconcileOnce(node: NodeConfig, key: PresentityKey): Promise<number> {
      const scope = scopeOf(node);
      const rows = await store.selectByPresentity(scope, key);
      const live = await livePeers(node);
      const dead = rows.filter((row) => {
        const peer = contactPeer(row.contact, node.contactStyle);
        return peer !== undefined && !live.has(peerKey(peer));
      });
      if (dead.length === 0) return 0;
      const deletedIds = new Set(
        await store.deleteWatchers(
          scope,
          dead.map((r) => r.id),
          {
            peers: [],
            dialogs: [],
            contacts: { ...key, contacts: [...new Set(dead.map((r) => r.contact))] },
          },
        ),
      );
      for (const row of dead) {
        if (!deletedIds.has(row.id)) continue;
        result.deleted++;
        log.count("RowsDeleted");
        audit(node, row, "reconcile.refresh-failed", undefined);
      }
      return deletedIds.size;
    }

    await forEachBounded([...refreshes.values()], deps.concurrency ?? 4, async (r) => {
      const facts = await nodeFacts(r.node);
      const outcome = (value: BatchResult["refreshes"][number]["outcome"]) =>
        result.refreshes.push({
          node: r.node.id,
          presentityUri: r.key.presentityUri,
          event: r.key.event,
          outcome: value,
        });
      if (gate.skips(r, facts)) return void outcome("skipped");
      const attempt = () =>
        backOff.attempt(
          r.node.id,
          () => deps.kamailio.refreshWatchers(r.node, r.key.presentityUri, r.key.event),
          (error) => classifyRpcError(error, "presence.refreshWatchers", facts, engine),
        );
      let fault = await attempt();
      if (fault?.kind === "refresh-fault" && facts.subsDbMode === 3) {
        // Bounded: reconcile that presentity once, refresh once more, never loop.
        log.warn("refresh failed; reconciling the presentity once", {
          node: r.node.id,
          ...r.key,
          meaning: fault.meaning,
        });
        try {
          await reconcileOnce(r.node, r.key);
          fault = await attempt();
        } catch (error) {
          fault = classifyStoreError(error);
        }
      }
      if (!fault) {
        log.count("RefreshOk");
        outcome("ok");
        return;
      }
      if (isOverloaded(fault) && deps.followUps) return void deferred.push(backOff.followUp(r, now())); // never dropped
      if (fault.kind === "transient" && r.sources.length > 0) {
        // Asked for by events (presence.changed, refresh.requested): their records are retried.
        outcome("retry");
        failSources(r.sources, fault, `refresh of ${r.key.presentityUri} on ${r.node.id}`);
        return;
      }
      if (fault.kind === "transient" && deps.followUps) {
        // Owed after deletions: a retry could not redo it (the rows are gone), a follow-up can.
        log.warn("refresh after deletions failed transiently; sending a follow-up", {
          node: r.node.id,
          ...r.key,
          detail: fault.detail,
        });
        deferred.push({ event: refreshRequested(r.node.id, r.key, now()), causes: r.causes });
        return;
      }
      if (fault.kind === "permanent") {
        log.count("RefreshFailed");
        outcome("failed");
        log.error("refresh failed", { node: r.node.id, ...r.key, detail: fault.detail });
        return;
      }
      // A refresh after deletions cannot be redone by a retry (the rows are gone): report it degraded.
      log.count("RefreshDegraded");
      outcome("degraded");
      log.warn("refresh degraded", {
        node: r.node.id,
        ...r.key,
        detail: fault.detail,
        meaning:
          fault.kind === "refresh-fault" ? fault.meaning : "node unreachable after the rows were deleted",
      });
    });

    if (deferred.length > 0) {
      const sent = await sendFollowUps(deferred.map((d) => d.event));
      for (const d of deferred) {
        result.refreshes.push({
          node: d.event.node,
          presentityUri: d.event.presentity,
          event: d.event.event,
          outcome: sent ? "deferred" : "retry",
        });
        if (!sent) {
          // Nothing may be dropped: retry the records that deleted the rows (the intent itself is
          // kept in pendingFollowUps and sent by the next batch).
          log.count("TransientFailures");
          for (const id of d.causes) failed.add(id);
        }
      }
    }

    if (dlq.length > 0) {
      try {
        await deps.dlq.send(dlq);
        log.count("DlqSent", dlq.length);
      } catch (error) {
        log.error("DLQ send failed; retrying the records", { error: String(error) });
        for (const item of dlq) failed.add(item.sourceMessageId);
      }
    }
    result.failedMessageIds = records.map((r) => r.messageId).filter((id) => failed.has(id));
    return result;
  };
}
