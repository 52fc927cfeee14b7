// The guarded DELETE in bounded groups (lambdas/core/worker/delete-groups.ts): each group carries
// at most KEYS_PER_DELETE keys and exactly the ids of the rows those keys selected.
import { describe, expect, it } from "vitest";
import { deleteGroups, KEYS_PER_DELETE } from "#core/worker/delete-groups.ts";

const peerRow = (id: number, port: number) => ({
  row: { id, callId: `c${id}`, toTag: "t", fromTag: "f" },
  match: { by: "peer" as const, peer: { ip: "10.0.0.1", port } },
});
const dialogRow = (id: number, version: number) => ({
  row: { id, callId: `d${id}`, toTag: "t", fromTag: "f" },
  match: { by: "dialog" as const, version },
});

describe("deleteGroups", () => {
  it("a small batch is one statement with its peers and dialogs together", () => {
    const groups = deleteGroups([peerRow(1, 5000), peerRow(2, 5000), peerRow(3, 5001), dialogRow(4, 7)]);
    expect(groups).toEqual([
      {
        ids: [1, 2, 3, 4],
        criteria: {
          peers: [
            { ip: "10.0.0.1", port: 5000 },
            { ip: "10.0.0.1", port: 5001 },
          ],
          dialogs: [{ callId: "d4", toTag: "t", fromTag: "f", version: 7 }],
        },
      },
    ]);
  });

  it("a mass disconnect: groups of at most KEYS_PER_DELETE peers, each with only its own rows' ids", () => {
    const peers = 450;
    const chosen = Array.from({ length: peers * 3 }, (_, i) => peerRow(i + 1, 20_000 + (i % peers)));
    const groups = deleteGroups([...chosen, dialogRow(99_999, 1)]);
    expect(groups.length).toBe(Math.ceil(peers / KEYS_PER_DELETE) + 1);
    for (const g of groups) {
      expect(g.criteria.peers.length + g.criteria.dialogs.length).toBeLessThanOrEqual(KEYS_PER_DELETE);
      const ports = new Set(g.criteria.peers.map((p) => p.port));
      for (const id of g.ids) {
        const c = chosen[id - 1];
        if (c) expect(ports.has(c.match.peer.port)).toBe(true);
      }
    }
    expect(groups.flatMap((g) => g.ids).sort((a, b) => a - b)).toEqual([
      ...chosen.map((c) => c.row.id),
      99_999,
    ]);
  });

  it("rows the sweep chose (no peer or dialog key) are not the worker's: no group", () => {
    expect(
      deleteGroups([{ row: { id: 1, callId: "c", toTag: "t", fromTag: "f" }, match: { by: "sweep" } }]),
    ).toEqual([]);
  });
});
