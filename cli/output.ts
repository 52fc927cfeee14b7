/** `kwc` output: readable tables by default, the report as JSON with --json, a progress bar on stderr. */
import { type CleanupReport, staleCount } from "#core/cleanup-request.ts";
import { EXIT } from "./args.ts";

/** Plain text table, columns padded to their widest cell (cells cut at `maxWidth`). */
export function table(headers: string[], rows: string[][], maxWidth = 48): string {
  const cut = (s: string) => (s.length > maxWidth ? `${s.slice(0, maxWidth - 1)}…` : s);
  const cells = [headers, ...rows].map((r) => r.map(cut));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(cells[0] ?? []), line(widths.map((w) => "-".repeat(w))), ...cells.slice(1).map(line)].join(
    "\n",
  );
}

export function renderReport(report: CleanupReport): string {
  const out: string[] = [];
  const rows = report.nodes.flatMap((n) =>
    n.rows.map((r) => [n.node, String(r.id), r.reason, r.event, r.presentity, r.peer ?? "-", r.key.callId]),
  );
  if (rows.length > 0) {
    out.push(table(["node", "id", "reason", "event", "presentity", "peer", "call-id"], rows), "");
  }
  out.push(
    table(
      [
        "node",
        "outcome",
        "boot",
        "live",
        "conn-closed",
        "expired",
        "requested",
        "deleted",
        "refreshed",
        "ms",
      ],
      report.nodes.map((n) => [
        n.node,
        n.outcome,
        n.bootId ?? "-",
        String(n.counts.live),
        String(n.counts["conn-closed"]),
        String(n.counts.expired),
        String(n.counts.requested),
        String(n.deleted),
        `${n.refreshes.filter((r) => r.outcome === "ok").length}/${n.refreshes.length}`,
        String(n.durationMs),
      ]),
    ),
  );
  for (const n of report.nodes) {
    if (n.message) out.push("", `${n.node} (${n.outcome}): ${n.message}`);
    for (const w of n.warnings) out.push(`warning: ${w}`);
    for (const r of n.refreshes.filter((x) => x.outcome === "failed")) {
      out.push(`refresh failed on ${n.node}: ${r.presentity} ${r.event}: ${r.message ?? ""}`);
    }
    if (n.truncated) out.push(`${n.node}: more stale rows than --limit; run again for the rest`);
  }
  const t = report.totals;
  out.push(
    "",
    report.dryRun
      ? `dry run: ${staleCount(report)} stale rows would be deleted, nothing changed (${report.durationMs} ms)`
      : `deleted ${t.deleted} rows, ${t.refreshes - t.refreshFailures}/${t.refreshes} refreshes ok (${report.durationMs} ms)`,
  );
  return out.join("\n");
}

/** 1 when any node failed or was refused, 3 when a dry run found stale rows, else 0. */
export function exitCodeOf(report: CleanupReport, listing = false): number {
  const t = report.totals;
  if (t.nodesFailed + t.nodesRefused + t.nodesNotReached > 0 || t.refreshFailures > 0) return EXIT.error;
  if (report.dryRun && !listing && staleCount(report) > 0) return EXIT.staleFound;
  return EXIT.ok;
}

/** A one-line progress bar on a TTY (rows read, then deletes and refreshes). */
export function progressBar(stream: NodeJS.WriteStream): {
  update(e: { node: string; phase: string; done: number; total?: number }): void;
  end(): void;
} {
  let last = 0;
  let shown = false;
  return {
    update(e) {
      const now = Date.now();
      if (now - last < 100 && e.done !== e.total) return;
      last = now;
      shown = true;
      const width = 24;
      const bar =
        e.total && e.total > 0
          ? `[${"#".repeat(Math.round((e.done / e.total) * width)).padEnd(width, ".")}] ${e.done}/${e.total}`
          : `${e.done}`;
      stream.write(`\r\x1b[2K${e.node} ${e.phase} ${bar}`);
    },
    end() {
      if (shown) stream.write("\r\x1b[2K");
    },
  };
}
