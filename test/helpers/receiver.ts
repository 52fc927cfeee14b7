// A stand-in for the ingest with the same contract: POST /events with header x-kwc-key;
// 401 without the key, 403 with a wrong one, 413 over the size limit, 503 while "down",
// 2xx = accepted. Everything accepted is parsed with the contract's parseMessage().
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import type { KamailioEvent } from "#core/contract.ts";
import { parseMessage, type Rejection } from "#core/parse.ts";
import { randomId, waitForItem } from "./wait.ts";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
  receivedAt: number;
}

export interface EventReceiver {
  /** Full URL of POST /events, e.g. http://127.0.0.1:40123/events */
  url: string;
  key: string;
  /** Every request, answered or refused, in arrival order. */
  requests: ReceivedRequest[];
  /** Accepted bodies, JSON-parsed (or the raw string when unparsable). */
  envelopes: unknown[];
  /** Valid events of accepted bodies, in arrival order. */
  events: KamailioEvent[];
  /** Rejections parseMessage() found in accepted bodies (should stay empty for our cfg). */
  rejections: Rejection[];
  waitFor(pred: (e: KamailioEvent) => boolean, timeoutMs?: number): Promise<KamailioEvent>;
  /** false: answer 503 (the cfg must re-queue); true: accept again. */
  setAvailable(up: boolean): void;
  close(): Promise<void>;
}

export async function startEventReceiver(
  opts: { key?: string; host?: string; maxBytes?: number } = {},
): Promise<EventReceiver> {
  const key = opts.key ?? `ingest-${randomId(24)}`;
  const host = opts.host ?? "127.0.0.1";
  const maxBytes = opts.maxBytes ?? 256 * 1024;
  let available = true;
  const requests: ReceivedRequest[] = [];
  const envelopes: unknown[] = [];
  const events: KamailioEvent[] = [];
  const rejections: Rejection[] = [];

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const given = req.headers["x-kwc-key"];
      const status =
        req.method !== "POST" || req.url !== "/events"
          ? 404
          : given === undefined
            ? 401
            : given !== key
              ? 403
              : Buffer.byteLength(body) > maxBytes
                ? 413
                : !available
                  ? 503
                  : 200;
      requests.push({
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body,
        status,
        receivedAt: Date.now(),
      });
      if (status === 200) {
        try {
          envelopes.push(JSON.parse(body));
        } catch {
          envelopes.push(body);
        }
        const parsed = parseMessage(body);
        for (const e of parsed.events) events.push(e.event);
        rejections.push(...parsed.rejections);
      }
      res.writeHead(status, { "content-type": "application/json", connection: "close" });
      res.end(status === 200 ? '{"ok":true}' : `{"status":${status}}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}/events`,
    key,
    requests,
    envelopes,
    events,
    rejections,
    waitFor: (pred, timeoutMs = 10_000) => waitForItem(events, pred, timeoutMs, "an event from Kamailio"),
    setAvailable(up) {
      available = up;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
