// aurora-postgresql over a local PostgreSQL through `pg`. Values come back as raw text (no pg
// type parsing) and are encoded by type OID, as the Data API's JDBC layer does.
import pg from "pg";
import { bindPostgres } from "../bindings.ts";
import { DataApiError } from "../errors.ts";
import type { ColumnMetadata, OutArray, OutField, ResultOptions, StatementResult } from "../protocol.ts";
import { tokenize } from "../tokenizer.ts";
import type { CompiledStatement, DbTls, Engine, Session } from "./engine.ts";

export interface PgTargetConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  poolSize?: number;
  /** TLS to the database server (absent: plain TCP, as the project's own instances on loopback). */
  ssl?: DbTls;
}

const rawText = { getTypeParser: () => (value: string) => value };

// Array type OID → element type OID, for the array types the Data API returns as arrayValue.
const arrayElement: Record<number, number> = {
  1000: 16,
  1005: 21,
  1007: 23,
  1016: 20,
  1021: 700,
  1022: 701,
  1231: 1700,
  1009: 25,
  1015: 1043,
  1014: 1042,
  1182: 1082,
  1183: 1083,
  1115: 1114,
  1185: 1184,
  2951: 2950,
};
const LONG_OIDS = new Set([20, 21, 23, 26]);
const DOUBLE_OIDS = new Set([700, 701]);

// JDBC type code (java.sql.Types), type name, precision for the common OIDs (as PgJDBC reports them)
const jdbcTypes: Record<number, [number, string, number]> = {
  16: [-7, "bool", 1],
  17: [-2, "bytea", 2147483647],
  18: [1, "char", 1],
  19: [12, "name", 63],
  20: [-5, "int8", 19],
  21: [5, "int2", 5],
  23: [4, "int4", 10],
  25: [12, "text", 2147483647],
  26: [-5, "oid", 10],
  114: [1111, "json", 2147483647],
  700: [7, "float4", 8],
  701: [8, "float8", 17],
  1042: [1, "bpchar", 2147483647],
  1043: [12, "varchar", 2147483647],
  1082: [91, "date", 13],
  1083: [92, "time", 15],
  1114: [93, "timestamp", 29],
  1184: [93, "timestamptz", 35],
  1266: [92, "timetz", 21],
  1700: [2, "numeric", 0],
  2950: [1111, "uuid", 2147483647],
  3802: [1111, "jsonb", 2147483647],
};

/** Parses PostgreSQL's array text form (`{1,"a b",NULL}`); nested arrays are unsupported as in the Data API. */
export function parsePgArray(text: string): (string | null)[] {
  if (!text.startsWith("{")) throw new DataApiError("UnsupportedResultException", "Unsupported array format");
  const items: (string | null)[] = [];
  let i = 1;
  if (text[i] === "}") return items;
  while (i < text.length) {
    if (text[i] === "{") {
      throw new DataApiError("UnsupportedResultException", "The result contains a multidimensional array");
    }
    let value = "";
    let quoted = false;
    if (text[i] === '"') {
      quoted = true;
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "\\") i++;
        value += text[i];
        i++;
      }
      i++; // closing quote
    } else {
      while (i < text.length && text[i] !== "," && text[i] !== "}") value += text[i++];
    }
    items.push(!quoted && value === "NULL" ? null : value);
    if (text[i] === "}") break;
    i++; // comma
  }
  return items;
}

function decodeScalar(oid: number, text: string, options: ResultOptions): OutField {
  if (oid === 16) return { booleanValue: text === "t" };
  if (LONG_OIDS.has(oid)) return options.longAsString ? { stringValue: text } : { longValue: BigInt(text) };
  if (DOUBLE_OIDS.has(oid)) return { doubleValue: Number(text) };
  if (oid === 1700 && options.decimalAsNumber) {
    return /^-?\d+$/.test(text) ? { longValue: BigInt(text) } : { doubleValue: Number(text) };
  }
  if (oid === 17) return { blobValue: Buffer.from(text.slice(2), "hex").toString("base64") };
  if (oid === 1184) return { stringValue: text.replace(/\+00$/, "") }; // sessions run in UTC
  return { stringValue: text };
}

function decodeArray(elementOid: number, text: string): OutArray {
  const items = parsePgArray(text);
  if (elementOid === 16) return { booleanValues: items.map((v) => v === "t") };
  if (LONG_OIDS.has(elementOid)) return { longValues: items.map((v) => (v === null ? 0n : BigInt(v))) };
  if (DOUBLE_OIDS.has(elementOid)) return { doubleValues: items.map((v) => Number(v)) };
  return { stringValues: items.map((v) => v ?? "") };
}

function decode(oid: number, text: string | null, options: ResultOptions): OutField {
  if (text === null) return { isNull: true };
  const element = arrayElement[oid];
  if (element !== undefined) return { arrayValue: decodeArray(element, text) };
  return decodeScalar(oid, text, options);
}

interface AttributeInfo {
  relname: string;
  nspname: string;
  attnotnull: boolean;
  autoincrement: boolean;
}

async function columnMetadata(client: pg.PoolClient, fields: pg.FieldDef[]): Promise<ColumnMetadata[]> {
  const pairs = fields.filter((f) => f.tableID !== 0);
  const attributes = new Map<string, AttributeInfo>();
  const typeNames = new Map<number, string>();
  if (pairs.length > 0) {
    const { rows } = await client.query<{
      attrelid: string;
      attnum: string;
      relname: string;
      nspname: string;
      attnotnull: string;
      autoincrement: string;
    }>(
      `SELECT a.attrelid, a.attnum, c.relname, n.nspname, a.attnotnull,
              (a.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid), '') LIKE 'nextval(%') AS autoincrement
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE (a.attrelid, a.attnum) IN (SELECT * FROM unnest($1::oid[], $2::int2[]))`,
      [pairs.map((f) => f.tableID), pairs.map((f) => f.columnID)],
    );
    for (const r of rows) {
      attributes.set(`${r.attrelid}:${r.attnum}`, {
        relname: r.relname,
        nspname: r.nspname,
        attnotnull: r.attnotnull === "t",
        autoincrement: r.autoincrement === "t",
      });
    }
  }
  const unknownTypes = fields.map((f) => f.dataTypeID).filter((oid) => jdbcTypes[oid] === undefined);
  if (unknownTypes.length > 0) {
    const { rows } = await client.query<{ oid: string; typname: string }>(
      "SELECT oid, typname FROM pg_type WHERE oid = ANY($1::oid[])",
      [unknownTypes],
    );
    for (const r of rows) typeNames.set(Number(r.oid), r.typname);
  }
  return fields.map((f) => {
    const attribute = attributes.get(`${f.tableID}:${f.columnID}`);
    const known = jdbcTypes[f.dataTypeID];
    const isArray = arrayElement[f.dataTypeID] !== undefined;
    let typeName = known?.[1] ?? typeNames.get(f.dataTypeID) ?? "unknown";
    if (attribute?.autoincrement)
      typeName = { int4: "serial", int8: "bigserial", int2: "smallserial" }[typeName] ?? typeName;
    const modifier = f.dataTypeModifier;
    let precision = known?.[2] ?? 2147483647;
    let scale = 0;
    if ((f.dataTypeID === 1043 || f.dataTypeID === 1042) && modifier > 4) precision = modifier - 4;
    if (f.dataTypeID === 1700 && modifier > 4) {
      precision = ((modifier - 4) >> 16) & 0xffff;
      scale = (modifier - 4) & 0xffff;
    }
    if (f.dataTypeID === 701) scale = 17;
    if (f.dataTypeID === 700) scale = 8;
    const type = isArray ? 2003 : (known?.[0] ?? 1111);
    return {
      name: f.name,
      type,
      typeName: isArray
        ? (typeNames.get(f.dataTypeID) ?? `_${jdbcTypes[arrayElement[f.dataTypeID] ?? 0]?.[1]}`)
        : typeName,
      label: f.name,
      schemaName: attribute?.nspname ?? "",
      tableName: attribute?.relname ?? "",
      isAutoIncrement: attribute?.autoincrement ?? false,
      isSigned: [20, 21, 23, 700, 701, 1700].includes(f.dataTypeID),
      isCurrency: f.dataTypeID === 790,
      isCaseSensitive: [25, 1043, 1042, 18, 19, 114, 3802].includes(f.dataTypeID),
      nullable: attribute ? (attribute.attnotnull ? 0 : 1) : 2,
      precision,
      scale,
      arrayBaseColumnType: isArray ? (jdbcTypes[arrayElement[f.dataTypeID] ?? 0]?.[0] ?? 0) : 0,
    };
  });
}

/** `ERROR: <text>[\n  Position: N]; SQLState: <code>`, the format Aurora PostgreSQL's Data API uses. */
export function formatPgError(error: { message: string; code?: string; position?: string }): string {
  const position = error.position ? `\n  Position: ${error.position}` : "";
  return `ERROR: ${error.message}${position}; SQLState: ${error.code ?? "XX000"}`;
}

class PgSession implements Session {
  constructor(
    private readonly client: pg.PoolClient,
    private readonly cancelWith: (pid: number) => Promise<void>,
  ) {}

  get connectionId(): number {
    return (this.client as unknown as { processID: number }).processID;
  }

  async run(statement: CompiledStatement, options: ResultOptions & { withMetadata: boolean }) {
    const raw = await this.client.query({ text: statement.sql, values: statement.values, rowMode: "array" });
    const results = raw as unknown as pg.QueryArrayResult | pg.QueryArrayResult[];
    const last = Array.isArray(results) ? results[results.length - 1] : results;
    if (!last) return { numberOfRecordsUpdated: 0, generatedFields: [] };
    const producesRows = last.fields.length > 0;
    const result: StatementResult = {
      numberOfRecordsUpdated: last.command === "SELECT" || last.command === null ? 0 : (last.rowCount ?? 0),
      generatedFields: [], // not supported by Aurora PostgreSQL (model doc): use RETURNING
    };
    if (producesRows) {
      const oids = last.fields.map((f) => f.dataTypeID);
      result.records = last.rows.map((row) =>
        row.map((value, i) => decode(oids[i] ?? 25, value as string | null, options)),
      );
      result.columnNames = last.fields.map((f) => f.name);
      result.jsonColumns = oids.map((oid) => oid === 114 || oid === 3802);
      if (options.withMetadata) result.columns = await columnMetadata(this.client, last.fields);
    }
    return result;
  }

  async exec(sql: string): Promise<void> {
    await this.client.query(sql);
  }

  cancel(): Promise<void> {
    return this.cancelWith(this.connectionId);
  }

  release(destroy = false): void {
    this.client.release(destroy);
  }
}

export class PostgresEngine implements Engine {
  readonly kind = "aurora-postgresql";
  private readonly pools = new Map<string, pg.Pool>();

  constructor(private readonly config: PgTargetConfig) {}

  compile(sql: string, parameters: Parameters<Engine["compile"]>[1]): CompiledStatement {
    return bindPostgres(tokenize(sql, "postgres"), parameters);
  }

  private pool(database: string): pg.Pool {
    let pool = this.pools.get(database);
    if (!pool) {
      pool = new pg.Pool({
        host: this.config.host,
        port: this.config.port,
        user: this.config.user,
        password: this.config.password,
        database,
        ...(this.config.ssl ? { ssl: this.config.ssl } : {}),
        max: this.config.poolSize ?? 10,
        types: rawText,
        options: "-c TimeZone=UTC",
      });
      pool.on("error", () => {}); // an idle client lost its server: the next acquire reconnects
      this.pools.set(database, pool);
    }
    return pool;
  }

  async acquire(database: string): Promise<Session> {
    const client = await this.pool(database).connect();
    return new PgSession(client, (pid) => this.cancelBackend(database, pid));
  }

  private async cancelBackend(database: string, pid: number): Promise<void> {
    // a fresh connection: the pool may be exhausted by the very statements we cancel
    const { host, port, user, password, ssl } = this.config;
    const client = new pg.Client({ host, port, user, password, database, ...(ssl ? { ssl } : {}) });
    await client.connect();
    try {
      await client.query("SELECT pg_cancel_backend($1)", [pid]);
    } finally {
      await client.end();
    }
  }

  mapError(error: unknown): DataApiError {
    if (error instanceof DataApiError) return error;
    const e = error as { message?: string; code?: string; position?: string };
    if (error instanceof pg.DatabaseError) {
      if (e.code === "3D000") return new DataApiError("DatabaseNotFoundException", formatPgError(error));
      return new DataApiError("DatabaseErrorException", formatPgError(error));
    }
    if (typeof e.code === "string" && /^E[A-Z]+$/.test(e.code)) {
      return new DataApiError("DatabaseUnavailableException", `Communications link failure: ${e.message}`);
    }
    return new DataApiError("InternalServerErrorException", e.message ?? String(error));
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }
}
