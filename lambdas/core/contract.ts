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
 * SIP text never holds these (RFC 3261 excludes CTL characters), the cfg never writes them, and
 * they break logs, terminals and XML tools downstream: C0 controls, DEL, U+FFFE/U+FFFF and lone
 * surrogates (a surrogate pair, i.e. any astral character, is fine). A regex, so the generated
 * JSON Schema carries it too.
 */
const NO_REFUSED_CODE_POINTS =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is its purpose
  /^(?:[^\u0000-\u001f\u007f\ufffe\uffff\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])*$/;
const sipText = (max: number) =>
  z
    .string()
    .max(max)
    .regex(NO_REFUSED_CODE_POINTS, "no control characters (C0, DEL), U+FFFE/U+FFFF or lone surrogates");
/** Column widths of Kamailio's active_watchers (schema v12): longer values cannot be in a row. */
const callId = sipText(255).min(1);
const tag = sipText(128);
const sipUri = sipText(255).min(1);

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
  contact: sipText(255),
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
