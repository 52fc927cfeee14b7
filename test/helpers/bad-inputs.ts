import { ENVELOPE_MAX_BYTES, ENVELOPE_MAX_EVENTS } from "#core/contract.ts";
import { seededRandom } from "./watcher-world.ts";
/**
 * A seeded, deterministic corpus of hostile ingest bodies, by class (issue 18's invalid classes).
 * Event-level classes put the bad event next to a valid neighbour (a connection.closed of its own
 * peer), so a test can check that the neighbour is processed whatever its sibling is.
 */

export const BAD_INPUT_CLASSES = [
  "malformed-json",
  "wrong-types",
  "missing-fields",
  "oversized-strings",
  "deep-nesting",
  "bad-ip-port",
  "wrong-version",
  "proto-keys",
  "refused-code-points",
  "invalid-utf8",
  "duplicate-keys",
] as const;
export type BadInputClass = (typeof BAD_INPUT_CLASSES)[number];

export interface BadInput {
  cls: BadInputClass;
  /** What is POSTed, byte for byte. */
  body: Buffer;
  /** The valid sibling event's peer, when the envelope carries one. */
  neighbour?: { ip: string; port: number };
}

type Json = Record<string, unknown>;
const BOOT = "1795621085-9f3a61c2";
const AT = 1_795_621_085;

function validEvents(node: string): Json[] {
  return [
    {
      type: "connection.closed",
      node,
      boot: BOOT,
      peer: { ip: "192.0.2.10", port: 40000 },
      transport: "ws",
      cause: "tcp:reset",
      at: AT,
    },
    {
      type: "notify.failed",
      node,
      boot: BOOT,
      dialog: { callId: "c-1@x", toTag: "t1", fromTag: "f1" },
      presentity: "sip:alice@example.com",
      event: "presence",
      code: 481,
      contact: "sip:bob@192.0.2.10:40000;transport=ws",
      at: AT,
    },
    {
      type: "presence.changed",
      node,
      boot: BOOT,
      presentity: "sip:alice@example.com",
      event: "presence",
      at: AT,
    },
  ];
}

/** Every path to a leaf of an event (["peer","ip"], ["at"], …). */
function leafPaths(value: Json, prefix: string[] = []): string[][] {
  return Object.entries(value).flatMap(([k, v]) =>
    v && typeof v === "object" && !Array.isArray(v) ? leafPaths(v as Json, [...prefix, k]) : [[...prefix, k]],
  );
}

function withPath(event: Json, path: string[], replace: (old: unknown) => unknown | typeof REMOVE): Json {
  const copy = structuredClone(event);
  let at: Json = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Json;
  const last = path.at(-1) as string;
  const next = replace(at[last]);
  if (next === REMOVE) delete at[last];
  else at[last] = next;
  return copy;
}
const REMOVE = Symbol("remove");

const WRONG_TYPES: unknown[] = [
  null,
  true,
  0,
  -1.5,
  "",
  "x",
  [],
  [1],
  {},
  { a: 1 },
  Number.POSITIVE_INFINITY /* → null */,
];
const BAD_IPS = [
  "256.1.1.1",
  "1.2.3",
  "1.2.3.4.5",
  "01.2.3.4",
  "0x7f.0.0.1",
  "::g",
  "[::1]",
  "1.2.3.4 ",
  " 1.2.3.4",
  "localhost",
  "",
  "1.2.3.4/24",
  "fe80::1%eth0",
  ":::",
  "1.2.3.-4",
];
const BAD_PORTS: unknown[] = [0, -1, 65536, 70000, 1.5, "5060", null, 1e10, Number.MAX_SAFE_INTEGER, -0.0001];
const VERSIONS: unknown[] = [0, 2, -1, "1", null, true, [1], { v: 1 }, 1.5, 100, "v1"];
const STRING_FIELDS = [
  ["node"],
  ["boot"],
  ["dialog", "callId"],
  ["dialog", "toTag"],
  ["dialog", "fromTag"],
  ["presentity"],
  ["event"],
  ["contact"],
];
/** The contract's length limits of those fields (lambdas/core/contract.ts). */
const MAX_LENGTH: Record<string, number> = {
  node: 63,
  boot: 45,
  callId: 255,
  toTag: 128,
  fromTag: 128,
  presentity: 255,
  event: 64,
  contact: 255,
};
const REFUSED = [
  ...Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)),
  "\u007f",
  "\ufffe",
  "\uffff",
  "\ud800",
  "\udfff",
];

/**
 * About `perClass` inputs of each class. `maxBodyBytes` is what the ingest accepts: a few
 * oversized bodies go past it on purpose.
 */
export function badInputCorpus(opts: {
  node: string;
  perClass?: number;
  seed?: number;
  maxBodyBytes: number;
}) {
  const r = seededRandom(opts.seed ?? 18);
  const per = opts.perClass ?? 100;
  const out: BadInput[] = [];
  let peer = 0;
  const neighbourEvent = () => {
    peer += 1;
    const ip = `198.51.100.${1 + (peer % 250)}`;
    const port = 10_000 + peer;
    const event = { ...(validEvents(opts.node)[0] as Json), peer: { ip, port } };
    return { event, neighbour: { ip, port } };
  };
  /** The bad event with a valid neighbour, in a random order. */
  const envelopeWith = (cls: BadInputClass, bad: unknown) => {
    const { event, neighbour } = neighbourEvent();
    const events = r.int(2) === 0 ? [bad, event] : [event, bad];
    out.push({ cls, body: Buffer.from(JSON.stringify({ v: 1, events })), neighbour });
  };
  const text = (cls: BadInputClass, body: string) => out.push({ cls, body: Buffer.from(body, "utf8") });
  const base = () => structuredClone(r.pick(validEvents(opts.node)));

  // Malformed JSON: cuts of a valid envelope that no longer parse, and classics.
  const valid = JSON.stringify({ v: 1, events: validEvents(opts.node) });
  for (const s of [
    "",
    " ",
    "{",
    "}",
    "nul",
    "{'v':1}",
    '{"v":1,}',
    "NaN",
    "[1,]",
    '{"v":1}}',
    "\ufeff{}",
    '{"v":1,"events":[{]}',
  ])
    text("malformed-json", s);
  while (out.filter((i) => i.cls === "malformed-json").length < per) {
    const cut = valid.slice(0, 1 + r.int(valid.length - 2));
    const garbage = r.pick(["", "x", "]", "}}", ",", '"']);
    const body = cut + garbage;
    try {
      JSON.parse(body);
    } catch {
      text("malformed-json", body);
    }
  }
  // Wrong types and missing fields, per leaf of each event type.
  for (let i = 0; i < per; i++) {
    const e = base();
    envelopeWith(
      "wrong-types",
      withPath(e, r.pick(leafPaths(e)), (old) => {
        let v = r.pick(WRONG_TYPES);
        while (typeof v === typeof old && v !== null) v = r.pick(WRONG_TYPES);
        return v;
      }),
    );
  }
  for (let i = 0; i < per; i++) {
    const e = base();
    // `type` picks the schema and `transport` is optional: every other field is required.
    const path = r.pick(
      leafPaths(e).filter((p) => !(p.length === 1 && (p[0] === "type" || p[0] === "transport"))),
    );
    envelopeWith(
      "missing-fields",
      withPath(e, path, () => REMOVE),
    );
  }
  // Oversized strings (the contract's limits follow Kamailio's column widths), and bodies.
  for (let i = 0; i < per - 4; i++) {
    const e = structuredClone(validEvents(opts.node)[1] as Json);
    const path = r.pick(STRING_FIELDS);
    const length = (MAX_LENGTH[path.at(-1) as string] as number) + r.pick([1, 2, 100, 1_000, 10_000]);
    envelopeWith(
      "oversized-strings",
      withPath(e, path, () => "a".repeat(length)),
    );
  }
  const filler = (bytes: number) => JSON.stringify({ v: 1, events: [], pad: "p".repeat(bytes) });
  for (const bytes of [61_440, opts.maxBodyBytes - 100, opts.maxBodyBytes + 1, opts.maxBodyBytes * 2])
    text("oversized-strings", filler(bytes));
  // Deep nesting: deep enough to overflow a recursive JSON.stringify, small enough for the contract.
  for (let i = 0; i < per; i++) {
    const depth = r.pick([64, 1_000, 5_000, 9_000, 12_000]);
    const nested = "[".repeat(depth) + "]".repeat(depth);
    const where = r.int(4);
    if (where === 0) text("deep-nesting", nested);
    else if (where === 1) text("deep-nesting", `{"v":1,"events":[${nested}]}`);
    else {
      const e = JSON.stringify(base()).replace(/"at":\d+/, `"at":${nested}`);
      const { event, neighbour } = neighbourEvent();
      out.push({
        cls: "deep-nesting",
        body: Buffer.from(`{"v":1,"events":[${e},${JSON.stringify(event)}]}`),
        neighbour,
      });
    }
  }
  // Bad IPs and ports.
  for (let i = 0; i < per; i++) {
    const e = structuredClone(validEvents(opts.node)[0] as Json);
    const bad =
      r.int(2) === 0
        ? withPath(e, ["peer", "ip"], () => r.pick(BAD_IPS))
        : withPath(e, ["peer", "port"], () => r.pick(BAD_PORTS));
    envelopeWith("bad-ip-port", bad);
  }
  // Wrong versions: the whole envelope is refused, so no neighbour survives.
  for (let i = 0; i < per; i++) {
    const v = r.pick([...VERSIONS, "(missing)"]);
    const envelope: Json = { events: [neighbourEvent().event] };
    if (v !== "(missing)") envelope.v = v;
    text(
      "wrong-version",
      JSON.stringify(r.int(2) === 0 ? envelope : { ...envelope, v: v === "(missing)" ? 2 : v }),
    );
  }
  // __proto__, constructor and prototype keys, written as JSON text (JSON.parse makes them own keys).
  for (let i = 0; i < per; i++) {
    const key = r.pick(["__proto__", "constructor", "prototype"]);
    const payload = r.pick(['{"polluted":1}', '{"prototype":{"polluted":1}}', "null", '"x"']);
    const { event, neighbour } = neighbourEvent();
    const bad = JSON.stringify(base()).replace(/^\{/, `{"${key}":${payload},`);
    const where = r.int(3);
    if (where === 0) text("proto-keys", `{"${key}":${payload},"v":1,"events":[${JSON.stringify(event)}]}`);
    else if (where === 1) {
      const inner = JSON.stringify(event).replace('"peer":{', `"peer":{"${key}":${payload},`);
      text("proto-keys", `{"v":1,"events":[${inner}]}`);
    } else
      out.push({
        cls: "proto-keys",
        body: Buffer.from(`{"v":1,"events":[${bad},${JSON.stringify(event)}]}`),
        neighbour,
      });
  }
  // Refused code points, JSON-escaped (SQS takes them; the contract refuses them) or raw (SQS refuses).
  for (let i = 0; i < per; i++) {
    const e = structuredClone(validEvents(opts.node)[1] as Json);
    const ch = r.pick(REFUSED);
    const bad = withPath(e, r.pick(STRING_FIELDS), (old) => `${String(old)}${ch}`);
    if (r.int(2) === 0) envelopeWith("refused-code-points", bad);
    else {
      // Raw: the character itself in the body (JSON allows raw DEL and U+FFFE/U+FFFF, not raw C0).
      const { event, neighbour } = neighbourEvent();
      const escaped = JSON.stringify(bad);
      const raw = escaped.replace(
        /\\u00([0-9a-f]{2})|\\[bfnrt]|\\ud[89ab][0-9a-f]{2}|\\ud[c-f][0-9a-f]{2}/,
        (m) => (m.startsWith("\\u00") ? String.fromCharCode(Number.parseInt(m.slice(4), 16)) : m),
      );
      const rawBody = `{"v":1,"events":[${raw},${JSON.stringify(event)}]}`;
      out.push({ cls: "refused-code-points", body: Buffer.from(rawBody, "utf8"), neighbour });
    }
  }
  // Bytes that are not UTF-8 at all (lone continuation bytes, CESU surrogates, overlongs).
  const BAD_BYTES = [
    [0x80],
    [0xc0, 0xaf],
    [0xed, 0xa0, 0x80],
    [0xff],
    [0xf8, 0x88, 0x80, 0x80, 0x80],
    [0xe2, 0x82],
  ];
  for (let i = 0; i < per / 2; i++) {
    const { event, neighbour } = neighbourEvent();
    const json = JSON.stringify({ v: 1, events: [{ ...event, node: `${opts.node}X` }, event] });
    const cut = json.indexOf(`${opts.node}X`) + opts.node.length;
    out.push({
      cls: "invalid-utf8",
      body: Buffer.concat([
        Buffer.from(json.slice(0, cut)),
        Buffer.from(r.pick(BAD_BYTES)),
        Buffer.from(json.slice(cut + 1)),
      ]),
      neighbour,
    });
  }
  // Duplicate keys: JSON.parse keeps the last one, and so does the contract.
  for (let i = 0; i < per / 2; i++) {
    const { event } = neighbourEvent();
    const ev = JSON.stringify(event);
    const forms = [
      `{"v":2,"v":1,"events":[${ev}]}`,
      `{"v":1,"v":2,"events":[${ev}]}`,
      `{"v":1,"events":[],"events":[${ev}]}`,
      `{"v":1,"events":[${ev}],"events":[]}`,
      `{"v":1,"events":[${ev.replace('"type":"connection.closed"', '"type":"bogus","type":"connection.closed"')}]}`,
      `{"v":1,"events":[${ev.replace(/"port":(\d+)/, '"port":$1,"port":0')}]}`,
    ];
    text("duplicate-keys", r.pick(forms));
  }
  return out;
}

/** An independent oracle: can the worker read this envelope as a whole (so its neighbour counts)? */
export function envelopeReadable(text: string): boolean {
  try {
    const doc = JSON.parse(text) as Record<string, unknown>;
    return (
      Buffer.byteLength(text) <= ENVELOPE_MAX_BYTES &&
      doc?.v === 1 &&
      Array.isArray(doc.events) &&
      doc.events.length >= 1 &&
      doc.events.length <= ENVELOPE_MAX_EVENTS &&
      Object.keys(doc).every((k) => k === "v" || k === "events")
    );
  } catch {
    return false;
  }
}
