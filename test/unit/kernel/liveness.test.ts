import { describe, expect, it } from "vitest";
import { liveSetOf } from "#core/kernel/liveness.ts";
import type { TcpConnection } from "#core/ports.ts";

const conn = (state: string, srcPort: number): TcpConnection => ({
  id: srcPort,
  type: "WS",
  state,
  srcIp: "192.0.2.7",
  srcPort,
  dstIp: "192.0.2.1",
  dstPort: 8080,
});

describe("liveSetOf: which listed connections Kamailio can still send on", () => {
  it("a connection the keepalive gave up on (CONN_BAD) or that failed (CONN_ERROR) is not live", () => {
    const live = liveSetOf([conn("CONN_BAD", 5001), conn("CONN_ERROR", 5002)]);
    expect(live.size).toBe(0);
  });

  it.each(["CONN_OK", "CONN_INIT", "CONN_EOF", "CONN_ACCEPT", "CONN_CONNECT", "UNKNOWN", "SOMETHING_NEW"])(
    "control: a %s connection is live (a state this code does not know keeps its rows)",
    (state) => {
      expect([...liveSetOf([conn(state, 5003)])]).toEqual(["192.0.2.7:5003"]);
    },
  );

  it("a bad connection does not hide a good one from the same peer address on another port", () => {
    expect([...liveSetOf([conn("CONN_BAD", 5004), conn("CONN_OK", 5005)])]).toEqual(["192.0.2.7:5005"]);
  });
});
