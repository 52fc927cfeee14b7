// The project's own SIP-over-WebSocket test client (RFC 7118), no SIP library: SUBSCRIBE to any
// event package (presence, dialog), re-SUBSCRIBE and un-SUBSCRIBE in dialog, PUBLISH, answer
// NOTIFYs with a chosen code (or not at all), OPTIONS as a barrier, and die in each way a browser
// can. Call-IDs and tags are settable so tests can send hostile but legal values.
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import WebSocket from "ws";
import { waitForItem } from "./wait.ts";

export type DieMode = "close-frame" | "terminate" | "fin" | "rst" | "silent";

export interface Subscription {
  callId: string;
  fromTag: string;
  /** Kamailio's tag (the dialog's to_tag), from the 2xx To header; "" until answered. */
  toTag: string;
  event: string;
  presentity: string;
  /** Final status of the last SUBSCRIBE in this dialog. */
  status: number;
  /** Where in-dialog requests go (the 2xx Contact). */
  remoteTarget: string;
  cseq: number;
}

export interface Notify {
  callId: string;
  event: string;
  subscriptionState: string;
  body: string;
  cseq: number;
  /** The notifier's tag (From tag of the NOTIFY) and ours (To tag). */
  fromTag: string;
  toTag: string;
  /** When the message arrived on the socket: wall-clock ms with sub-ms precision. */
  receivedAt: number;
  /** The code we answered with, or "ignore". */
  answered: number | "ignore";
}

export interface SipMessage {
  startLine: string;
  /** Header names in lower case, full form (compact forms expanded), in order. */
  headers: [string, string][];
  body: string;
  status?: number;
  method?: string;
}

const COMPACT: Record<string, string> = {
  i: "call-id",
  f: "from",
  t: "to",
  v: "via",
  m: "contact",
  l: "content-length",
  c: "content-type",
  o: "event",
  u: "allow-events",
  k: "supported",
  s: "subject",
  e: "content-encoding",
};

export function parseSipMessage(text: string): SipMessage {
  const split = text.indexOf("\r\n\r\n");
  const head = split >= 0 ? text.slice(0, split) : text;
  const body = split >= 0 ? text.slice(split + 4) : "";
  const lines = head.split("\r\n");
  const startLine = lines.shift() ?? "";
  const headers: [string, string][] = [];
  for (const line of lines) {
    if (/^[ \t]/.test(line) && headers.length > 0) {
      const last = headers[headers.length - 1] as [string, string];
      last[1] += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const raw = line.slice(0, colon).trim().toLowerCase();
    headers.push([COMPACT[raw] ?? raw, line.slice(colon + 1).trim()]);
  }
  const msg: SipMessage = { startLine, headers, body };
  const statusMatch = /^SIP\/2\.0 (\d{3})/.exec(startLine);
  if (statusMatch) msg.status = Number(statusMatch[1]);
  else msg.method = startLine.split(" ")[0];
  return msg;
}

export function header(msg: SipMessage, name: string): string | undefined {
  const lower = name.toLowerCase();
  return msg.headers.find(([n]) => n === lower)?.[1];
}

function headersNamed(msg: SipMessage, name: string): string[] {
  return msg.headers.filter(([n]) => n === name).map(([, v]) => v);
}

/** The tag parameter of a From/To value (tags may hold ' % ! ~ _ and other token characters). */
export function tagOf(nameAddr: string): string {
  const afterUri = nameAddr.includes(">") ? nameAddr.slice(nameAddr.lastIndexOf(">")) : nameAddr;
  const m = /;\s*tag=([^;\s]+)/i.exec(afterUri);
  return m?.[1] ?? "";
}

function uriOf(nameAddr: string): string {
  const m = /<([^>]*)>/.exec(nameAddr);
  return (m?.[1] ?? nameAddr.split(";")[0] ?? "").trim();
}

const token = (bytes = 8) => randomBytes(bytes).toString("hex");

function defaultAccept(event: string): string {
  if (event === "presence") return "application/pidf+xml";
  if (event === "dialog") return "application/dialog-info+xml";
  return "*/*";
}

export function pidfBody(presentity: string, basic: "open" | "closed" = "open", note = "kwc test"): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${presentity}">
  <tuple id="t${token(4)}"><status><basic>${basic}</basic></status><note>${note}</note></tuple>
</presence>`;
}

export function dialogInfoBody(
  presentity: string,
  state: "trying" | "early" | "confirmed" | "terminated" = "confirmed",
  version = 0,
): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="${version}" state="full" entity="${presentity}">
  <dialog id="d${token(4)}" direction="initiator"><state>${state}</state></dialog>
</dialog-info>`;
}

interface Pending {
  resolve: (msg: SipMessage) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface SubscribeOptions {
  event?: "presence" | "dialog" | string;
  expires?: number;
  /** Hostile-but-legal values are welcome: the client sends them verbatim. */
  callId?: string;
  fromTag?: string;
  accept?: string;
}

export class SipWsClient {
  readonly user: string;
  readonly domain: string;
  readonly localAddress: string;
  readonly localPort: number;
  readonly notifies: Notify[] = [];
  /** Every SIP message received, for debugging and assertions. */
  readonly received: SipMessage[] = [];
  private readonly contactUser = token(4);
  private readonly viaHost = `${token(6)}.invalid`;
  private readonly pending = new Map<string, Pending>();
  private notifyAnswer: number | "ignore" = 200;
  /** How the WebSocket ended (close code and reason as `ws` reports them), once it has. */
  closedWith?: { code: number; reason: string; at: number };
  private readonly notifyListeners = new Set<(n: Notify) => void>();
  private dead = false;
  /** "ws" or "wss", from the URL: written in Via (the Contact says transport=ws either way, as JsSIP and SIP.js do). */
  readonly transport: "ws" | "wss";

  private constructor(
    private readonly ws: WebSocket,
    opts: { user: string; domain: string; transport: "ws" | "wss" },
  ) {
    this.user = opts.user;
    this.domain = opts.domain;
    this.transport = opts.transport;
    const socket = this.socket;
    this.localAddress = socket.localAddress ?? "";
    this.localPort = socket.localPort ?? 0;
    ws.on("message", (data, isBinary) => {
      if (!isBinary) this.onMessage(data.toString());
    });
    ws.on("close", (code, reason) => {
      this.closedWith = { code, reason: reason.toString(), at: Date.now() };
      this.failPending("WebSocket closed");
    });
    ws.on("error", () => this.failPending("WebSocket error"));
  }

  /**
   * `ws://` or `wss://` (IPv6 hosts in brackets). For wss, `ca` is the PEM the server's certificate
   * must chain to (a test node's `tlsCa`); the certificate is always verified.
   */
  static connect(
    wsUrl: string,
    opts: {
      user: string;
      domain?: string;
      localAddress?: string;
      localPort?: number;
      timeoutMs?: number;
      ca?: string;
    },
  ): Promise<SipWsClient> {
    return new Promise((resolve, reject) => {
      const wsOpts: WebSocket.ClientOptions & { localPort?: number } = {
        handshakeTimeout: opts.timeoutMs ?? 5000,
        perMessageDeflate: false,
      };
      if (opts.localAddress) wsOpts.localAddress = opts.localAddress;
      if (opts.localPort) wsOpts.localPort = opts.localPort;
      const transport = wsUrl.startsWith("wss:") ? "wss" : "ws";
      if (transport === "wss") {
        wsOpts.rejectUnauthorized = true;
        if (opts.ca) wsOpts.ca = opts.ca;
      }
      const ws = new WebSocket(wsUrl, "sip", wsOpts);
      ws.once("open", () =>
        resolve(new SipWsClient(ws, { user: opts.user, domain: opts.domain ?? "example.com", transport })),
      );
      ws.once("error", reject);
    });
  }

  /** "ip:port" of this client as Kamailio sees it ($si:$sp); an IPv6 address in brackets ("[::1]:port"). */
  get peer(): string {
    const host = this.localAddress.includes(":") ? `[${this.localAddress}]` : this.localAddress;
    return `${host}:${this.localPort}`;
  }

  get aor(): string {
    return `sip:${this.user}@${this.domain}`;
  }

  get isOpen(): boolean {
    return !this.dead && this.ws.readyState === WebSocket.OPEN;
  }

  private get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket;
  }

  /** Answer every following NOTIFY with this code, or not at all ("ignore": tm times it out). */
  answerNotifiesWith(code: number | "ignore"): void {
    this.notifyAnswer = code;
  }

  async subscribe(presentity: string, opts: SubscribeOptions = {}): Promise<Subscription> {
    const event = opts.event ?? "presence";
    const sub: Subscription = {
      callId: opts.callId ?? token(10),
      fromTag: opts.fromTag ?? token(5),
      toTag: "",
      event,
      presentity,
      status: 0,
      remoteTarget: presentity,
      cseq: 0,
    };
    await this.sendSubscribe(sub, opts.expires ?? 600, opts.accept ?? defaultAccept(event), presentity);
    return sub;
  }

  /** In-dialog refresh (same Call-ID and tags, next CSeq); updates sub.status. */
  async resubscribe(sub: Subscription, expires = 600): Promise<void> {
    await this.sendSubscribe(sub, expires, defaultAccept(sub.event), sub.remoteTarget);
  }

  async unsubscribe(sub: Subscription): Promise<void> {
    await this.resubscribe(sub, 0);
  }

  private async sendSubscribe(sub: Subscription, expires: number, accept: string, ruri: string) {
    sub.cseq += 1;
    const to = sub.toTag ? `<${sub.presentity}>;tag=${sub.toTag}` : `<${sub.presentity}>`;
    const reply = await this.request("SUBSCRIBE", ruri, {
      from: `<${this.aor}>;tag=${sub.fromTag}`,
      to,
      callId: sub.callId,
      cseq: sub.cseq,
      extra: [`Event: ${sub.event}`, `Expires: ${expires}`, `Accept: ${accept}`, this.contactHeader()],
    });
    sub.status = reply.status ?? 0;
    if (sub.status >= 200 && sub.status < 300) {
      const toHeader = header(reply, "to");
      if (toHeader && !sub.toTag) sub.toTag = tagOf(toHeader);
      const contact = header(reply, "contact");
      if (contact) sub.remoteTarget = uriOf(contact);
    }
  }

  /** PUBLISH (initial, no SIP-If-Match); resolves with the final status. */
  async publish(
    presentity: string,
    opts: { event?: string; body?: string; expires?: number } = {},
  ): Promise<number> {
    const event = opts.event ?? "presence";
    const body = opts.body ?? (event === "dialog" ? dialogInfoBody(presentity) : pidfBody(presentity));
    return (await this.publishEtag(presentity, { event, body, expires: opts.expires ?? 600 })).status;
  }

  /**
   * PUBLISH with its SIP-ETag: initial (no `ifMatch`), a refresh of that publication (`ifMatch`, no
   * body: RFC 3903 4.3), or its removal (`ifMatch`, `expires: 0`). Resolves with the status and
   * the entity tag Kamailio answered.
   */
  async publishEtag(
    presentity: string,
    opts: { event?: string; body?: string; expires: number; ifMatch?: string },
  ): Promise<{ status: number; etag: string | undefined }> {
    const event = opts.event ?? "presence";
    const type = event === "dialog" ? "application/dialog-info+xml" : "application/pidf+xml";
    const reply = await this.request("PUBLISH", presentity, {
      from: `<${presentity}>;tag=${token(5)}`,
      to: `<${presentity}>`,
      callId: token(10),
      cseq: 1,
      extra: [
        `Event: ${event}`,
        `Expires: ${opts.expires}`,
        ...(opts.ifMatch ? [`SIP-If-Match: ${opts.ifMatch}`] : []),
        ...(opts.body === undefined ? [] : [`Content-Type: ${type}`]),
      ],
      ...(opts.body === undefined ? {} : { body: opts.body }),
    });
    return { status: reply.status ?? 0, etag: header(reply, "sip-etag") };
  }

  /** OPTIONS round trip over this WebSocket: everything Kamailio wrote before its reply has arrived. */
  async ping(): Promise<void> {
    const reply = await this.request("OPTIONS", `sip:${this.domain}`, {
      from: `<${this.aor}>;tag=${token(5)}`,
      to: `<sip:${this.domain}>`,
      callId: token(10),
      cseq: 1,
      extra: [],
    });
    if (reply.status !== 200) throw new Error(`OPTIONS answered ${reply.status}`);
  }

  /**
   * An OPTIONS every `intervalMs` while this client is alive: Kamailio pings only idle
   * connections, so a busy live peer never meets its keepalive race (docs/browsers.md). For tests
   * that shorten the keepalive; stops by itself at die() or close().
   */
  keepBusy(intervalMs = 500): void {
    const timer = setInterval(() => {
      if (this.dead) clearInterval(timer);
      else this.ping().catch(() => {});
    }, intervalMs);
    timer.unref();
  }

  waitForNotify(pred: (n: Notify) => boolean = () => true, timeoutMs = 10_000): Promise<Notify> {
    return waitForItem(this.notifies, pred, timeoutMs, `a NOTIFY to ${this.user}`);
  }

  /** Calls `listener` on each NOTIFY as it arrives (no polling); returns the unsubscribe. */
  onNotify(listener: (n: Notify) => void): () => void {
    this.notifyListeners.add(listener);
    return () => this.notifyListeners.delete(listener);
  }

  /** NOTIFYs received for one subscription. */
  notifiesFor(sub: Subscription): Notify[] {
    return this.notifies.filter((n) => n.callId === sub.callId);
  }

  /**
   * Go away the way a browser can:
   * close-frame: WebSocket close handshake; terminate: ws.terminate() (page kill);
   * fin: TCP FIN without a close frame; rst: TCP RST; silent: stop reading and answering
   * (no FIN, no RST, no Pong: laptop sleep / network loss; only Kamailio's keepalive notices).
   */
  async die(how: DieMode): Promise<void> {
    this.dead = true;
    const socket = this.socket;
    switch (how) {
      case "close-frame": {
        const closed = new Promise<void>((resolve) => this.ws.once("close", () => resolve()));
        this.ws.close(1000, "bye");
        await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
        if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
        return;
      }
      case "terminate":
        this.ws.terminate();
        return;
      case "fin":
        socket.end();
        return;
      case "rst":
        // Node can reset only a plain TCP handle, not the one under a TLS socket.
        if (this.transport === "wss")
          throw new Error('die("rst") is not available over wss: use "terminate" or "fin"');
        socket.resetAndDestroy();
        return;
      case "silent":
        // stop reading: ws never sees Kamailio's Ping, so no Pong goes out; the kernel keeps
        // ACKing, so no FIN/RST either
        socket.pause();
        this.ws.pause();
        return;
    }
  }

  /** Releases the local socket (after die("silent") too). Safe to call twice. */
  close(): void {
    this.dead = true;
    this.failPending("client closed");
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }

  private contactHeader(): string {
    // Browsers' SIP stacks write transport=ws over WSS too; 5.6.3 cannot route a NOTIFY to a
    // `transport=wss` contact ("no corresponding socket found ... udp:").
    return `Contact: <sip:${this.contactUser}@${this.viaHost};transport=ws>`;
  }

  private request(
    method: string,
    ruri: string,
    h: { from: string; to: string; callId: string; cseq: number; extra: string[]; body?: string },
  ): Promise<SipMessage> {
    const branch = `z9hG4bK${token(8)}`;
    const body = h.body ?? "";
    const lines = [
      `${method} ${ruri} SIP/2.0`,
      `Via: SIP/2.0/${this.transport.toUpperCase()} ${this.viaHost};branch=${branch}`,
      "Max-Forwards: 70",
      `From: ${h.from}`,
      `To: ${h.to}`,
      `Call-ID: ${h.callId}`,
      `CSeq: ${h.cseq} ${method}`,
      ...h.extra,
      "User-Agent: kwc-test-client",
      `Content-Length: ${Buffer.byteLength(body)}`,
      "",
      body,
    ];
    return new Promise((resolve, reject) => {
      if (!this.isOpen) {
        reject(new Error(`${method}: WebSocket is not open`));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(branch);
        reject(new Error(`${method} ${ruri}: no final reply within 8 s`));
      }, 8000);
      this.pending.set(branch, { resolve, reject, timer });
      this.ws.send(lines.join("\r\n"));
    });
  }

  private onMessage(text: string): void {
    const msg = parseSipMessage(text);
    this.received.push(msg);
    if (msg.status !== undefined) {
      if (msg.status < 200) return;
      const branch = /branch=([^;\s,]+)/.exec(header(msg, "via") ?? "")?.[1];
      const pending = branch ? this.pending.get(branch) : undefined;
      if (branch && pending) {
        this.pending.delete(branch);
        clearTimeout(pending.timer);
        pending.resolve(msg);
      }
      return;
    }
    if (msg.method === "NOTIFY") {
      const answer = this.notifyAnswer;
      const notify: Notify = {
        callId: header(msg, "call-id") ?? "",
        event: (header(msg, "event") ?? "").split(";")[0]?.trim() ?? "",
        subscriptionState: header(msg, "subscription-state") ?? "",
        body: msg.body,
        cseq: Number.parseInt(header(msg, "cseq") ?? "0", 10),
        fromTag: tagOf(header(msg, "from") ?? ""),
        toTag: tagOf(header(msg, "to") ?? ""),
        receivedAt: performance.timeOrigin + performance.now(),
        answered: answer,
      };
      this.notifies.push(notify);
      for (const listener of this.notifyListeners) listener(notify);
      if (answer !== "ignore") this.reply(msg, answer);
      return;
    }
    if (msg.method !== "ACK") this.reply(msg, msg.method === "OPTIONS" ? 200 : 405);
  }

  private reply(req: SipMessage, code: number): void {
    if (!this.isOpen) return;
    const reason: Record<number, string> = {
      200: "OK",
      405: "Method Not Allowed",
      481: "Call/Transaction Does Not Exist",
      500: "Server Internal Error",
    };
    const lines = [
      `SIP/2.0 ${code} ${reason[code] ?? "Reply"}`,
      ...headersNamed(req, "via").map((v) => `Via: ${v}`),
      `From: ${header(req, "from") ?? ""}`,
      `To: ${header(req, "to") ?? ""}`,
      `Call-ID: ${header(req, "call-id") ?? ""}`,
      `CSeq: ${header(req, "cseq") ?? ""}`,
      "Content-Length: 0",
      "",
      "",
    ];
    this.ws.send(lines.join("\r\n"));
  }

  private failPending(why: string): void {
    for (const [branch, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(why));
      this.pending.delete(branch);
    }
  }
}
