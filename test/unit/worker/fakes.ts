// Test doubles for the worker core: an in-memory watchers store that evaluates the same LIKE
// shapes the SQL uses (so the SQL pre-selection semantics are exercised) and a recording DLQ; the
// scripted Kamailio and the node/fleet builders are test/helpers/fakes.ts (shared with the sweep).
import { memoryTelemetry } from "#adapters/telemetry.ts";
import type { DialogKey } from "#core/contract.ts";
import type { NodeConfig } from "#core/fleet.ts";
import { contactLikeShapes } from "#core/peer.ts";
import type {
  DeadLetterSink,
  DlqItem,
  FollowUpSink,
  NodeScope,
  PresentityKey,
  WatcherCriteria,
  WatcherRow,
  WatcherStore,
} from "#core/ports.ts";
import { LIKE_ESCAPE, likePattern } from "#core/sql.ts";
import { createWorker, type WorkerDeps } from "#core/worker.ts";
import { BOOT, FakeKamailio, fleetOf, nodeConfig } from "../../helpers/fakes.ts";

export { BOOT, FakeKamailio, fleetOf, nodeConfig };

/** SQL LIKE with `ESCAPE '!'`, case-sensitive (the store compares LOWER(contact)). */
export function sqlLike(value: string, pattern: string): boolean {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === LIKE_ESCAPE) {
      i++;
      re += (pattern[i] ?? "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    } else if (c === "%") re += "[\\s\\S]*";
    else if (c === "_") re += "[\\s\\S]";
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`${re}$`).test(value);
}

export function matchesCriteria(row: WatcherRow, scope: NodeScope, criteria: WatcherCriteria): boolean {
  if (!scope.socketInfo.includes(row.socketInfo)) return false;
  const contact = row.contact.toLowerCase();
  for (const peer of criteria.peers) {
    for (const shape of contactLikeShapes(peer, scope.contactStyle))
      if (sqlLike(contact, likePattern(shape.parts))) return true;
  }
  for (const d of criteria.dialogs)
    if (
      row.callId === d.callId &&
      row.toTag === d.toTag &&
      row.fromTag === d.fromTag &&
      (d.version === undefined || row.version === d.version)
    )
      return true;
  const c = criteria.contacts;
  if (c && row.presentityUri === c.presentityUri && row.event === c.event && c.contacts.includes(row.contact))
    return true;
  return false;
}

let nextRowId = 1;
export function watcherRow(
  partial: Partial<WatcherRow> & { contact: string; socketInfo: string },
): WatcherRow {
  const id = partial.id ?? nextRowId++;
  return {
    id,
    presentityUri: "sip:alice@example.com",
    event: "presence",
    callId: `call-${id}`,
    toTag: `tt-${id}`,
    fromTag: `ft-${id}`,
    watcherUsername: `user${id}`,
    watcherDomain: "example.com",
    expires: 2_000_000_000,
    version: 1,
    ...partial,
  };
}

export class MemoryStore implements WatcherStore {
  calls: string[] = [];
  failNext: unknown[] = [];
  constructor(readonly tables: Map<string, WatcherRow[]> = new Map()) {}
  rows(table: string): WatcherRow[] {
    let t = this.tables.get(table);
    if (!t) {
      t = [];
      this.tables.set(table, t);
    }
    return t;
  }
  #maybeFail(call: string) {
    this.calls.push(call);
    const f = this.failNext.shift();
    if (f) throw f;
  }
  async selectCandidates(scope: NodeScope, criteria: WatcherCriteria): Promise<WatcherRow[]> {
    this.#maybeFail(`select:${scope.nodeId}`);
    return this.rows(scope.table)
      .filter((r) => matchesCriteria(r, scope, criteria))
      .map((r) => ({ ...r }));
  }
  async selectByPresentity(scope: NodeScope, key: PresentityKey): Promise<WatcherRow[]> {
    this.#maybeFail(`selectByPresentity:${scope.nodeId}`);
    return this.rows(scope.table)
      .filter(
        (r) =>
          scope.socketInfo.includes(r.socketInfo) &&
          r.presentityUri === key.presentityUri &&
          r.event === key.event,
      )
      .map((r) => ({ ...r }));
  }
  async deleteWatchers(scope: NodeScope, ids: number[], criteria: WatcherCriteria): Promise<number[]> {
    this.#maybeFail(`delete:${scope.nodeId}`);
    const rows = this.rows(scope.table);
    const gone = rows.filter((r) => ids.includes(r.id) && matchesCriteria(r, scope, criteria));
    this.tables.set(
      scope.table,
      rows.filter((r) => !gone.includes(r)),
    );
    return gone.map((r) => r.id);
  }
  async findWatchingScopes(scopes: NodeScope[], keys: PresentityKey[]) {
    this.#maybeFail("findWatching");
    const out: { nodeId: string; presentityUri: string; event: string }[] = [];
    for (const s of scopes)
      for (const k of keys)
        if (
          this.rows(s.table).some(
            (r) =>
              s.socketInfo.includes(r.socketInfo) &&
              r.presentityUri === k.presentityUri &&
              r.event === k.event,
          )
        )
          out.push({ nodeId: s.nodeId, ...k });
    return out;
  }
}

export class RecordingDlq implements DeadLetterSink {
  items: DlqItem[] = [];
  failures: unknown[] = [];
  async send(items: DlqItem[]): Promise<void> {
    const f = this.failures.shift();
    if (f) throw f;
    this.items.push(...items);
  }
}

export const AT = 1_795_621_085;

export function closed(node: string, ip: string, port: number) {
  return {
    type: "connection.closed",
    node,
    boot: BOOT,
    peer: { ip, port },
    transport: "ws",
    cause: "tcp:reset",
    at: AT,
  };
}
export function notifyFailed(node: string, dialog: DialogKey, code = 404) {
  return {
    type: "notify.failed",
    node,
    boot: BOOT,
    dialog,
    presentity: "sip:alice@example.com",
    event: "presence",
    code,
    contact: "sip:x@1.2.3.4:5;transport=ws",
    version: 1,
    at: AT,
  };
}
export function changed(node: string, presentity = "sip:alice@example.com", event = "presence") {
  return { type: "presence.changed", node, boot: BOOT, presentity, event, at: AT };
}
export function envelope(...events: unknown[]): string {
  return JSON.stringify({ v: 1, events });
}

/** A worker over in-memory fakes, as every worker unit test builds it. */
export function workerBed(opts: { nodes?: NodeConfig[]; followUps?: FollowUpSink; now?: () => number } = {}) {
  // The events' `at` (AT) is fresh at this clock unless a test moves it.
  const fleet = fleetOf(opts.nodes ?? [nodeConfig("node-1"), nodeConfig("node-2")]);
  const store = new MemoryStore();
  const kamailio = new FakeKamailio();
  const dlq = new RecordingDlq();
  const tel = memoryTelemetry();
  const deps: WorkerDeps = {
    fleet: async () => fleet,
    storeFor: () => store,
    kamailio,
    dlq,
    telemetry: tel.telemetry,
    now: opts.now ?? (() => AT * 1000 + 5_000),
    ...(opts.followUps ? { followUps: opts.followUps } : {}),
  };
  return { fleet, store, kamailio, dlq, tel, deps, run: createWorker(deps) };
}
