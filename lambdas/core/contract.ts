/**
 * Event contract v1: what the Kamailio cfg (kamailio/kwc.cfg) POSTs to the ingest.
 *
 * One zod schema per contract; the types are inferred from it and the JSON Schema in
 * docs/event-contract.schema.json is generated from it (`npm run schema`).
 * An envelope is parsed in two steps (envelope, then each event on its own) so that one invalid
 * event never sinks the valid events posted with it.
 */
import { z } from "zod";

/** Upper bounds on the envelope: the cfg caps each POST below both (kamailio/kwc.cfg). */
export const ENVELOPE_MAX_EVENTS = 200;
export const ENVELOPE_MAX_BYTES = 60 * 1024;

/**
 * Text the service accepts in any string of an event: no C0 control (U+0000-U+001F), no DEL
 * (U+007F), no U+FFFE/U+FFFF and no lone surrogate. SQS refuses U+FFFE/U+FFFF and lone surrogates
 * in a message (one such character in an envelope fails the ingest's SendMessage, and a DLQ send
 * of the rejected event); PostgreSQL refuses U+0000 in a statement (SQLSTATE 22021), which would
 * fail every event batched with it; no SIP header value Kamailio stores holds the others.
 * Written without the `u` flag so that the JSON Schema's `pattern` means the same everywhere: a
 * surrogate is accepted only as the first half of a pair followed by its second half.
 */
export const EVENT_TEXT_RE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  /^(?:[^\u0000-\u001F\u007F\uD800-\uDFFF\uFFFE\uFFFF]|[\uD800-\uDBFF][\uDC00-\uDFFF])*$/;
export const EVENT_TEXT_MESSAGE =
  "text without control characters (U+0000-U+001F, U+007F), U+FFFE, U+FFFF or lone surrogates";
const eventText = (min: number, max: number) =>
  z.string().min(min).max(max).regex(EVENT_TEXT_RE, EVENT_TEXT_MESSAGE);

/** Column widths of Kamailio's active_watchers (schema v12): longer values cannot be in a row. */
const callId = eventText(1, 255);
const tag = eventText(0, 128);
const sipUri = eventText(1, 255);

export const NodeIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "a node id: 1-63 of [A-Za-z0-9._-], starting alphanumeric");
/** Boot id made once per Kamailio start by the cfg: boot epoch, '-', random hex. */
export const BootIdSchema = z
  .string()
  .regex(/^[0-9]{1,12}-[0-9A-Za-z]{4,32}$/, "a boot id like 1764088000-9f3a61c2");
/** Peer address as Kamailio prints $si: IPv4 dotted quad or IPv6 without brackets. */
export const IpSchema = z.union([z.ipv4(), z.ipv6()], { error: "an IPv4 or IPv6 address without brackets" });
export const PortSchema = z.number().int().min(1).max(65535);
/** Presence event package as Kamailio names it (`presence`, `dialog`, `message-summary`, ...). */
export const EventPackageSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,63}$/, "an event package token");
/** Epoch seconds (may carry a fraction). */
const at = z.number().min(1_000_000_000).max(10_000_000_000);

export const DialogKeySchema = z.strictObject({
  callId,
  toTag: tag,
  fromTag: tag,
});

export const ConnectionClosedSchema = z.strictObject({
  type: z.literal("connection.closed"),
  node: NodeIdSchema,
  boot: BootIdSchema,
  peer: z.strictObject({ ip: IpSchema, port: PortSchema }),
  /** Absent when the cfg cannot tell (websocket:closed reports $proto tcp on 5.6). */
  transport: z.enum(["ws", "wss"]).optional(),
  cause: z.enum(["tcp:closed", "tcp:reset", "tcp:timeout", "websocket:closed"]),
  /** Kamailio's connection id: null on 5.6.3 in tcp:* routes; restarts at 1 each boot. */
  conid: z.number().int().positive().nullable().optional(),
  at,
});

export const NotifyFailedSchema = z.strictObject({
  type: z.literal("notify.failed"),
  node: NodeIdSchema,
  boot: BootIdSchema,
  dialog: DialogKeySchema,
  presentity: sipUri,
  event: EventPackageSchema,
  /** Final reply code of the NOTIFY (408 when tm timed it out). */
  code: z.number().int().min(300).max(699),
  contact: eventText(0, 255),
  /**
   * `$subs(version)` of the failed NOTIFY: presence bumps the row's `version` with every NOTIFY
   * it sends, including the one each re-SUBSCRIBE triggers, so a row whose version still equals
   * this one has not been re-subscribed since (verified on 5.6.3 in sync mode, PostgreSQL and
   * MariaDB, for a PUBLISH-triggered NOTIFY). The delete requires it unchanged. Absent from cfgs
   * before this field: such an event never deletes by dialog key (docs/worker.md).
   */
  version: z.number().int().min(0).max(2_147_483_647).optional(),
  at,
});

export const PresenceChangedSchema = z.strictObject({
  type: z.literal("presence.changed"),
  node: NodeIdSchema,
  boot: BootIdSchema,
  presentity: sipUri,
  event: EventPackageSchema,
  at,
});

/**
 * Posted by the service itself (worker, reconcile sweep) to its own events queue when a refresh
 * after deletions hit a transient fault: the rows that named the presentity are gone, so this
 * message is what keeps the refresh owed to the survivors. No boot id: a refresh is idempotent.
 */
export const RefreshRequestedSchema = z.strictObject({
  type: z.literal("refresh.requested"),
  node: NodeIdSchema,
  presentity: sipUri,
  event: EventPackageSchema,
  reason: z.literal("refresh-failed"),
  /** How many times a refresh was tried before this request (informational). */
  attempt: z.number().int().min(1).max(1000).optional(),
  at,
});

export const KamailioEventSchema = z.discriminatedUnion("type", [
  ConnectionClosedSchema,
  NotifyFailedSchema,
  PresenceChangedSchema,
  RefreshRequestedSchema,
]);

/** The envelope is checked first with its events left opaque, each event is then parsed alone. */
export const EnvelopeSchema = z.strictObject({
  v: z.literal(1),
  events: z.array(z.unknown()).min(1).max(ENVELOPE_MAX_EVENTS),
});

export type DialogKey = z.infer<typeof DialogKeySchema>;
export type ConnectionClosed = z.infer<typeof ConnectionClosedSchema>;
export type NotifyFailed = z.infer<typeof NotifyFailedSchema>;
export type PresenceChanged = z.infer<typeof PresenceChangedSchema>;
export type RefreshRequested = z.infer<typeof RefreshRequestedSchema>;
export type KamailioEvent = z.infer<typeof KamailioEventSchema>;
export type Envelope = z.infer<typeof EnvelopeSchema>;

/** Full envelope with typed events: what the JSON Schema documents for other producers. */
export const EnvelopeDocumentSchema = EnvelopeSchema.extend({
  events: z.array(KamailioEventSchema).min(1).max(ENVELOPE_MAX_EVENTS),
});
