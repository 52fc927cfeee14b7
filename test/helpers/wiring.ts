// The wiring script of the "Use it with your Kamailio" test: the Debian package's stock
// /etc/kamailio/kamailio.cfg (verified against the package's own checksum) plus the fenced blocks of
// kamailio/README.md's "Use it with your Kamailio" section, read from the README itself, each put
// where the README says. Nothing else is changed: the list of permitted edits is that section.
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const STOCK_CFG = "/etc/kamailio/kamailio.cfg";
export const KAMAILIO_README = fileURLToPath(new URL("../../kamailio/README.md", import.meta.url));
export const KWC_CFG = fileURLToPath(new URL("../../kamailio/kwc.cfg", import.meta.url));

export type ContactStyle = "nated" | "alias";

/** Every ```` ```kamailio wire:NAME ```` block of the README, by name, without the fence's indentation. */
export function readmeBlocks(readme = readFileSync(KAMAILIO_README, "utf8")): Map<string, string> {
  const blocks = new Map<string, string>();
  const fence = /^( *)```kamailio wire:([a-z-]+)\n([\s\S]*?)^\1```$/gm;
  for (const m of readme.matchAll(fence)) {
    const [, indent = "", name = "", body = ""] = m;
    if (blocks.has(name)) throw new Error(`README has two wire:${name} blocks`);
    const lines = body.replace(/\n$/, "").split("\n");
    blocks.set(name, lines.map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l)).join("\n"));
  }
  return blocks;
}

/** The stock cfg, refused unless it is byte for byte what the installed package shipped. */
export function stockCfg(): string {
  const status = readFileSync("/var/lib/dpkg/status", "utf8");
  const expected = new RegExp(`^ ${STOCK_CFG.replace(/[.]/g, "\\.")} ([0-9a-f]{32})$`, "m").exec(status)?.[1];
  const text = readFileSync(STOCK_CFG, "utf8");
  const actual = createHash("md5").update(text).digest("hex");
  if (!expected || expected !== actual)
    throw new Error(
      `${STOCK_CFG} is not the kamailio package's conffile (md5 ${actual}, package ${expected})`,
    );
  return text;
}

type Where = { after: RegExp } | { before: RegExp } | { replace: RegExp } | "end";

/** Where each README block goes in the stock cfg (as the README's headings say), in order. */
function edits(style: ContactStyle): [string, Where][] {
  return [
    ["listen", { after: /^#!KAMAILIO$/ }],
    ["modules", { before: /^# -+ setting module-specific parameters -+$/ }],
    ["websocket-modules", { before: /^# -+ setting module-specific parameters -+$/ }],
    ["presence-mysql", { before: /^####### Routing Logic ########$/ }],
    ["include", { before: /^####### Routing Logic ########$/ }],
    ["request", { after: /^request_route \{$/ }],
    [`websocket-nat-${style}`, { after: /^route\[NATDETECT\] \{$/ }],
    ["publish", { replace: /^\t\thandle_publish\(\);$/ }],
    ["websocket-xhttp", { after: /^event_route\[xhttp:request\] \{$/ }],
    // route(KWC_HTTP) goes above the handshake: it is the first line of the route
    ["xhttp", { after: /^event_route\[xhttp:request\] \{$/ }],
    ["events", "end"],
  ];
}

function applyEdit(lines: string[], block: string, where: Where, name: string): string[] {
  if (where === "end") return [...lines, "", ...block.split("\n")];
  const re = "after" in where ? where.after : "before" in where ? where.before : where.replace;
  const at = lines.flatMap((l, i) => (re.test(l) ? [i] : []));
  if (at.length !== 1)
    throw new Error(`wire:${name}: ${re} matches ${at.length} lines of the stock cfg, not one`);
  const i = at[0] ?? 0;
  const insert = block.split("\n");
  if ("after" in where) return [...lines.slice(0, i + 1), ...insert, ...lines.slice(i + 1)];
  if ("before" in where) return [...lines.slice(0, i), ...insert, ...lines.slice(i)];
  return [...lines.slice(0, i), ...insert, ...lines.slice(i + 1)];
}

/** The stock cfg with the README's blocks for this contact style. */
export function wiredCfg(style: ContactStyle, blocks = readmeBlocks(), stock = stockCfg()): string {
  let lines = stock.split("\n");
  for (const [name, where] of edits(style)) {
    const block = blocks.get(name);
    if (block === undefined) throw new Error(`kamailio/README.md has no wire:${name} block`);
    lines = applyEdit(lines, block, where, name);
  }
  return lines.join("\n");
}

/** Writes the wired cfg and a copy of kwc.cfg (include_file is relative to the cfg) into `dir`. */
export function writeWiredCfg(dir: string, style: ContactStyle): string {
  const cfg = join(dir, "kamailio.cfg");
  writeFileSync(cfg, wiredCfg(style));
  copyFileSync(KWC_CFG, join(dir, "kwc.cfg"));
  return cfg;
}
