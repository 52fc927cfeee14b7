/**
 * What a node reports about itself, judged before the service starts working for it (`npm start --
 * --existing-kamailio`): refusals with the reason and the fix, and the contact-style cross-check
 * of the rows it wrote. Pure. The mode rules are modeRefusals' (reconcile.ts); this file adds only
 * what needs the status endpoint's newer fields (send_fast_notify, the declared contact style).
 */
import type { DatabaseEngine } from "./fleet.ts";
import { versionAtLeast } from "./fleet.ts";
import { contactPeer, modeRefusals } from "./reconcile.ts";

export type DeclaredStyle = "nated" | "alias";

/** The node's own report (kwc.cfg's GET /kwc/status), as far as the start gate reads it. */
export interface ReportedFacts {
  kamailioVersion: string;
  subsDbMode: number;
  notifierProcesses: number;
  /** presence send_fast_notify; undefined from a kwc.cfg older than the one that sets it. */
  sendFastNotify?: number;
  contactStyle?: DeclaredStyle;
}

/** Why the service must not start for this node; empty when it may. */
export function startRefusals(nodeId: string, facts: ReportedFacts, engine: DatabaseEngine): string[] {
  const out = modeRefusals(nodeId, facts, engine);
  const on56 = !versionAtLeast(facts.kamailioVersion, [5, 7, 0]);
  if (engine === "postgres" && facts.notifierProcesses > 0 && on56 && facts.sendFastNotify !== 0) {
    out.push(
      `node ${nodeId}: notifier_processes=${facts.notifierProcesses} on PostgreSQL with Kamailio ${facts.kamailioVersion} ` +
        `and send_fast_notify=${facts.sendFastNotify ?? "unknown"}: every in-dialog re-SUBSCRIBE gets 500 ` +
        "(`transaction not in progress`, GH #2739), so clients lose their subscriptions whatever the service does. " +
        "Start Kamailio with -A KWC_SEND_FAST_NOTIFY=0 (and waitn_time=1), or with -A KWC_NOTIFIER_PROCESSES=0.",
    );
  }
  if (facts.contactStyle === undefined) {
    out.push(
      `node ${nodeId}: its status reports no contact style, so WebSocket rows cannot be matched to connections. ` +
        'Use the kwc.cfg of this version and set -A KWC_CONTACT_STYLE="nated" (fix_nated_contact()) or "alias" ' +
        "(set_contact_alias(), or add_contact_alias() + msg_apply_changes()).",
    );
  }
  return out;
}

const OTHER: Record<DeclaredStyle, DeclaredStyle> = { nated: "alias", alias: "nated" };

/**
 * Warnings from the contacts of a node's WebSocket rows (rows on its WS sockets): rows written in
 * the other style than the node declares, and rows that name no peer at all (the contact as the
 * client sent it: presence never saw the rewrite). Each says how to fix it.
 */
export function contactStyleWarnings(
  nodeId: string,
  declared: DeclaredStyle,
  contacts: readonly string[],
): string[] {
  let other = 0;
  let noPeer = 0;
  let otherExample = "";
  let noPeerExample = "";
  for (const contact of contacts) {
    if (contactPeer(contact, declared)) continue;
    if (contactPeer(contact, OTHER[declared])) {
      other++;
      otherExample ||= contact;
    } else {
      noPeer++;
      noPeerExample ||= contact;
    }
  }
  const out: string[] = [];
  if (other > 0) {
    out.push(
      `node ${nodeId}: ${other} of ${contacts.length} WebSocket rows have ${OTHER[declared]}-style contacts ` +
        `(e.g. ${otherExample}) but the node declares KWC_CONTACT_STYLE "${declared}": those rows are never matched ` +
        `to a connection. Set -A KWC_CONTACT_STYLE="${OTHER[declared]}" if that is what your cfg calls before ` +
        "handle_subscribe(), and restart Kamailio.",
    );
  }
  if (noPeer > 0) {
    out.push(
      `node ${nodeId}: ${noPeer} of ${contacts.length} WebSocket rows name no peer in their contact (e.g. ${noPeerExample}): ` +
        "presence stored the contact as the client sent it, so the service cannot tell which connection they belong to. " +
        "Call fix_nated_contact() or set_contact_alias() before handle_subscribe(); after add_contact_alias() " +
        "call msg_apply_changes() (the stock cfg's WITH_MSGREBUILD) so presence sees the rewritten contact.",
    );
  }
  return out;
}
