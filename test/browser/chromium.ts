// Debian's Chromium (/usr/bin/chromium, installed by scripts/install-packages.sh), driven headless
// by playwright-core, which never downloads a browser of its own. Each launch gets a private HOME
// whose NSS database ($HOME/.pki/nssdb, where Chromium on Linux reads trust) trusts the test's
// certificate, so WSS is verified for real; Playwright gives it a fresh, empty profile dir.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserServer, chromium, type Page } from "playwright-core";
import type { SoftphoneApi, TabState, Watch } from "./page/softphone.ts";

export const CHROMIUM = "/usr/bin/chromium";

// The flags this machine needs (docs/browsers.md): no sandbox as root, no GPU, and nothing that
// reaches for the network on its own (its connections would be refused, many at a time).
const FLAGS = [
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Every descendant of `pid` (children first found by their PPid), then `pid` itself. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")"
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      /* gone meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) walk(c);
    out.push(p);
  };
  walk(pid);
  return out;
}

function signalTree(pid: number, signal: NodeJS.Signals): number {
  const pids = processTree(pid);
  for (const p of pids) {
    try {
      process.kill(p, signal);
    } catch {
      /* already gone */
    }
  }
  return pids.length;
}

// A browser a test left behind (a hook that timed out, a frozen browser) must not outlive the
// test process: its processes are SIGKILLed at exit, as test/helpers/kamailio.ts does for Kamailio.
const running = new Set<number>();
process.once("exit", () => {
  for (const pid of running) signalTree(pid, "SIGKILL");
});

/** A private HOME whose NSS database trusts `caPem` (a certificate the test made) for TLS servers. */
function privateHome(caPem?: string): string {
  const home = mkdtempSync(join(tmpdir(), "kwc-chromium-home-"));
  const nssdb = join(home, ".pki", "nssdb");
  mkdirSync(nssdb, { recursive: true });
  execFileSync("certutil", ["-N", "-d", `sql:${nssdb}`, "--empty-password"], { stdio: "pipe" });
  if (caPem) {
    const file = join(home, "kwc-test-ca.pem");
    writeFileSync(file, caPem);
    execFileSync("certutil", ["-A", "-d", `sql:${nssdb}`, "-n", "kwc-test", "-t", "CT,,", "-a", "-i", file], {
      stdio: "pipe",
    });
  }
  return home;
}

export interface Tab {
  page: Page;
  user: string;
  /** Call-IDs of the subscriptions, in the order of `watches`. */
  callIds: string[];
  state(): Promise<TabState>;
  /** OPTIONS round trip on the tab's WebSocket: a barrier for the NOTIFYs sent before (nearly: page/softphone.ts). */
  ping(): Promise<number>;
  /** Subscribes (again) from the current document: after page.reload(). */
  start(): Promise<string[]>;
}

export interface TestBrowser {
  browser: Browser;
  /** The browser process; its tree holds the renderers and the network service. */
  pid: number;
  home: string;
  /** A new tab on `pageUrl` that subscribes as `user` over `wsUrl`; resolves on the first NOTIFYs. */
  openTab(user: string, watches: Watch[]): Promise<Tab>;
  /** SIGSTOP to every process of the browser: a peer that is there but says nothing. */
  freeze(): number;
  /** SIGKILL to every process of the browser: a crash. */
  kill(): number;
  close(): Promise<void>;
}

export async function launchChromium(opts: {
  pageUrl: string;
  wsUrl: string;
  caPem?: string;
}): Promise<TestBrowser> {
  const home = privateHome(opts.caPem);
  let server: BrowserServer | undefined;
  try {
    server = await chromium.launchServer({
      executablePath: CHROMIUM,
      headless: true,
      chromiumSandbox: false,
      args: FLAGS,
      env: { ...process.env, HOME: home },
    });
    const pid = server.process().pid;
    if (pid === undefined) throw new Error("chromium: no pid");
    running.add(pid);
    const browser = await chromium.connect(server.wsEndpoint());
    const context = await browser.newContext();
    const srv = server;
    const openTab = async (user: string, watches: Watch[]): Promise<Tab> => {
      const page = await context.newPage();
      await page.goto(opts.pageUrl);
      const start = () =>
        page.evaluate(
          ([wsUrl, u, w]) => (globalThis as unknown as { kwc: SoftphoneApi }).kwc.start(wsUrl, u, w),
          [opts.wsUrl, user, watches] as const,
        );
      const tab: Tab = {
        page,
        user,
        callIds: await start(),
        state: () => page.evaluate(() => (globalThis as unknown as { kwc: SoftphoneApi }).kwc.state()),
        ping: () => page.evaluate(() => (globalThis as unknown as { kwc: SoftphoneApi }).kwc.ping()),
        start: async () => {
          tab.callIds = await start();
          return tab.callIds;
        },
      };
      return tab;
    };
    return {
      browser,
      pid,
      home,
      openTab,
      freeze: () => signalTree(pid, "SIGSTOP"),
      kill: () => signalTree(pid, "SIGKILL"),
      async close() {
        // a frozen browser never answers: end it for good before Playwright waits on it
        signalTree(pid, "SIGCONT");
        await browser.close().catch(() => {});
        await srv.kill().catch(() => {});
        running.delete(pid);
        rmSync(home, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await server?.kill().catch(() => {});
    rmSync(home, { recursive: true, force: true });
    throw error;
  }
}
