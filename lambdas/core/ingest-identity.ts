/**
 * Per-node ingest identity, the worker's half (docs/security.md).
 *
 * The ingest's authorizer maps each node's own key to its node id, and API Gateway sets that id as
 * the `kwc-node` message attribute (never the caller: only the body is mapped from the request).
 * An event whose `node` is not the node that sent it is a forgery by a node (or a node misconfigured
 * with another node's id) and is ignored, counted and audited: it never reaches the plan, so it can
 * neither delete another node's rows nor trigger refreshes there. It does not go to the DLQ, so no
 * redrive can make it count.
 *
 * A message WITHOUT the attribute was not sent through an identity-aware ingest: the worker's own
 * refresh.requested follow-ups, or a message an older ingest queued before the upgrade. A DLQ
 * redrive keeps it: SQS keeps a moved message's attributes, and the worker copies it onto what it
 * dead-letters itself (DlqItem.ingestNode). Only principals with sqs:SendMessage on the events queue
 * can queue one, and no node is such a principal, so these are accepted as before.
 */
import { NodeIdSchema } from "./contract.ts";

/** The SQS message attribute carrying the authenticated node id. */
export const INGEST_NODE_ATTRIBUTE = "kwc-node";
/** The `message` of the structured log record written for each ignored event. */
export const IDENTITY_AUDIT_MESSAGE = "event.node-mismatch";

export type IdentityVerdict =
  /** No attribute: not from an identity-aware ingest (see above). */
  | { accept: true; authenticated: false }
  | { accept: true; authenticated: true }
  | { accept: false; reason: string };

/**
 * Decides whether an event may be processed, given the `kwc-node` attribute of its message
 * (undefined when absent) and the node the event names.
 */
export function checkIngestIdentity(attribute: string | undefined, event: { node: string }): IdentityVerdict {
  if (attribute === undefined) return { accept: true, authenticated: false };
  if (!NodeIdSchema.safeParse(attribute).success) {
    // The ingest only ever sets a node id; anything else means it is misconfigured: fail closed.
    return { accept: false, reason: `the ${INGEST_NODE_ATTRIBUTE} attribute is not a node id` };
  }
  if (attribute === event.node) return { accept: true, authenticated: true };
  return {
    accept: false,
    reason: `sent with node ${attribute}'s key but names node ${JSON.stringify(event.node)}`,
  };
}

/** Reads the attribute from a Lambda SQS record's `messageAttributes`. */
export function ingestNodeOf(
  messageAttributes: Readonly<Record<string, { stringValue?: string | undefined }>> | undefined,
): string | undefined {
  return messageAttributes?.[INGEST_NODE_ATTRIBUTE]?.stringValue;
}

/** What the worker's intake logs and counts; the Telemetry port fits. */
interface IdentityTelemetry {
  count(metric: "EventsNodeMismatch"): void;
  warn(message: string, data?: Record<string, unknown>): void;
}

/**
 * The worker's intake hook: true when the event may go on; false after counting and auditing
 * it (one structured record per ignored event, with the event, for "who tried what").
 */
export function admitEvent(
  record: { messageId: string; ingestNode?: string | undefined },
  parsed: { index: number; event: { node: string; type: string } },
  telemetry: IdentityTelemetry,
): boolean {
  const verdict = checkIngestIdentity(record.ingestNode, parsed.event);
  if (verdict.accept) return true;
  telemetry.count("EventsNodeMismatch");
  telemetry.warn(IDENTITY_AUDIT_MESSAGE, {
    identity: {
      authenticatedNode: record.ingestNode,
      claimedNode: parsed.event.node,
      eventType: parsed.event.type,
      reason: verdict.reason,
      sourceMessageId: record.messageId,
      eventIndex: parsed.index,
      event: parsed.event,
    },
  });
  return false;
}
