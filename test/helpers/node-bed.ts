// One Kamailio node with the shipped cfg on its own test database, posting its events to a
// stand-in ingest, plus the SIP-over-WS clients a test opens on it: the set-up most
// single-node integration tests share. close() releases all of it (clients, node, receiver, DB).
import { createTestDb, type Engine, type TestDb } from "./db.ts";
import { type KamailioNode, type KamailioNodeOptions, startKamailio } from "./kamailio.ts";
import { type EventReceiver, startEventReceiver } from "./receiver.ts";
import { SipWsClient, type Subscription } from "./sip-ws-client.ts";

export interface NodeBed {
  db: TestDb;
  rx: EventReceiver;
  node: KamailioNode;
  /** Every client opened through connect()/watch(), closed by close(). */
  clients: SipWsClient[];
  /** Placeholder n of db.query(): `$n` on PostgreSQL, `?` on MySQL. */
  ph(n: number): string;
  connect(user: string): Promise<SipWsClient>;
  /** A client subscribed to `presentity` (200) whose initial NOTIFY has arrived. */
  watch(user: string, presentity: string, event?: string): Promise<{ c: SipWsClient; sub: Subscription }>;
  close(): Promise<void>;
}

export async function startNodeBed(
  engine: Engine,
  dbPrefix: string,
  options: Omit<KamailioNodeOptions, "db" | "ingestUrl" | "ingestKey">,
): Promise<NodeBed> {
  const db = await createTestDb(engine, dbPrefix);
  const rx = await startEventReceiver();
  let node: KamailioNode;
  try {
    node = await startKamailio({ ...options, db, ingestUrl: rx.url, ingestKey: rx.key });
  } catch (error) {
    await rx.close();
    await db.drop();
    throw error;
  }
  const clients: SipWsClient[] = [];
  const connect = async (user: string) => {
    const c = await SipWsClient.connect(node.wsUrl, { user });
    clients.push(c);
    return c;
  };
  return {
    db,
    rx,
    node,
    clients,
    ph: (n) => (engine === "postgres" ? `$${n}` : "?"),
    connect,
    async watch(user, presentity, event = "presence") {
      const c = await connect(user);
      const sub = await c.subscribe(presentity, { event });
      if (sub.status !== 200) throw new Error(`SUBSCRIBE of ${user} to ${presentity} answered ${sub.status}`);
      await c.waitForNotify((n) => n.callId === sub.callId);
      return { c, sub };
    },
    async close() {
      for (const c of clients) c.close();
      await node.stop();
      await rx.close();
      await db.drop();
    },
  };
}
