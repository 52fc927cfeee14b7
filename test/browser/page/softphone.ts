// The page a browser test loads: a minimal web softphone on JsSIP (the library many web phones
// use), bundled for the browser by esbuild (test/browser/page-server.ts). It subscribes to
// presence and dialog over SIP-over-WebSocket, as a BLF panel does, and keeps what it was told,
// so a test can read each tab's current state with page.evaluate(() => kwc.state()).
// It does nothing on unload: neither does JsSIP, nor most phones (a tab that reloads or crashes
// leaves its subscriptions behind, which is the problem the service solves).
import { UA, WebSocketInterface } from "jssip";

export interface Watch {
  presentity: string;
  event: "presence" | "dialog";
}

export interface TabNotify {
  callId: string;
  event: string;
  presentity: string;
  subscriptionState: string;
  body: string;
  receivedAt: number;
}

export interface TabState {
  /** The Call-ID of each subscription, by `event presentity`. */
  callIds: Record<string, string>;
  notifies: TabNotify[];
  /** Subscriptions JsSIP reported terminated: `event presentity` → reason. */
  terminated: Record<string, string>;
  /** WebSocket disconnects JsSIP saw. */
  disconnects: number;
}

const ACCEPT: Record<Watch["event"], string> = {
  presence: "application/pidf+xml",
  dialog: "application/dialog-info+xml",
};

const state: TabState = { callIds: {}, notifies: [], terminated: {}, disconnects: 0 };
let ua: UA | undefined;

function started(u: UA): Promise<void> {
  return new Promise((resolve, reject) => {
    u.once("connected", () => resolve());
    u.once("disconnected", () => reject(new Error("WebSocket did not connect")));
  });
}

/** Resolves with the subscription's Call-ID on its first NOTIFY (the 200 alone says nothing). */
function watch(u: UA, w: Watch): Promise<string> {
  const key = `${w.event} ${w.presentity}`;
  const sub = u.subscribe(w.presentity, w.event, ACCEPT[w.event], {
    expires: 600,
    contentType: "text/plain",
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${key}: no NOTIFY within 10 s`)), 10_000);
    sub.on("notify", (_final, request, body) => {
      clearTimeout(timer);
      const callId = String((request as unknown as { call_id: string }).call_id);
      state.callIds[key] = callId;
      state.notifies.push({
        callId,
        event: w.event,
        presentity: w.presentity,
        subscriptionState: String(request.getHeader("Subscription-State") ?? ""),
        body: body ?? "",
        receivedAt: Date.now(),
      });
      resolve(callId);
    });
    sub.on("terminated", (code, reason) => {
      state.terminated[key] = `${code} ${reason ?? ""}`.trim();
      reject(new Error(`${key}: terminated (${code})`));
    });
    sub.subscribe();
  });
}

/** Connects to `wsUrl` as `user` and subscribes to each watch; resolves with the Call-IDs. */
async function start(wsUrl: string, user: string, watches: Watch[]): Promise<string[]> {
  const u = new UA({
    sockets: [new WebSocketInterface(wsUrl)],
    uri: `sip:${user}@example.com`,
    register: false,
    session_timers: false,
    user_agent: "kwc-browser-test JsSIP",
  });
  ua = u;
  u.on("disconnected", () => {
    state.disconnects++;
  });
  const connected = started(u);
  u.start();
  await connected;
  const callIds: string[] = [];
  for (const w of watches) callIds.push(await watch(u, w));
  return callIds;
}

/**
 * OPTIONS round trip on this tab's WebSocket: a barrier, nearly. Kamailio sends a refresh's or a
 * PUBLISH's NOTIFYs before it answers, so once this resolves the NOTIFYs sent to this tab before
 * are in `state.notifies`, unless Kamailio queued one to its tcp main process and another worker
 * wrote the OPTIONS reply first (the likely cause of one miss under full-suite load): tests
 * await what must arrive.
 */
function ping(): Promise<number> {
  const u = ua as unknown as {
    sendOptions(
      target: string,
      body: null,
      options: { eventHandlers: Record<string, (e: unknown) => void> },
    ): void;
  };
  if (!ua) return Promise.reject(new Error("not started"));
  return new Promise((resolve, reject) => {
    u.sendOptions("sip:ping@example.com", null, {
      eventHandlers: {
        succeeded: (e) => resolve((e as { response: { status_code: number } }).response.status_code),
        failed: (e) => reject(new Error(`OPTIONS failed: ${(e as { cause?: string }).cause}`)),
      },
    });
  });
}

const api = { start, ping, state: (): TabState => state };
export type SoftphoneApi = typeof api;
(globalThis as unknown as { kwc: SoftphoneApi }).kwc = api;
