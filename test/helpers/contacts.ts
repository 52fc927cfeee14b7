// Contacts as Kamailio stores them in active_watchers.contact, for property tests: both styles
// (fix_nated_contact host:port, set_contact_alias ;alias=ip~port~5|6), IPv4 and IPv6 in every text
// form the store asks for (any case, brackets or not in an alias, port zeros), and contacts that
// name no WebSocket peer (UDP/TCP, hostnames, no port, wrong alias protocol).
import fc from "fast-check";
import { ipv6TextForms } from "#core/peer.ts";

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join("."));
const v6 = fc
  .tuple(
    fc.constantFrom("2001:db8::", "fe80::", "::", "2001:db8:0:0:1::", "::ffff:"),
    fc.integer({ min: 1, max: 0xffff }),
  )
  .map(([prefix, last]) => `${prefix}${last.toString(16)}`)
  .chain((ip) => fc.constantFrom(...ipv6TextForms(ip)))
  .chain((ip) => fc.constantFrom(ip, ip.toUpperCase()));
const port = fc.oneof(
  fc.integer({ min: 1, max: 65535 }).map(String),
  fc.integer({ min: 1, max: 9999 }).map((p) => `0${p}`),
  fc.constantFrom("0", "65536", "99999"),
);
const user = fc.constantFrom("u", "alice", "a@b", "x%_'!~", "");
const transport = fc.constantFrom(
  ";transport=ws",
  ";transport=wss",
  ";transport=WS",
  ";transport=udp",
  ";transport=tcp",
  ";transport=wsx",
  "",
);
const tail = fc.constantFrom("", ";ob", ">", ";expires=60", "?h=1", ";lr>");
const hostname = fc.constantFrom("abc.invalid", "df7jal23ls0d.invalid", "example.com");

const nated = fc
  .record({ ip: fc.oneof(v4, v6), port, user, transport, tail, angle: fc.boolean(), sips: fc.boolean() })
  .map((c) => {
    const host = c.ip.includes(":") ? `[${c.ip}]` : c.ip;
    const userinfo = c.user ? `${c.user}@` : "";
    const body = `${c.sips ? "sips" : "sip"}:${userinfo}${host}:${c.port}${c.transport}`;
    return c.angle ? `<${body}>${c.tail === ">" ? "" : c.tail}` : `${body}${c.tail}`;
  });
const alias = fc
  .record({
    ip: fc.oneof(v4, v6),
    port,
    proto: fc.constantFrom("5", "6", "1", "2"),
    host: fc.oneof(
      hostname,
      v4.map((ip) => `${ip}:5060`),
    ),
    brackets: fc.boolean(),
    transport,
    tail,
  })
  .map((c) => {
    const ip = c.ip.includes(":") && c.brackets ? `[${c.ip}]` : c.ip;
    return `sip:u@${c.host}${c.transport};alias=${ip}~${c.port}~${c.proto}${c.tail}`;
  });
const noPeer = fc.oneof(
  fc.record({ host: hostname, transport }).map((c) => `sip:u@${c.host}${c.transport}`),
  v4.map((ip) => `sip:u@${ip};transport=ws`),
  fc.constantFrom("", "sip:", "tel:+1555", "sip:u@[::1;transport=ws", "sip:u@1.2.3.4:5060;ALIAS=1.2.3.4~5~5"),
);

/** One contact of any of the shapes above. */
export const contactArb = fc.oneof(nated, alias, noPeer);
