/**
 * Opt-in pipeline trace for local mode (`KWC_TRACE=1`): each stage of an event's way through the
 * local pipeline records a timestamp here, and `bench/pipeline-latency.ts --trace` prints the
 * per-stage breakdown (docs/local-mode.md, "Where the time goes").
 *
 * Off (the default), `mark()` returns after one constant check and nothing is subscribed; the
 * Kamailio side (`KWC_TRACE` define) is compiled out of the cfg by the preprocessor.
 *
 * Stages recorded here: ingest received/queued (local/ingest.ts), poll received and worker
 * invoked/returned (local/poller.ts), Data API statements (local/dataapi/server.ts), and the
 * worker's JSON-RPC calls to Kamailio (fetch's `undici:request:*` diagnostics channels, so the
 * Lambda code itself carries no hook).
 */
import { subscribe } from "node:diagnostics_channel";

export const TRACE_ENABLED = process.env.KWC_TRACE === "1";

export interface TraceMark {
  /** Wall-clock time in ms with sub-ms precision (performance.timeOrigin + performance.now()). */
  at: number;
  stage: string;
  detail?: string;
}

const marks: TraceMark[] = [];

export const preciseNow = (): number => performance.timeOrigin + performance.now();

export function mark(stage: string, detail?: string): void {
  if (!TRACE_ENABLED) return;
  marks.push({ at: preciseNow(), stage, ...(detail !== undefined && { detail }) });
}

/** Every mark so far (and clears them). */
export function takeMarks(): TraceMark[] {
  return marks.splice(0, marks.length);
}

interface UndiciRequest {
  path?: string;
}

if (TRACE_ENABLED) {
  // The worker's JSON-RPC calls (core.tcp_list, then presence.refreshWatchers), in call order.
  const tracked = new WeakSet<object>();
  subscribe("undici:request:create", (message) => {
    const { request } = message as { request: UndiciRequest };
    if (!request.path?.startsWith("/RPC")) return;
    tracked.add(request);
    mark("rpc sent");
  });
  subscribe("undici:request:headers", (message) => {
    const { request } = message as { request: UndiciRequest };
    if (tracked.has(request)) mark("rpc answered");
  });
}
