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
 * A loopback address for a Kamailio node or a client: 127.<20 + pid % 200>.<n / 250>.<2 + n % 250>,
 * distinct per call within this process and, by pid, across parallel vitest workers (all of
 * 127.0.0.0/8 is on lo). Ports are picked free per address anyway, so a clash would not break.
 */
let nextHost = 0;
export function loopbackAddress(): string {
  const n = nextHost++;
  return `127.${20 + (process.pid % 200)}.${Math.floor(n / 250) % 256}.${2 + (n % 250)}`;
}

/**
 * A port free on every one of `hosts` right now (a listener that binds the same port on an IPv4
 * and an IPv6 address). A host that cannot be bound at all (no IPv6 on lo) fails with its reason.
 */
export async function freePortOnAll(hosts: readonly string[]): Promise<number> {
  const [first, ...others] = hosts;
  if (first === undefined) throw new Error("freePortOnAll: no host");
  for (const host of others) await assertBindable(host);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort(first);
    const elsewhere = await Promise.all(others.map((h) => isPortFree(h, port)));
    if (elsewhere.every(Boolean)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(", ")}`);
}

/** True when `port` can be bound on `host` right now. */
export function isPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

async function assertBindable(host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", (e: Error) =>
      reject(
        new Error(
          `cannot listen on ${host} (${e.message}); ${host.includes(":") ? "the IPv6 tests need ::1 on lo (check `ip -6 addr show lo`; sysctl net.ipv6.conf.lo.disable_ipv6=0)" : "address not on this machine"}`,
        ),
      ),
    );
    server.listen({ host, port: 0, exclusive: true }, () => server.close(() => resolve()));
  });
}
