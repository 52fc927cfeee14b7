// The core scenarios on Kamailio 6.0.1 (the trixie chroot, scripts/kamailio-v6.sh) next to the
// host's 5.6.3, with the same tests and one table of what each version does (DESIGN §2b: an
// outcome that differs per version is stated per version, never skipped). PostgreSQL,
// notifier_processes=0 (notifier mode on PostgreSQL is broken from 5.7.0 on: FINDINGS-6.0 §6).
//   1. the status endpoint reports the version; abrupt deaths post connection.closed events that
//      parse with the contract, with the connection id on 6.0.1 (null in tcp:* routes on 5.6.3);
//   2. a dead watcher notified first: on 6.0.1 (GH #4118 fixed) the refresh answers 200 and the
//      survivors are notified, but the stale row STAYS (on 5.6.3: 500, survivors starve); the
//      worker deletes it on the close event, with an audit record;
//   3. a presentity whose only watcher is stale: the refresh answers 500 on both versions; the
//      worker classifies that 500 as docs/worker.md says for the version, reconciles the
//      presentity once (the row goes, with an audit record) and its second refresh succeeds.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RDSDataClient } from "@aws-sdk/client-rds-data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { classifyRpcError, RpcFaultError } from "#core/classify.ts";
import type { ConnectionClosed, PresenceChanged } from "#core/contract.ts";
import type { FleetConfig, NodeConfig } from "#core/fleet.ts";
import { factsFromStatus } from "#core/ports.ts";
import type { DataApiServer } from "../../../local/dataapi/server.ts";
import { testDbConfig } from "../../helpers/dataapi.ts";
import { createTestDb, makeNotifiedFirst, type TestDb } from "../../helpers/db.ts";
import { fleetOf, nodeConfig } from "../../helpers/fakes.ts";
import { hostKamailio, type KamailioRuntime, startKamailio } from "../../helpers/kamailio.ts";
import {
  hostMountsUnder,
  kamailioV6,
  kamailioV6Root,
  RUN_DIR_IN_CHROOT,
} from "../../helpers/kamailio-runtime-v6.ts";
import { type NodeBed, startNodeBed } from "../../helpers/node-bed.ts";
import { loopbackAddress } from "../../helpers/ports.ts";
import type { SipWsClient, Subscription } from "../../helpers/sip-ws-client.ts";
import { envelopeOf, nodeConfigOf, startDataApi, workerFor } from "../worker/harness.ts";

interface VersionExpectations {
  /** tcp:closed/reset/timeout routes see $conid (6.0.1) or <null> (5.6.3) */
  conidInTcpEvents: boolean;
  /** refreshWatchers with a dead watcher notified first */
  refreshWithDeadFirst: { status: number; survivorNotifies: number };
  /** what docs/worker.md says a refresh 500 means on this version (sync mode) */
  refreshFaultMeaning: RegExp;
  /**
   * The worker's refresh after deleting a dead row (lambdas/core/refresh-policy.ts): sent where
   * the sync loop aborts (nothing traces a trigger), skipped where it continues (nobody starved).
   */
  afterDelete: { outcome: "ok" | "skipped"; reason: string; survivorNotifies: number };
}

/** Whether two paths name the same directory (device and inode). */
function sameDirectory(a: string, b: string): boolean {
  const [x, y] = [statSync(a), statSync(b)];
  return x.dev === y.dev && x.ino === y.ino;
}

const VERSIONS: { version: string; runtime: () => KamailioRuntime; expect: VersionExpectations }[] = [
  {
    version: "5.6.3",
    runtime: () => hostKamailio,
    expect: {
      conidInTcpEvents: false,
      refreshWithDeadFirst: { status: 500, survivorNotifies: 0 },
      afterDelete: { outcome: "ok", reason: "sent:untraced-deletion", survivorNotifies: 1 },
      refreshFaultMeaning:
        /GH #4118 not fixed\): a NOTIFY send failed and the watchers after it were skipped/,
    },
  },
  {
    version: "6.0.1",
    runtime: () => kamailioV6(),
    expect: {
      conidInTcpEvents: true,
      refreshWithDeadFirst: { status: 200, survivorNotifies: 1 },
      afterDelete: { outcome: "skipped", reason: "skipped:version-continues", survivorNotifies: 0 },
      refreshFaultMeaning: /GH #4118 fixed\): no NOTIFY went out for this presentity/,
    },
  },
];

describe.each(VERSIONS)(
  "Kamailio $version, PostgreSQL, notifier_processes=0",
  ({ version, runtime, expect: v }) => {
    let bed: NodeBed;
    let api: { server: DataApiServer; client: RDSDataClient };
    let v6Node: NodeConfig;
    let fleet: FleetConfig;
    const peerNode = `peer-of-v${version.replaceAll(".", "")}`;

    beforeAll(async () => {
      bed = await startNodeBed("postgres", `v6core${version.replaceAll(".", "")}`, {
        nodeId: `core-${version}`,
        listenIp: loopbackAddress(),
        notifierProcesses: 0,
        runtime: runtime(),
      });
      // A second fleet node whose presence.changed makes the worker refresh this one (fan-out).
      await bed.db.createNodeTable("aw_peer");
      api = await startDataApi();
      v6Node = { ...nodeConfigOf(bed.node, "nated"), kamailioVersion: version };
      const peer = nodeConfig(peerNode, {
        rpcUrl: "http://127.0.0.1:1/RPC",
        statusUrl: "http://127.0.0.1:1/kwc/status",
        socketInfo: ["tcp:127.0.0.1:1"],
        watchersTable: "aw_peer",
        kamailioVersion: version,
      });
      fleet = fleetOf([v6Node, peer], {
        database: testDbConfig(bed.db),
        notifyFailureCodes: [404, 408, 410, 481],
      });
    });

    afterAll(async () => {
      await api?.server.close();
      await bed?.close();
    });

    const worker = () => workerFor(fleet, api.client, new Map([[bed.node.nodeId, bed.node.rpcToken]]));
    const rowsOf = (sub: Subscription) =>
      bed.db.query<{ id: number }>("SELECT id FROM active_watchers WHERE callid = $1", [sub.callId]);
    const closedEventOf = (c: SipWsClient, cause: ConnectionClosed["cause"]) =>
      bed.rx.waitFor(
        (e) => e.type === "connection.closed" && e.peer.port === c.localPort && e.cause === cause,
      ) as Promise<ConnectionClosed>;

    it("reports its version and settings, and abrupt deaths post connection.closed events that parse", async () => {
      const status = await bed.node.status();
      expect(status).toMatchObject({ version, subsDbMode: 3, notifierProcesses: 0, node: bed.node.nodeId });
      expect(status.versionFull).toContain(`kamailio ${version} `);
      // the spawned pid is Kamailio's main process, running in the chroot for 6.0.1 (compared by
      // inode: the /proc/<pid>/root link text depends on the reader's own root, e.g. in a chroot)
      expect(sameDirectory(`/proc/${bed.node.pid}/root`, version === "6.0.1" ? kamailioV6Root() : "/")).toBe(
        true,
      );
      if (version === "6.0.1") {
        // the run dir is mounted in the node's own namespace only
        expect(readFileSync(`/proc/${bed.node.pid}/mountinfo`, "utf8")).toContain(` ${RUN_DIR_IN_CHROOT} `);
        expect(hostMountsUnder(kamailioV6Root())).toEqual([]);
      }

      const reset = await bed.connect("dies-rst");
      const fin = await bed.connect("dies-terminate");
      const list = await bed.node.rpc("core.tcp_list");
      expect(list.status).toBe(200);
      const idOf = (c: SipWsClient) =>
        (list.body.result as { id: number; type: string; src_port: number }[]).find(
          (t) => t.type === "WS" && t.src_port === c.localPort,
        )?.id;
      expect(idOf(reset)).toBeGreaterThan(0);
      expect(idOf(fin)).toBeGreaterThan(0);

      await reset.die("rst");
      await fin.die("terminate");
      const events = [await closedEventOf(reset, "tcp:reset"), await closedEventOf(fin, "tcp:closed")];
      for (const [i, c] of [reset, fin].entries()) {
        expect(events[i]).toMatchObject({
          node: bed.node.nodeId,
          boot: bed.node.bootId,
          transport: "ws",
          peer: { ip: c.localAddress, port: c.localPort },
        });
        if (v.conidInTcpEvents) expect(events[i]?.conid).toBe(idOf(c));
        else expect(events[i]?.conid ?? null).toBeNull();
      }
      expect(bed.rx.rejections).toEqual([]);
    });

    it("a dead watcher notified first: refresh outcome per version, the stale row stays until the worker deletes it", async () => {
      const presentity = "sip:boss@example.com";
      const publisher = await bed.connect("boss");
      expect(await publisher.publish(presentity)).toBe(200);
      const s1 = await bed.watch("s1", presentity);
      const s2 = await bed.watch("s2", presentity);
      const dead = await bed.watch("dead", presentity);
      await makeNotifiedFirst(bed.db, dead.sub.callId);
      const scan = await bed.db.query<{ callid: string }>(
        "SELECT callid FROM active_watchers WHERE presentity_uri = $1 AND event = 'presence'",
        [presentity],
      );
      expect(scan).toHaveLength(3);
      expect(scan.at(-1)?.callid).toBe(dead.sub.callId);

      await dead.c.die("terminate");
      const closed = await closedEventOf(dead.c, "tcp:closed");

      await s1.c.ping();
      await s2.c.ping();
      const mark = [s1, s2].map((s) => s.c.notifiesFor(s.sub).length);
      const refresh = await bed.node.rpc("presence.refreshWatchers", [presentity, "presence", 1]);
      expect(refresh.status).toBe(v.refreshWithDeadFirst.status);
      // sync mode: the refresh's NOTIFYs are on the wire before the RPC answers; a ping is the barrier
      await s1.c.ping();
      await s2.c.ping();
      expect([s1, s2].map((s, i) => s.c.notifiesFor(s.sub).length - (mark[i] ?? 0))).toEqual([
        v.refreshWithDeadFirst.survivorNotifies,
        v.refreshWithDeadFirst.survivorNotifies,
      ]);
      // Control, on every version: Kamailio keeps the stale row.
      expect(await rowsOf(dead.sub)).toHaveLength(1);

      const w = worker();
      const before = [s1, s2].map((s) => s.c.notifiesFor(s.sub).length);
      const result = await w.run([{ messageId: "v-closed", body: envelopeOf(closed) }]);
      expect(result.failedMessageIds).toEqual([]);
      expect(await rowsOf(dead.sub)).toHaveLength(0);
      expect(await rowsOf(s1.sub)).toHaveLength(1);
      expect(await rowsOf(s2.sub)).toHaveLength(1);
      expect(result.refreshes).toEqual([
        {
          node: bed.node.nodeId,
          presentityUri: presentity,
          event: "presence",
          outcome: v.afterDelete.outcome,
        },
      ]);
      expect(result.refreshReasons).toEqual({ [v.afterDelete.reason]: 1 });
      await s1.c.ping();
      await s2.c.ping();
      const n = v.afterDelete.survivorNotifies;
      expect([s1, s2].map((s, i) => s.c.notifiesFor(s.sub).length - (before[i] ?? 0))).toEqual([n, n]);
      // Either way every survivor holds the current state: from the worker's refresh (5.6.3), or
      // already from the refresh whose loop went on past the dead row (6.0.1).
      for (const s of [s1, s2]) expect(s.c.notifiesFor(s.sub).at(-1)?.body).toContain("<basic>open</basic>");
      expect(w.tel.audits).toEqual([
        expect.objectContaining({
          action: "watcher.deleted",
          node: bed.node.nodeId,
          reason: "connection.closed",
          cause: "tcp:closed",
          presentity,
          watcher: "sip:dead@example.com",
          dialog: { callId: dead.sub.callId, toTag: dead.sub.toTag, fromTag: dead.sub.fromTag },
          peer: `${dead.c.localAddress}:${dead.c.localPort}`,
          sourceMessageId: "v-closed",
        }),
      ]);
    });

    it("a presentity whose only watcher is stale: 500 classified as documented, the worker reconciles it once", async () => {
      const presentity = "sip:solo@example.com";
      const publisher = await bed.connect("solo");
      expect(await publisher.publish(presentity)).toBe(200);
      const lone = await bed.watch("lone", presentity);
      await lone.c.die("terminate");
      await closedEventOf(lone.c, "tcp:closed"); // posted, but this scenario does not feed it to the worker

      // Control: Kamailio answers 500 and keeps the row.
      const refresh = await bed.node.rpc("presence.refreshWatchers", [presentity, "presence", 1]);
      expect(refresh.status).toBe(500);
      expect(refresh.body.error).toEqual({ code: 500, message: "Execution failed" });
      expect(await rowsOf(lone.sub)).toHaveLength(1);

      // The worker's client turns that answer into a refresh fault whose meaning fits the version.
      const w = worker();
      const error = await w.kamailio.refreshWatchers(v6Node, presentity, "presence").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RpcFaultError);
      const facts = factsFromStatus(v6Node, await w.kamailio.status(v6Node));
      expect(facts.kamailioVersion).toBe(version);
      const fault = classifyRpcError(error, "presence.refreshWatchers", facts, "postgres");
      expect(fault).toMatchObject({
        kind: "refresh-fault",
        meaning: expect.stringMatching(v.refreshFaultMeaning),
      });

      // A change posted by the other node makes the worker refresh this one: 500, reconcile once, 200.
      const changed: PresenceChanged = {
        type: "presence.changed",
        node: peerNode,
        boot: "1795600000-0badc0de",
        presentity,
        event: "presence",
        at: Math.floor(Date.now() / 1000),
      };
      const result = await w.run([{ messageId: "v-changed", body: envelopeOf(changed) }]);
      expect(result.failedMessageIds).toEqual([]);
      expect(result.refreshes).toEqual([
        { node: bed.node.nodeId, presentityUri: presentity, event: "presence", outcome: "ok" },
      ]);
      expect(await rowsOf(lone.sub)).toHaveLength(0);
      expect(w.tel.logs).toContainEqual(
        expect.objectContaining({
          level: "warn",
          message: "refresh failed; reconciling the presentity once",
          data: expect.objectContaining({ meaning: expect.stringMatching(v.refreshFaultMeaning) }),
        }),
      );
      expect(w.tel.audits).toEqual([
        expect.objectContaining({
          reason: "reconcile.refresh-failed",
          presentity,
          watcher: "sip:lone@example.com",
          dialog: { callId: lone.sub.callId, toTag: lone.sub.toTag, fromTag: lone.sub.fromTag },
        }),
      ]);
      expect((await bed.node.rpc("presence.refreshWatchers", [presentity, "presence", 1])).status).toBe(200);
    });
  },
);

describe("kamailioV6() runtime", () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb("postgres", "v6rt");
  });
  afterAll(() => db?.drop());

  it("leaves nothing mounted or running on the host after a stop or a failed start", async () => {
    const root = kamailioV6Root();
    const node = await startKamailio({
      nodeId: "v6-rt",
      db,
      listenIp: loopbackAddress(),
      runtime: kamailioV6(),
    });
    expect(readFileSync(`/proc/${node.pid}/mountinfo`, "utf8")).toContain(` ${RUN_DIR_IN_CHROOT} `);
    await node.stop();
    expect(existsSync(`/proc/${node.pid}`)).toBe(false);
    expect(existsSync(node.runDir)).toBe(false);
    expect(hostMountsUnder(root)).toEqual([]);

    // A cfg error: Kamailio exits at once (spawned directly: startKamailio would poll its status
    // endpoint until its 20 s deadline). Nothing stays mounted.
    const runDir = mkdtempSync(join(tmpdir(), "kwc-v6-bad-"));
    try {
      const bad = join(runDir, "bad.cfg");
      writeFileSync(bad, "#!KAMAILIO\nchildren=not-a-number\n");
      const { file, argv } = kamailioV6().command(["-f", bad, "-DD", "-E"], { cfgPath: bad, runDir });
      const child = spawn(file, argv, { cwd: runDir, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
      expect(code).not.toBe(0);
      expect(stderr).toMatch(/parse error|syntax error/i);
      expect(hostMountsUnder(root)).toEqual([]);
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
    expect(hostMountsUnder(root)).toEqual([]);
  });
});
