// The migration's decisions over a scripted port: what runs for each state found, the INVALID
// leftover dropped first, the MySQL column-without-index finished, a timed-out statement polled
// until its state, and the notifier-mode stall reasons (PostgreSQL only).
import { describe, expect, it } from "vitest";
import {
  MigrationError,
  migratePeerIndex,
  type PeerIndexPort,
  stallReasons,
  unmigratePeerIndex,
} from "#core/peer-index-migration.ts";
import type { PeerIndexState } from "#core/sql/peer-index.ts";

/** A port whose state follows a script: each state() call takes the next entry (the last repeats). */
function scripted(states: PeerIndexState[], runs: ("done" | "timedOut")[] = []) {
  const ran: string[] = [];
  let polls = 0;
  const port: PeerIndexPort = {
    run: async (sql) => {
      ran.push(sql);
      return runs.shift() ?? "done";
    },
    state: async () => states[Math.min(polls++, states.length - 1)] as PeerIndexState,
    sleep: async () => {},
  };
  return { port, ran, polls: () => polls };
}

describe("migratePeerIndex", () => {
  it("leaves a valid index alone", async () => {
    const s = scripted(["valid"]);
    expect(await migratePeerIndex(s.port, "postgres", "aw")).toMatchObject({ before: "valid", ran: [] });
  });

  it("PostgreSQL: drops an INVALID leftover, then builds", async () => {
    const s = scripted(["invalid", "valid"]);
    const out = await migratePeerIndex(s.port, "postgres", "aw");
    expect(s.ran.map((q) => q.split(" (")[0])).toEqual([
      'DROP INDEX CONCURRENTLY IF EXISTS "kwc_peer1_aw"',
      'CREATE INDEX CONCURRENTLY "kwc_peer1_aw" ON "aw"',
    ]);
    expect(out).toMatchObject({ before: "invalid", after: "valid" });
  });

  it("MySQL: a column without its index gets the index only", async () => {
    const s = scripted(["invalid", "valid"]);
    await migratePeerIndex(s.port, "mysql", "aw");
    expect(s.ran).toEqual(["ALTER TABLE `aw` ADD INDEX kwc_peer1 (kwc_peer1), ALGORITHM=INPLACE, LOCK=NONE"]);
  });

  it("polls a statement that outlasted the Data API timeout until the index is valid", async () => {
    // before: absent; after the timeout: not visible yet, building twice, then valid (final check too).
    const s = scripted(["absent", "absent", "building", "building", "valid"], ["timedOut"]);
    const lines: string[] = [];
    const out = await migratePeerIndex(s.port, "postgres", "aw", { say: (l) => lines.push(l) });
    expect(out.after).toBe("valid");
    expect(lines.filter((l) => l.includes("in progress"))).toHaveLength(3);
  });

  it("a build that failed after the timeout is an error naming the leftover", async () => {
    const s = scripted(["absent", "building", "invalid"], ["timedOut"]);
    await expect(migratePeerIndex(s.port, "postgres", "aw", { graceMs: 0 })).rejects.toThrow(MigrationError);
  });

  it("waits for a build already running before deciding", async () => {
    const s = scripted(["building", "building", "valid"]);
    expect(await migratePeerIndex(s.port, "postgres", "aw")).toMatchObject({ before: "building", ran: [] });
  });
});

describe("unmigratePeerIndex", () => {
  it("drops the index (and the MySQL column); nothing when absent; refuses during a build", async () => {
    const pg = scripted(["valid", "absent"]);
    expect((await unmigratePeerIndex(pg.port, "postgres", "aw")).ran).toEqual([
      'DROP INDEX CONCURRENTLY IF EXISTS "kwc_peer1_aw"',
    ]);
    const my = scripted(["valid", "absent"]);
    expect((await unmigratePeerIndex(my.port, "mysql", "aw")).ran).toHaveLength(2);
    const none = scripted(["absent"]);
    expect((await unmigratePeerIndex(none.port, "mysql", "aw")).ran).toEqual([]);
    await expect(unmigratePeerIndex(scripted(["building"]).port, "postgres", "aw")).rejects.toThrow(
      /being built/,
    );
  });
});

describe("stallReasons", () => {
  const nodes = [
    { id: "sync", facts: { notifierProcesses: 0, source: "status" as const } },
    { id: "notifier", facts: { notifierProcesses: 1, source: "config" as const } },
  ];
  it("names the PostgreSQL nodes in notifier mode, none on MySQL", () => {
    const reasons = stallReasons("postgres", nodes);
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/^node notifier runs presence in notifier mode .*from its config/);
    expect(stallReasons("mysql", nodes)).toEqual([]);
  });
});
