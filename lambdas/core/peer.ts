/**
 * Peer matching: which `active_watchers.contact` values name a given connection peer (ip:port).
 * fix_nated_contact():  sip:user@<ip>:<port>;transport=ws   (IPv6 host as [..]), maybe ending in `>`
 * set_contact_alias():  ...;alias=<ip>~<port>~<5|6>          (5 = WS, 6 = WSS)
 * Exact on both address and port: port 5491 never matches 54914. Pure, no I/O.
 */
import type { ContactStyle } from "./fleet.ts";

export interface Peer {
  ip: string;
  port: number;
}

/** Expands an IPv6 address (any case, `::`, embedded IPv4) to 8 lowercase groups; undefined if invalid. */
export function expandIpv6(input: string): string[] | undefined {
  let text = input.toLowerCase();
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
  if (!/^[0-9a-f:.]+$/.test(text)) return undefined;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = text.match(/^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  if (v4) {
    const octets = v4.slice(2, 6).map(Number);
    if (octets.some((o) => o > 255)) return undefined;
    const [a = 0, b = 0, c = 0, d = 0] = octets;
    text = `${v4[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  if (text.includes(".")) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  let groups: string[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    groups = [...head, ...Array<string>(missing).fill("0"), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => g.padStart(4, "0"));
}

/** RFC 5952 text: lowercase, no leading zeros, longest run (≥ 2) of zero groups as `::`. */
export function compressIpv6(groups: string[]): string {
  const short = groups.map((g) => g.replace(/^0+(?=.)/, ""));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (short[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && short[j] === "0") j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) return short.join(":");
  return `${short.slice(0, bestStart).join(":")}::${short.slice(bestStart + bestLen).join(":")}`;
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Canonical text of an address (IPv4 as is, IPv6 per RFC 5952); undefined if not an address. */
export function canonicalIp(ip: string): string | undefined {
  if (IPV4_RE.test(ip)) return ip;
  const groups = expandIpv6(ip);
  return groups ? compressIpv6(groups) : undefined;
}

export function isIpv6(ip: string): boolean {
  return ip.includes(":");
}

/** Stable key of a peer: `1.2.3.4:5060`, `[2001:db8::1]:5060`. */
export function peerKey(peer: Peer): string {
  const ip = canonicalIp(peer.ip) ?? peer.ip.toLowerCase();
  return isIpv6(ip) ? `[${ip}]:${peer.port}` : `${ip}:${peer.port}`;
}

/** Characters that may follow the port in a nated contact: URI params, headers, `>` or the end. */
const NATED_PORT_END = new Set([";", ">", "?", undefined]);

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** The peer written by fix_nated_contact(): the host:port after the userinfo (or scheme). */
export function natedPeerOf(contact: string): Peer | undefined {
  const scheme = contact.match(/^\s*<?\s*sips?:/i);
  if (!scheme) return undefined;
  let rest = contact.slice(scheme[0].length);
  // userinfo ends at the last '@' before the host part; a user part may hold '@'-free specials only.
  const at = rest.search(/@(?=[^@]*$)/);
  if (at >= 0) rest = rest.slice(at + 1);
  let host: string;
  let afterHost: string;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) return undefined;
    host = rest.slice(1, close);
    afterHost = rest.slice(close + 1);
  } else {
    const m = rest.match(/^([^:;>?]+)/);
    if (!m?.[1]) return undefined;
    host = m[1];
    afterHost = rest.slice(host.length);
  }
  const portMatch = afterHost.match(/^:(\d+)(.?)/);
  if (!portMatch?.[1]) return undefined;
  if (!NATED_PORT_END.has(portMatch[2] || undefined)) return undefined;
  const port = parsePort(portMatch[1]);
  const ip = canonicalIp(host);
  return port && ip ? { ip, port } : undefined;
}

/** The peer written by set_contact_alias(): `;alias=<ip>~<port>~<proto>`. */
export function aliasPeerOf(contact: string): Peer | undefined {
  const m = contact.match(/;alias=(\[[^\]]+\]|[^~;>]+)~(\d+)~(\d+)(?=$|[;>?])/i);
  if (!m?.[1] || !m[2]) return undefined;
  const port = parsePort(m[2]);
  const ip = canonicalIp(m[1]);
  return port && ip ? { ip, port } : undefined;
}

/** The peers a contact may name under a style (auto: alias first, then nated). */
export function peersOfContact(contact: string, style: ContactStyle): Peer[] {
  const out: Peer[] = [];
  if (style !== "nated") {
    const alias = aliasPeerOf(contact);
    if (alias) out.push(alias);
  }
  if (style !== "alias") {
    const nated = natedPeerOf(contact);
    if (nated) out.push(nated);
  }
  return out;
}

const WS_TRANSPORT = /;transport=wss?(?=$|[;>?])/i;
const WS_ALIAS = /;alias=[^;>?]*~[56](?=$|[;>?])/;

/**
 * The WebSocket peer a contact names, or undefined when the row is not a WS watcher of this
 * style (such rows are never judged by connection: only their expiry can make them stale).
 * nated: `sip:u@<ip>:<port>;transport=ws|wss`; alias: `;alias=<ip>~<port>~5|6` (5 = WS, 6 = WSS).
 */
export function contactPeer(contact: string, style: ContactStyle): Peer | undefined {
  if (style !== "nated" && WS_ALIAS.test(contact)) {
    const alias = aliasPeerOf(contact);
    if (alias) return alias;
  }
  if (style === "alias" || !WS_TRANSPORT.test(contact)) return undefined;
  return natedPeerOf(contact);
}

/** True when the contact names exactly this peer (address compared canonically, port exactly). */
export function contactMatchesPeer(contact: string, peer: Peer, style: ContactStyle): boolean {
  const wanted = peerKey(peer);
  return peersOfContact(contact, style).some((p) => peerKey(p) === wanted);
}

/**
 * LIKE patterns (unescaped pieces joined with `%`; see sql.ts likePattern) that select every contact
 * naming the peer, each ending in an explicit terminator so that no port prefix matches. They are
 * compared against LOWER(contact); IPv6 is tried in its compressed and expanded forms.
 * The TS matcher re-checks every selected row, so the SQL may only be wider, never narrower.
 */
export function contactLikeShapes(peer: Peer, style: ContactStyle): { parts: string[] }[] {
  const canonical = canonicalIp(peer.ip) ?? peer.ip.toLowerCase();
  const v6 = isIpv6(canonical);
  const hosts = v6 ? ipv6TextForms(canonical) : [canonical];
  const shapes: { parts: string[] }[] = [];
  const port = String(peer.port);
  if (style !== "alias") {
    // IPv6 hosts are bracketed (the bracket bounds them); an IPv4 host follows `@` or the scheme's `:`.
    const hostTexts = v6 ? hosts.map((h) => `[${h}]`) : [`@${canonical}`, `:${canonical}`];
    for (const hostText of hostTexts) {
      // `%<host>:<port>;%`, `…>%`, `…?%` and `%<host>:<port>` (end of value): never a longer port.
      for (const end of [";", ">", "?"]) shapes.push({ parts: ["", `${hostText}:${port}${end}`, ""] });
      shapes.push({ parts: ["", `${hostText}:${port}`] });
    }
  }
  if (style !== "nated") {
    for (const host of hosts) {
      for (const form of v6 ? [`[${host}]`, host] : [host])
        shapes.push({ parts: ["", `;alias=${form}~${port}~`, ""] });
    }
  }
  return shapes;
}

/** Lowercase text forms an IPv6 address may take in a contact: compressed, expanded, unpadded, mapped IPv4. */
export function ipv6TextForms(ip: string): string[] {
  const groups = expandIpv6(ip);
  if (!groups) return [ip.toLowerCase()];
  const forms = new Set([
    compressIpv6(groups),
    groups.join(":"),
    groups.map((g) => g.replace(/^0+(?=.)/, "")).join(":"),
  ]);
  if (groups.slice(0, 5).every((g) => g === "0000") && groups[5] === "ffff") {
    const [hi = 0, lo = 0] = [Number.parseInt(groups[6] ?? "0", 16), Number.parseInt(groups[7] ?? "0", 16)];
    forms.add(`::ffff:${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`);
  }
  return [...forms];
}
