// A TCP proxy in front of one of the project's databases, for fault tests (DESIGN.md §2b): the
// database itself is never stopped. cut() resets every open connection and resets each new one
// at once (the client sees ECONNRESET, as when the network to the database is gone); restore()
// forwards again.
import net from "node:net";

export interface TcpProxy {
  port: number;
  /** Connections accepted and forwarded so far. */
  readonly forwarded: number;
  /** Connections reset while cut. */
  readonly refused: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let down = false;
  let forwarded = 0;
  let refused = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    client.on("error", () => {});
    if (down) {
      refused++;
      client.resetAndDestroy();
      return;
    }
    forwarded++;
    const upstream = net.connect(target.port, target.host);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    for (const s of [client, upstream]) {
      open.add(s);
      s.on("close", () => open.delete(s));
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get forwarded() {
      return forwarded;
    },
    get refused() {
      return refused;
    },
    cut() {
      down = true;
      for (const s of open) s.resetAndDestroy();
    },
    restore() {
      down = false;
    },
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
