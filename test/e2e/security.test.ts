// Security through the local pipeline (`npm start`'s stack, in-process, two nodes, PostgreSQL):
// per-node ingest identity end to end (HTTP ingest → SQS attribute → worker), and no secret in
// any log or file the run writes, nor in the cfg or Kamailio's command line.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IDENTITY_AUDIT_MESSAGE } from "#core/ingest-identity.ts";
import type { LocalStack } from "../../local/stack.ts";
import { SipWsClient } from "../helpers/sip-ws-client.ts";
import { waitUntil } from "../helpers/wait.ts";
import { type StackBed, startStackBed } from "./stack-bed.ts";

let bed: StackBed;
let stack: LocalStack;
/** Everything the process wrote to stdout/stderr and the stack's own log lines, during the run. */
const captured: string[] = [];
const restore: (() => void)[] = [];

function tee(stream: NodeJS.WriteStream): void {
  const original = stream.write.bind(stream);
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    captured.push(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8"));
    return (original as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof stream.write;
  restore.push(() => {
    stream.write = original as typeof stream.write;
  });
}

beforeAll(async () => {
  tee(process.stdout);
  tee(process.stderr);
  bed = await startStackBed("postgres", "sec", { nodes: 2, log: (line: string) => captured.push(line) });
  stack = bed.stack;
});

afterAll(async () => {
  for (const undo of restore.splice(0)) undo();
  await bed?.close();
});

const node = (i: number) => stack.nodes[i] as LocalStack["nodes"][number];

async function post(key: string | undefined, body: unknown): Promise<number> {
  const res = await fetch(stack.ingest.eventsUrl, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key !== undefined && { "x-kwc-key": key }) },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

async function rowsWithCallId(table: string, callId: string): Promise<number> {
  const rows = await bed.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${table} WHERE callid = $1`,
    [callId],
  );
  return Number(rows[0]?.n ?? 0);
}

describe("per-node ingest identity through the local pipeline", () => {
  it("answers 401 without a key and 403 with a key of no node, queuing nothing", async () => {
    const before = stack.ingest.stats.accepted;
    expect(await post(undefined, { v: 1 })).toBe(401);
    expect(await post(`${stack.ingestKeys[node(0).id]}x`, { v: 1 })).toBe(403);
    expect(await post("0".repeat(48), { v: 1 })).toBe(403);
    expect(stack.ingest.stats.accepted).toBe(before);
  });

  it("an event for node B sent with node A's key deletes nothing of B's; with B's own key it deletes", async () => {
    const b = node(1);
    const peer = { ip: "127.0.0.99", port: 40_001 };
    await bed.db.query(
      `INSERT INTO ${b.watchersTable} (presentity_uri, watcher_username, watcher_domain, to_user, to_domain, event, to_tag, from_tag, callid, local_cseq, remote_cseq, contact, expires, socket_info, local_contact, from_user, from_domain, updated, updated_winfo) VALUES ('sip:forged@example.com','x','example.com','forged','example.com','presence','tt-f','ft-f','forged-call',1,1,$1,$2,$3,'sip:b','x','example.com',0,0)`,
      [`sip:x@${peer.ip}:${peer.port};transport=ws`, Math.floor(Date.now() / 1000) + 600, b.socketInfo],
    );
    const event = {
      type: "connection.closed",
      node: b.id,
      boot: stack.kamailios[1]?.bootId ?? "",
      peer,
      transport: "ws",
      cause: "tcp:reset",
      at: Date.now() / 1000,
    };
    const mismatches = () => stack.counters.metrics.EventsNodeMismatch ?? 0;
    const before = mismatches();
    // Node A's key: accepted by the ingest (it never reads bodies), ignored by the worker.
    expect(await post(stack.ingestKeys[node(0).id], { v: 1, events: [event] })).toBe(200);
    await waitUntil(async () => mismatches() > before, {
      timeoutMs: 20_000,
      what: "the forged event to be counted",
    });
    expect(await rowsWithCallId(b.watchersTable, "forged-call")).toBe(1);
    expect(captured.join("")).toContain(IDENTITY_AUDIT_MESSAGE);
    // Control: the same event with node B's own key deletes the row.
    expect(await post(stack.ingestKeys[b.id], { v: 1, events: [event] })).toBe(200);
    await waitUntil(async () => (await rowsWithCallId(b.watchersTable, "forged-call")) === 0, {
      timeoutMs: 20_000,
      what: "the row to be deleted on node B's own event",
    });
    expect(mismatches()).toBe(before + 1);
  });
});

describe("secrets", () => {
  it("a real close through Kamailio (its key on the POST, the token on the refresh) and a sweep leave no secret in any log", async () => {
    const a = node(0);
    const ip = a.wsUrl?.replace(/^ws:\/\/([^:]+):.*$/, "$1");
    const publisher = await SipWsClient.connect(a.wsUrl ?? "", {
      user: "sec-p",
      ...(ip && { localAddress: ip }),
    });
    const watcher = await SipWsClient.connect(a.wsUrl ?? "", {
      user: "sec-w",
      ...(ip && { localAddress: ip }),
    });
    bed.clients.push(publisher, watcher);
    expect(await publisher.publish("sip:sec-p@example.com")).toBe(200);
    const sub = await watcher.subscribe("sip:sec-p@example.com");
    expect(sub.status).toBe(200);
    await watcher.die("rst");
    await waitUntil(async () => (await rowsWithCallId(a.watchersTable, sub.callId)) === 0, {
      timeoutMs: 20_000,
      what: "the dead watcher's row to be deleted through the pipeline",
    });
    await stack.reconcileNow();

    const secrets = [stack.rpcToken, ...Object.values(stack.ingestKeys)];
    expect(secrets.every((s) => s.length >= 32)).toBe(true);
    const kamailioLogs = stack.nodes.map((n) => readFileSync(n.logFile as string, "utf8"));
    const stateDir = join(stack.fleetConfigPath, "..");
    const stateFiles = readdirSync(stateDir)
      .map((f) => join(stateDir, f))
      .filter((f) => statSync(f).isFile() && !f.endsWith("rpc-token")); // the token's own 0600 file
    const texts = {
      "process output": captured.join(""),
      ...Object.fromEntries(kamailioLogs.map((text, i) => [`kamailio log ${i}`, text])),
      ...Object.fromEntries(stateFiles.map((f) => [f, readFileSync(f, "utf8")])),
    };
    // Controls: the captures hold what the run did (the worker's audit, Kamailio's POSTs).
    expect(texts["process output"]).toContain("watcher.deleted");
    expect(kamailioLogs.join("")).toMatch(/kwc: node node-a boot id/);
    for (const [where, text] of Object.entries(texts))
      for (const secret of secrets)
        expect({ where, leaked: text.includes(secret) }).toEqual({ where, leaked: false });
  });

  it("the cfg holds no secret: only $env() reads them, and Kamailio's command line carries none", () => {
    const root = join(import.meta.dirname, "../../kamailio");
    for (const file of ["kwc.cfg", "kamailio.cfg"]) {
      const text = readFileSync(join(root, file), "utf8");
      for (const line of text
        .split("\n")
        .filter((l) => /KWC_(INGEST_KEY|RPC_TOKEN)/.test(l) && !/^\s*#/.test(l)))
        expect(line).toMatch(/\$env\(KWC_(INGEST_KEY|RPC_TOKEN|RPC_TOKEN_NEXT)\)/);
    }
    for (const kamailio of stack.kamailios) {
      const cmdline = readFileSync(`/proc/${kamailio.pid}/cmdline`, "utf8").replaceAll("\0", " ");
      expect(cmdline).toMatch(/KWC_NODE_ID/); // control: the defines are there
      for (const secret of [stack.rpcToken, ...Object.values(stack.ingestKeys)])
        expect(cmdline).not.toContain(secret);
    }
  });
});
