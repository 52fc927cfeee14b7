// kwc.cfg sets presence's own parameters from its defines, or refuses to load: Kamailio's config
// check fails and its log names the missing define. And what /kwc/status reports is what presence
// runs: a node started with KWC_NOTIFIER_PROCESSES=1 has a presence notifier process, one with 0 has
// none (read from Kamailio's own process list over the ctl socket, not from the status endpoint).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../helpers/db.ts";
import { type KamailioNode, startKamailio } from "../../helpers/kamailio.ts";
import { KWC_CFG } from "../../helpers/wiring.ts";

const REQUIRED = {
  KWC_SUBS_DB_MODE: "3",
  KWC_NOTIFIER_PROCESSES: "0",
  KWC_SEND_FAST_NOTIFY: "1",
  KWC_CONTACT_STYLE: '"nated"',
} as const;

const dir = mkdtempSync(join(tmpdir(), "kwc-required-"));
const cfg = join(dir, "kamailio.cfg");
writeFileSync(
  cfg,
  [
    "#!KAMAILIO",
    "listen=tcp:127.0.0.1:5990",
    ...[
      "pv",
      "xlog",
      "sl",
      "tm",
      "jsonrpcs",
      "xhttp",
      "websocket",
      "presence",
      "jansson",
      "uuid",
      "mqueue",
      "rtimer",
      "http_client",
      "tcpops",
      "pipelimit",
    ].map((m) => `loadmodule "${m}.so"`),
    `include_file "${KWC_CFG}"`,
    "request_route { exit; }",
    "",
  ].join("\n"),
);

function configCheck(defines: Record<string, string>): { ok: boolean; log: string } {
  const args = ["-f", cfg, "-c", ...Object.entries(defines).flatMap(([k, v]) => ["-A", `${k}=${v}`])];
  const r = spawnSync("/usr/sbin/kamailio", args, { encoding: "utf8" });
  return { ok: r.status === 0, log: `${r.stdout}${r.stderr}` };
}

describe("kwc.cfg's required defines", () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("loads with all of them (control)", () => {
    const r = configCheck(REQUIRED);
    expect(r.log).toContain("config file ok");
    expect(r.ok).toBe(true);
  });

  it.each(Object.keys(REQUIRED))("refuses to load without %s, and says which", (missing) => {
    const { [missing as keyof typeof REQUIRED]: _, ...rest } = REQUIRED;
    const r = configCheck(rest);
    expect(r.ok).toBe(false);
    expect(r.log).toContain(`kwc.cfg needs -A ${missing}=`);
  });
});

describe("presence runs what the status reports", () => {
  let db: TestDb;
  const nodes: KamailioNode[] = [];
  beforeAll(async () => {
    db = await createTestDb("postgres", "presruns");
    for (const n of [0, 1] as const)
      nodes.push(
        await startKamailio({
          nodeId: `runs-${n}`,
          db,
          notifierProcesses: n,
          ...(n === 1 ? { defines: { KWC_NOTIFIER_MODE_PG_WORKAROUND: true } } : {}),
        }),
      );
  });
  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await db?.drop();
  });

  it("notifier_processes and send_fast_notify: as reported, and the notifier process exists only when reported", async () => {
    for (const [i, node] of nodes.entries()) {
      const status = await node.status();
      expect(status).toMatchObject({ notifierProcesses: i, sendFastNotify: i === 1 ? 0 : 1, subsDbMode: 3 });
      const psx = execFileSync("kamcmd", ["-s", `unix:${join(node.runDir, "kamailio_ctl")}`, "core.psx"], {
        encoding: "utf8",
      });
      const notifiers = psx.split("\n").filter((l) => /notifier/i.test(l)).length;
      expect(notifiers > 0, psx).toBe(i === 1);
    }
  });
});
