/**
 * scripts/env.sh's debian_mirror / debian_security_mirror: the archive debootstrap uses comes from
 * the host's own apt sources (one-line and deb822 forms), never from a host written into a script.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const envSh = fileURLToPath(new URL("../../../scripts/env.sh", import.meta.url));

function mirrors(files: Record<string, string>, env: Record<string, string> = {}) {
  const etc = mkdtempSync(join(tmpdir(), "kwc-apt-"));
  mkdirSync(join(etc, "sources.list.d"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(etc, name), text);
  const run = (fn: string) =>
    execFileSync("bash", ["-c", `source "${envSh}"; ${fn}`], {
      env: { PATH: process.env.PATH, KWC_APT_ETC: etc, ...env },
      encoding: "utf8",
    });
  return { main: run("debian_mirror"), security: run("debian_security_mirror") };
}

describe("debian_mirror: the host's apt sources decide the archive", () => {
  it("deb822 *.sources (Debian 12 default layout), disabled stanzas ignored", () => {
    const sources = [
      "Types: deb\nURIs: http://mirror.example.net/debian\nSuites: bookworm bookworm-updates\nComponents: main",
      "Types: deb\nURIs: http://sec.example.net/debian-security/\nSuites: bookworm-security\nComponents: main",
      "Types: deb\nEnabled: no\nURIs: http://old.example.net/debian\nSuites: bookworm\nComponents: main",
    ].join("\n\n");
    expect(mirrors({ "sources.list.d/debian.sources": sources })).toEqual({
      main: "http://mirror.example.net/debian",
      security: "http://sec.example.net/debian-security",
    });
  });

  it("one-line sources.list with [options]; security derived from the archive's host when not listed", () => {
    const list =
      "# comment\ndeb-src http://src.example.net/debian bookworm main\n" +
      "deb [arch=amd64 signed-by=/k.gpg] http://ftp.example.org/debian/ bookworm main\n";
    expect(mirrors({ "sources.list": list })).toEqual({
      main: "http://ftp.example.org/debian",
      security: "http://ftp.example.org/debian-security",
    });
  });

  it("KWC_DEBIAN_MIRROR and KWC_DEBIAN_SECURITY_MIRROR override the sources", () => {
    const list = "deb http://ftp.example.org/debian bookworm main\n";
    expect(
      mirrors(
        { "sources.list": list },
        { KWC_DEBIAN_MIRROR: "http://local/debian", KWC_DEBIAN_SECURITY_MIRROR: "http://local/sec" },
      ),
    ).toEqual({ main: "http://local/debian", security: "http://local/sec" });
  });

  it("no archive listed: a clear error naming the override, never a guessed host", () => {
    expect(() => mirrors({ "sources.list": "deb http://x/debian bookworm-security main\n" })).toThrow(
      /set KWC_DEBIAN_MIRROR/,
    );
  });
});
