// BLF-shaped active_watchers rows in bulk, for the peer-index tests and the fleet-scale bench: a
// phone (one WebSocket peer) watches `keysPerPeer` presentities, so peer i owns rows
// [i * keysPerPeer, (i + 1) * keysPerPeer). Even peers are nated contacts, odd ones alias contacts.
// Filled inside the database (generate_series / MariaDB's sequence tables): no row crosses the wire.
import type { Peer } from "#core/peer.ts";
import { assertTableName, type TestDb } from "./db.ts";

export const BLF_SOCKET = "tcp:127.0.0.2:5080";

/** The peer of phone i (10.x.y.z, port 10000 + i % 50000). */
export function blfPeer(i: number): Peer {
  return { ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 10_000 + (i % 50_000) };
}

const COLUMNS =
  "presentity_uri, watcher_username, watcher_domain, to_user, to_domain, event, to_tag, from_tag, callid, local_cseq, remote_cseq, contact, expires, socket_info, local_contact, from_user, from_domain, updated, updated_winfo";

/** SQL text of the values for row number `g` (a column of the generating source). */
function valuesSql(engine: TestDb["engine"], g: string, keysPerPeer: number): string {
  const cat = (...parts: string[]) =>
    engine === "postgres" ? parts.join(" || ") : `CONCAT(${parts.join(", ")})`;
  const div = engine === "postgres" ? "/" : "DIV";
  const p = `(${g} ${div} ${keysPerPeer})`;
  const ip = cat(
    "'10.'",
    `((${p} ${div} 65536) % 256)`,
    "'.'",
    `((${p} ${div} 256) % 256)`,
    "'.'",
    `(${p} % 256)`,
  );
  const port = `(10000 + ${p} % 50000)`;
  const contact = `CASE WHEN ${p} % 2 = 0 THEN ${cat("'sip:phone'", p, "'@'", ip, "':'", port, "';transport=ws;ob'")} ELSE ${cat("'sip:phone'", p, "'@df7jal23ls0d.invalid;transport=ws;alias='", ip, "'~'", port, "'~5'")} END`;
  return [
    cat("'sip:key'", `(${g} % ${keysPerPeer})`, "'@blf.example.com'"),
    cat("'phone'", p),
    "'blf.example.com'",
    cat("'key'", `(${g} % ${keysPerPeer})`),
    "'blf.example.com'",
    "'dialog'",
    cat("'tt-'", g),
    "'ft-blf'",
    cat("'blf-call-'", g, "'@df7jal23ls0d.invalid'"),
    "1",
    "1",
    contact,
    "2000000000",
    `'${BLF_SOCKET}'`,
    cat("'sip:'", ip, "':5080;transport=ws'"),
    cat("'phone'", p),
    "'blf.example.com'",
    "-1",
    "-1",
  ].join(", ");
}

/** Inserts rows [from, from + count) of the BLF layout into `table`. */
export async function fillBlf(
  db: TestDb,
  table: string,
  options: { from?: number; count: number; keysPerPeer?: number },
): Promise<void> {
  assertTableName(table);
  const from = options.from ?? 0;
  const last = from + options.count - 1;
  const keys = options.keysPerPeer ?? 100;
  if (db.engine === "postgres") {
    await db.query(
      `INSERT INTO ${table} (${COLUMNS}) SELECT ${valuesSql("postgres", "g", keys)} FROM generate_series(${from}, ${last}) AS g`,
    );
  } else {
    await db.query(
      `INSERT INTO ${table} (${COLUMNS}) SELECT ${valuesSql("mysql", "seq", keys)} FROM seq_${from}_to_${last}`,
    );
  }
  await db.query(db.engine === "postgres" ? `ANALYZE ${table}` : `ANALYZE TABLE ${table}`);
}
