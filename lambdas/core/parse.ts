/**
 * Parsing of ingest messages into valid events and rejections with readable reasons.
 * Reasons name the field path, what was expected and what was received.
 */
import type { z } from "zod";
import { ENVELOPE_MAX_BYTES, EnvelopeSchema, type KamailioEvent, KamailioEventSchema } from "./contract.ts";

export interface Rejection {
  /** Index of the event inside its envelope; undefined when the envelope itself is unreadable. */
  index?: number;
  reason: string;
  /** The raw event (or whole body) that was rejected, for the DLQ. */
  raw: string;
}

export interface ParsedMessage {
  events: { index: number; event: KamailioEvent }[];
  rejections: Rejection[];
}

const MAX_SHOWN = 60;

/**
 * JSON.stringify that cannot throw: a body within the size limit can still nest arrays ~10,000
 * deep, which overflows the stack of JSON.stringify (and of String()), while JSON.parse copes.
 */
function stringifySafely(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

function show(value: unknown): string {
  if (value === undefined) return "nothing";
  let text = stringifySafely(value);
  if (text === undefined) {
    try {
      text = String(value);
    } catch {
      text = "(nested too deeply to show)";
    }
  }
  const kind = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
  const shown = text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
  return `${kind} ${shown}`;
}

function pathOf(path: readonly PropertyKey[], prefix: string): string {
  let out = prefix;
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || "(root)";
}

/** One line per problem: `events[2].peer.port: expected integer ≤ 65535, received number 70000`. */
export function formatIssues(error: z.ZodError, prefix = ""): string {
  return error.issues
    .map((issue) => {
      const where = pathOf(issue.path, prefix);
      let input = "input" in issue ? issue.input : undefined;
      if (issue.code === "unrecognized_keys") return `${where}: ${describeExpected(issue)}`;
      if (
        issue.code === "invalid_union" &&
        issue.path.at(-1) === "type" &&
        input &&
        typeof input === "object"
      ) {
        input = (input as { type?: unknown }).type;
      }
      return `${where}: ${describeExpected(issue)}, received ${show(input)}`;
    })
    .join("; ");
}

function describeExpected(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return `expected ${issue.expected}`;
    case "too_big":
      return `expected ${issue.origin === "string" ? "length" : issue.origin === "array" ? "count" : "value"} ≤ ${String(issue.maximum)}`;
    case "too_small":
      return `expected ${issue.origin === "string" ? "length" : issue.origin === "array" ? "count" : "value"} ≥ ${String(issue.minimum)}`;
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "unrecognized_keys":
      return `expected no unknown field, received ${issue.keys.join(", ")}`;
    case "invalid_union":
      return "discriminator" in issue && issue.discriminator
        ? `expected "${String(issue.discriminator)}" to be one of connection.closed, notify.failed, presence.changed, refresh.requested`
        : `expected ${issue.message}`;
    default:
      return `expected ${issue.message}`;
  }
}

/** Parses one event; returns the event or a reason. */
export function parseEvent(
  raw: unknown,
  prefix = "",
): { ok: true; event: KamailioEvent } | { ok: false; reason: string } {
  const result = KamailioEventSchema.safeParse(raw, { reportInput: true });
  return result.success
    ? { ok: true, event: result.data }
    : { ok: false, reason: formatIssues(result.error, prefix) };
}

/**
 * Deepest nesting an event may have (the contract needs 2: the event and its dialog or peer).
 * Checked iteratively on the parsed value before anything recursive (JSON.stringify, zod,
 * String()) sees it: an event nested 6,000 deep would overflow their stack. JSON.parse itself is
 * iterative in V8 (a million levels parse), so one deep event never costs its neighbours.
 */
export const MAX_EVENT_DEPTH = 8;

/** Nesting depth of a parsed JSON value, counted with an explicit stack; stops past `limit`. */
export function valueDepth(value: unknown, limit = Number.POSITIVE_INFINITY): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== "object") continue;
    max = Math.max(max, depth);
    if (max > limit) return max;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return max;
}

/**
 * Text SQS accepts in a message body or attribute (#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
 * #x10000-#x10FFFF): every other code unit is written as a `\uXXXX` escape, so a DLQ send never
 * fails because of what it reports.
 */
export function sqsSafeText(text: string): string {
  return text.replace(
    /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\uD800-\uDFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Parses an SQS message body holding one envelope. Never throws, whatever the body. */
export function parseMessage(body: string): ParsedMessage {
  try {
    return parseBody(body);
  } catch (error) {
    // Unreachable for any input we know of (see the property test); never sink a batch for it.
    return {
      events: [],
      rejections: [{ reason: `(root): unreadable body (${String(error).slice(0, 200)})`, raw: body }],
    };
  }
}

function parseBody(body: string): ParsedMessage {
  if (Buffer.byteLength(body, "utf8") > ENVELOPE_MAX_BYTES) {
    return {
      events: [],
      rejections: [
        {
          reason: `(root): expected at most ${ENVELOPE_MAX_BYTES} bytes, received ${Buffer.byteLength(body)}`,
          raw: body,
        },
      ],
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (e) {
    return {
      events: [],
      rejections: [
        { reason: `(root): expected JSON, received unparsable text (${(e as Error).message})`, raw: body },
      ],
    };
  }
  const envelope = EnvelopeSchema.safeParse(json, { reportInput: true });
  if (!envelope.success)
    return { events: [], rejections: [{ reason: formatIssues(envelope.error), raw: body }] };
  const out: ParsedMessage = { events: [], rejections: [] };
  envelope.data.events.forEach((raw, index) => {
    const depth = valueDepth(raw, MAX_EVENT_DEPTH);
    if (depth > MAX_EVENT_DEPTH) {
      // Never stringified (that would recurse): the DLQ gets the whole envelope with the reason.
      const reason = `events[${index}]: expected an event nested at most ${MAX_EVENT_DEPTH} deep, received more`;
      out.rejections.push({ index, reason, raw: body });
      return;
    }
    const parsed = parseEvent(raw, `events[${index}]`);
    if (parsed.ok) out.events.push({ index, event: parsed.event });
    // Too deep to re-serialise: the DLQ gets the whole envelope, so nothing is lost.
    else out.rejections.push({ index, reason: parsed.reason, raw: stringifySafely(raw) ?? body });
  });
  return out;
}
