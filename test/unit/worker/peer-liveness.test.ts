// core/peer-liveness.ts over fakes: "live" from the route is trusted, everything else is confirmed
// by the full list, a node without the route gets the full list, and long lists are chunked.
import { describe, expect, it } from "vitest";
import { livePeersAmong, PEERS_PER_REQUEST } from "#core/peer-liveness.ts";
import type { PeerStates } from "#core/ports.ts";
import { FakeKamailio, nodeConfig } from "../../helpers/fakes.ts";

const node = nodeConfig("n1");
const peer = (port: number) => ({ ip: "10.0.0.1", port });

function fake(answer: (peers: string[]) => PeerStates | undefined) {
  const asked: string[][] = [];
  const client = new FakeKamailio();
  client.peerStates = async (_n, peers) => {
    asked.push(peers);
    return answer(peers);
  };
  return { client, asked };
}

describe("livePeersAmong", () => {
  it("trusts live, confirms notFound with the full list (which may know better)", async () => {
    const f = fake((peers) => ({ live: peers.slice(0, 1), notFound: peers.slice(1), refused: [] }));
    let lists = 0;
    const out = await livePeersAmong(f.client, node, [peer(1), peer(2), peer(3)], async () => {
      lists++;
      return new Set(["10.0.0.1:3"]); // the lookup missed a live connection of peer 3
    });
    expect(lists).toBe(1);
    expect(out.via).toBe("route+tcp_list");
    expect([...out.live].sort()).toEqual(["10.0.0.1:1", "10.0.0.1:3"]);
  });

  it("needs no full list when every peer asked is live", async () => {
    const f = fake((peers) => ({ live: peers, notFound: [], refused: [] }));
    const out = await livePeersAmong(f.client, node, [peer(1)], async () => {
      throw new Error("must not be called");
    });
    expect(out).toEqual({ live: new Set(["10.0.0.1:1"]), via: "route" });
  });

  it("a peer the route did not answer about is confirmed too", async () => {
    const f = fake(() => ({ live: [], notFound: [], refused: [] }));
    const out = await livePeersAmong(f.client, node, [peer(7)], async () => new Set(["10.0.0.1:7"]));
    expect(out.live.has("10.0.0.1:7")).toBe(true);
  });

  it("falls back to the full list without the route, and without peerStates at all", async () => {
    const f = fake(() => undefined);
    expect((await livePeersAmong(f.client, node, [peer(1)], async () => new Set())).via).toBe("tcp_list");
    expect((await livePeersAmong(new FakeKamailio(), node, [peer(1)], async () => new Set())).via).toBe(
      "tcp_list",
    );
  });

  it("asks at most PEERS_PER_REQUEST peers per request", async () => {
    const f = fake((peers) => ({ live: peers, notFound: [], refused: [] }));
    const peers = Array.from({ length: PEERS_PER_REQUEST + 5 }, (_, i) => peer(i + 1));
    const out = await livePeersAmong(f.client, node, peers, async () => new Set());
    expect(f.asked.map((a) => a.length)).toEqual([PEERS_PER_REQUEST, 5]);
    expect(out.live.size).toBe(PEERS_PER_REQUEST + 5);
  });
});
