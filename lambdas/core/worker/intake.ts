/**
 * Step 1: records → events. Each event is parsed on its own (a rejection goes to the DLQ with its
 * reason), and so is a refresh.requested that did not come from the follow-up queue (an ingest
 * body, or a DLQ redrive, can never ask for it); a deleting event is admitted only when fresh, and a notify.failed only with the version
 * its delete will compare (kernel/admission.ts). Pure apart from the ledger.
 */

import { admitEvent } from "../ingest-identity.ts";
import { DEFAULT_FRESHNESS, type Freshness, freshnessProblem } from "../kernel/admission.ts";
import { parseMessage } from "../parse.ts";
import type { SourcedEvent } from "../plan.ts";
import type { BatchLedger } from "./ledger.ts";
import type { InputRecord } from "./types.ts";

export function intake(
  records: readonly InputRecord[],
  ledger: BatchLedger,
  nowMs: number,
  freshness: Freshness = DEFAULT_FRESHNESS,
): SourcedEvent[] {
  const events: SourcedEvent[] = [];
  let received = 0;
  for (const record of records) {
    const parsed = parseMessage(record.body);
    for (const r of parsed.rejections) ledger.rejected(record.messageId, r);
    // An event naming another node than the one the ingest authenticated never goes on.
    for (const { index, event } of parsed.events.filter((p) => admitEvent(record, p, ledger.log))) {
      received++;
      const source = { messageId: record.messageId, index, event };
      if (event.type === "refresh.requested" && record.origin !== "follow-ups") {
        ledger.rejected(record.messageId, {
          index,
          reason: `events[${index}].type: refresh.requested is the service's own message, accepted only from its follow-up queue`,
          raw: JSON.stringify(event),
        });
        continue;
      }
      const stale = freshnessProblem(event, nowMs, freshness);
      if (stale) ledger.ignored(source, "freshness", stale);
      else if (event.type === "notify.failed" && event.version === undefined)
        ledger.ignored(
          source,
          "no-version",
          "notify.failed without `version` (a kwc.cfg before the compare guard): never deleted by dialog key; the reconciler judges its row",
        );
      else events.push(source);
    }
  }
  ledger.log.count("EventsReceived", received);
  return events;
}
