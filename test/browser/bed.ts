// The browser tests' bed: one Kamailio 5.6.3 node (shipped cfg, test timers, a WS keepalive of
// the test's choosing, optionally a WSS listener with a certificate made for the run) whose events reach the local
// pipeline (`npm start`'s stack, in-process: ingest → SQS → worker → Data API → PostgreSQL) through
// a relay that also keeps every event with the time it arrived; and an http server on 127.0.0.1
// for the softphone page (Chromium blocks a WebSocket from a data: page to loopback).
//
// The node is started by the test helpers, not by the stack (the stack's own nodes have no WSS),
// and handed to the stack as its `existing` node: the stack watches exactly this node's socket.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import type { KamailioEvent } from "#core/contract.ts";
import { parseMessage } from "#core/parse.ts";
import { INGEST_KEY_HEADER } from "../../local/ingest.ts";
import { type LocalStack, startLocalStack } from "../../local/stack.ts";
import { createTestDb, type TestDb } from "../helpers/db.ts";
import { type KamailioNode, startKamailio } from "../helpers/kamailio.ts";
import { loopbackAddress } from "../helpers/ports.ts";
import { randomId, waitForItem } from "../helpers/wait.ts";

const PAGE_ENTRY = new URL("./page/softphone.ts", import.meta.url).pathname;

function listen(server: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    );
  });
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The page: JsSIP and the softphone bundled by the project's esbuild, served over http on loopback. */
export async function startPageServer(): Promise<{ url: string; close(): Promise<void> }> {
  const bundle = await build({
    entryPoints: [PAGE_ENTRY],
    bundle: true,
    platform: "browser",
    format: "iife",
    target: "chrome120",
    write: false,
    logLevel: "silent",
  });
  const js = bundle.outputFiles[0]?.text ?? "";
  const html = `<!doctype html><meta charset="utf-8"><title>kwc softphone</title><script src="/softphone.js"></script>`;
  const server = createServer((req, res) => {
    const [type, body] =
      req.url === "/softphone.js" ? ["text/javascript", js] : req.url === "/" ? ["text/html", html] : [];
    if (!type) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": `${type}; charset=utf-8`, "cache-control": "no-store" }).end(body);
  });
  const url = await listen(server);
  return { url: `${url}/`, close: () => closeServer(server) };
}

export interface RelayedEvent {
  event: KamailioEvent;
  /** When the relay got it (ms): the cfg drains its queue every 200 ms. */
  receivedAt: number;
}

/**
 * Kamailio posts here; every envelope is kept (parsed with the contract) and passed on unchanged
 * to the stack's ingest, whose answer goes back to Kamailio (so a refusal still makes it re-send).
 */
async function startRelay() {
  const key = `relay-${randomId(16)}`;
  const events: RelayedEvent[] = [];
  let target: { url: string; key: string } | undefined;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString("utf8");
      if (req.headers[INGEST_KEY_HEADER] !== key || !target) {
        res.writeHead(target ? 403 : 503).end();
        return;
      }
      const receivedAt = Date.now();
      const answer = await fetch(target.url, {
        method: "POST",
        headers: { "content-type": "application/json", [INGEST_KEY_HEADER]: target.key },
        body,
      }).catch(() => undefined);
      if (answer?.ok) for (const { event } of parseMessage(body).events) events.push({ event, receivedAt });
      res.writeHead(answer?.status ?? 502).end(answer ? await answer.text() : "");
    });
  });
  const url = await listen(server);
  return {
    url: `${url}/events`,
    key,
    events,
    forwardTo(url: string, key: string) {
      target = { url, key };
    },
    close: () => closeServer(server),
  };
}

export type Relay = Awaited<ReturnType<typeof startRelay>>;

export interface BrowserBed {
  db: TestDb;
  node: KamailioNode;
  stack: LocalStack;
  relay: Relay;
  /** The WebSocket URL the pages use (wss://… with `tls`). */
  wsUrl: string;
  /** The node's certificate (tls only): what the browsers' NSS databases trust. */
  caPem?: string;
  /** A Node client's URL (the publisher is not the subject of these tests). */
  plainWsUrl: string;
  /** connection.closed events for this peer port, in arrival order. */
  closesOf(port: number): RelayedEvent[];
  waitForClose(port: number, timeoutMs?: number): Promise<RelayedEvent>;
  close(): Promise<void>;
}

/**
 * `keepaliveSeconds`: Kamailio's WS keepalive_timeout. Its keepalive has a race (websocket module,
 * ping_pong(): `awaiting_pong = 1` is set AFTER the Ping is sent, so a Pong that a TCP reader
 * handles first is forgotten and the next idle check "forcibly closes" a live connection). On
 * loopback the Pong is back in microseconds and it hits live tabs and Node clients alike
 * (docs/browsers.md). Tests that need no keepalive set it long; the silent-browser test needs it
 * short and keeps its live peers from idling instead.
 */
export async function startBrowserBed(opts: { tls: boolean; keepaliveSeconds: number }): Promise<BrowserBed> {
  const db = await createTestDb("postgres", "browser");
  const stateDir = mkdtempSync(join(tmpdir(), "kwc-browser-"));
  const relay = await startRelay();
  const cleanups: (() => Promise<void> | void)[] = [
    () => db.drop(),
    () => rmSync(stateDir, { recursive: true, force: true }),
    () => relay.close(),
  ];
  const close = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    const node = await startKamailio({
      nodeId: "node-a",
      db,
      listenIp: loopbackAddress(),
      ingestUrl: relay.url,
      ingestKey: relay.key,
      tls: opts.tls,
      defines: { KWC_WS_KEEPALIVE: opts.keepaliveSeconds },
    });
    cleanups.push(() => node.stop());
    const listener = node.listeners.find((l) => l.transport === (opts.tls ? "wss" : "ws"));
    if (!listener) throw new Error(`node has no ${opts.tls ? "wss" : "ws"} listener`);
    const stack = await startLocalStack({
      engine: "postgres",
      database: db.name,
      stateDir,
      existing: {
        statusUrl: node.statusUrl,
        rpcUrl: node.rpcUrl,
        socketInfo: listener.socketInfo,
        rpcToken: node.rpcToken,
      },
      visibilityTimeoutSeconds: 2,
      waitTimeSeconds: 1,
      reconcileEveryMs: 0,
      log: () => {},
    });
    cleanups.push(() => stack.stop());
    relay.forwardTo(stack.ingest.eventsUrl, stack.ingestKey);
    const closesOf = (port: number) =>
      relay.events.filter((r) => r.event.type === "connection.closed" && r.event.peer.port === port);
    return {
      db,
      node,
      stack,
      relay,
      wsUrl: listener.url,
      ...(node.tlsCa ? { caPem: node.tlsCa } : {}),
      plainWsUrl: node.wsUrl,
      closesOf,
      waitForClose: (port, timeoutMs = 15_000) =>
        waitForItem(
          relay.events,
          (r) => r.event.type === "connection.closed" && r.event.peer.port === port,
          timeoutMs,
          `a connection.closed event for peer port ${port}`,
        ),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
