/**
 * BatchLedger: every outcome of one batch goes through here, and only here: DLQ items, records to
 * retry, ignored events, guard keeps, refresh outcomes and their metrics. Its methods are the
 * worker's reporting contract; finish() sends the DLQ and returns the records to retry.
 */
import type { Fault } from "../classify.ts";
import type { IgnoreKind } from "../kernel/admission.ts";
import type { KeepReason } from "../kernel/guard.ts";
import type { Rejection } from "../parse.ts";
import type { SourcedEvent } from "../plan.ts";
import type { DeadLetterSink, MetricName, PresentityKey, Telemetry } from "../ports.ts";
import type { BatchResult, InputRecord, RefreshOutcomeName } from "./types.ts";

const IGNORE_METRIC: Record<IgnoreKind, MetricName> = {
  boot: "EventsIgnoredBoot",
  freshness: "EventsIgnoredStale",
  "no-version": "EventsIgnored",
};

const KEEP_METRIC: Record<Exclude<KeepReason, "no-match">, MetricName> = {
  live: "GuardKeeps",
  "no-peer": "GuardKeepsNoPeer",
  changed: "GuardKeepsChanged",
};

/** `{"v":1,"events":[<event>]}` around an event's JSON text (its bytes kept as they were). */
function oneEventEnvelope(eventJson: string): string {
  return `{"v":1,"events":[${eventJson}]}`;
}

/** The source's authenticated node, for its DLQ items; none for a record without one. */
function identityOf(record: InputRecord | undefined): { ingestNode?: string } {
  return record?.ingestNode === undefined ? {} : { ingestNode: record.ingestNode };
}

export class BatchLedger {
  readonly result: BatchResult = {
    failedMessageIds: [],
    deleted: 0,
    guardKeeps: 0,
    refreshes: [],
    followUps: [],
    dlq: [],
  };
  readonly #failed = new Set<string>();

  constructor(
    private readonly records: readonly InputRecord[],
    readonly log: Telemetry,
  ) {}

  rejected(messageId: string, r: Rejection): void {
    this.log.count("EventsRejected");
    this.log.warn("event rejected", { messageId, index: r.index, reason: r.reason });
    const source = this.#record(messageId);
    // One event of a readable envelope goes alone, as an envelope a redrive reads (and rejects
    // again, unless fixed); an unreadable body, or one whose event cannot be shown alone, as is.
    const alone = r.index !== undefined && r.raw !== source?.body;
    this.result.dlq.push({
      body: alone ? oneEventEnvelope(r.raw) : r.raw,
      reason: r.reason,
      sourceMessageId: messageId,
      ...(r.index === undefined ? {} : { eventIndex: r.index }),
      ...identityOf(source),
    });
  }

  deadLetter(sources: readonly SourcedEvent[], reason: string, metric?: MetricName): void {
    for (const s of sources) {
      if (metric) this.log.count(metric);
      const body = oneEventEnvelope(JSON.stringify(s.event));
      const identity = identityOf(this.#record(s.messageId));
      this.result.dlq.push({ body, reason, sourceMessageId: s.messageId, eventIndex: s.index, ...identity });
    }
  }

  #record(messageId: string): InputRecord | undefined {
    return this.records.find((r) => r.messageId === messageId);
  }

  retry(sources: readonly SourcedEvent[], fault: Fault, what: string): void {
    this.log.count("TransientFailures");
    const messageIds = [...new Set(sources.map((s) => s.messageId))];
    this.log.warn(`${what}: transient fault, records will be retried`, { detail: fault.detail, messageIds });
    for (const id of messageIds) this.#failed.add(id);
  }

  retryIds(ids: Iterable<string>): void {
    this.log.count("TransientFailures");
    for (const id of ids) this.#failed.add(id);
  }

  ignored(source: SourcedEvent, kind: IgnoreKind, detail: string): void {
    this.log.count(IGNORE_METRIC[kind]);
    this.log.ignored({
      action: "event.ignored",
      node: source.event.node,
      kind,
      detail,
      sourceMessageId: source.messageId,
      eventIndex: source.index,
      sourceEvent: source.event,
    });
  }

  noWork(source: SourcedEvent, reason: string): void {
    this.log.count("EventsIgnored");
    this.log.info("event needs no cleanup", { reason, messageId: source.messageId, event: source.event });
  }

  kept(why: KeepReason, detail: Record<string, unknown>): void {
    if (why === "no-match") return;
    if (why === "live") this.result.guardKeeps++;
    this.log.count(KEEP_METRIC[why]);
    this.log.info(
      `row kept: ${why === "live" ? "its peer is connected now" : why === "changed" ? "re-subscribed since the failed NOTIFY" : "its contact names no WebSocket peer"}`,
      detail,
    );
  }

  refreshed(node: string, key: PresentityKey, outcome: RefreshOutcomeName): void {
    this.result.refreshes.push({ node, presentityUri: key.presentityUri, event: key.event, outcome });
  }

  retryAll(): BatchResult {
    return { ...this.result, failedMessageIds: this.records.map((r) => r.messageId) };
  }

  async finish(dlq: DeadLetterSink): Promise<BatchResult> {
    const items = this.result.dlq;
    if (items.length > 0) {
      try {
        await dlq.send(items);
        this.log.count("DlqSent", items.length);
      } catch (error) {
        this.log.error("DLQ send failed; retrying the records", { error: String(error) });
        for (const item of items) this.#failed.add(item.sourceMessageId);
      }
    }
    this.result.failedMessageIds = this.records.map((r) => r.messageId).filter((id) => this.#failed.has(id));
    return this.result;
  }
}
