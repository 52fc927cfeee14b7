// Free TCP ports for real processes: bind port 0 on the address the process will use, read the
// port, close. Ports handed out by this process are never handed out twice.
import { createServer } from "node:net";

const handedOut = new Set<string>();

/** A TCP port that is free on `host` right now (default 127.0.0.1). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.unref();
      server.once("error", reject);
      server.listen({ host, port: 0, exclusive: true }, () => {
        const address = server.address();
        const found = typeof address === "object" && address ? address.port : 0;
        server.close(() => resolve(found));
      });
    });
    const key = `${host}:${port}`;
    if (port > 0 && !handedOut.has(key)) {
      handedOut.add(key);
      return port;
    }
  }
  throw new Error(`no free port found on ${host}`);
}

/** Several distinct free ports on one host. */
export async function freePorts(count: number, host = "127.0.0.1"): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort(host));
  return ports;
}

/**
 * A loopback address 127.0.0.x (x in 2..254) for a Kamailio node, distinct per call within this
 * process and spread across vitest workers by pid, so parallel test files rarely share one.
 * Ports are still picked per address, so sharing would not conflict anyway.
 */
let nextHost = 0;
export function loopbackAddress(): string {
  const base = (process.pid * 7 + nextHost++ * 13) % 240;
  return `127.0.${10 + (base % 200)}.${2 + ((base * 31 + nextHost) % 250)}`;
}
