// aurora-mysql over a local MariaDB through `mysql2`. Aurora MySQL is MySQL 8.0, so MariaDB-only
// syntax is refused before it reaches the server, and sessions run with MySQL 8.0's default sql_mode.
import mysql from "mysql2/promise";
import { bindMysql } from "../bindings.ts";
import { DataApiError } from "../errors.ts";
import { mariadbOnlySyntax } from "../mysql8.ts";
import type { ColumnMetadata, OutField, ResultOptions, StatementResult } from "../protocol.ts";
import { tokenize } from "../tokenizer.ts";
import type { CompiledStatement, DbTls, Engine, Session } from "./engine.ts";

export interface MysqlTargetConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  poolSize?: number;
  /** TLS to the database server (absent: plain TCP, as the project's own instances on loopback). */
  ssl?: DbTls;
}

/** MySQL 8.0's default sql_mode (MariaDB 10.11's differs: no ONLY_FULL_GROUP_BY). */
export const MYSQL8_SQL_MODE =
  "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";

// protocol column types (include/mysql_com.h)
const T = {
  DECIMAL: 0,
  TINY: 1,
  SHORT: 2,
  LONG: 3,
  FLOAT: 4,
  DOUBLE: 5,
  NULL: 6,
  TIMESTAMP: 7,
  LONGLONG: 8,
  INT24: 9,
  DATE: 10,
  TIME: 11,
  DATETIME: 12,
  YEAR: 13,
  VARCHAR: 15,
  BIT: 16,
  JSON: 245,
  NEWDECIMAL: 246,
  ENUM: 247,
  SET: 248,
  TINY_BLOB: 249,
  MEDIUM_BLOB: 250,
  LONG_BLOB: 251,
  BLOB: 252,
  VAR_STRING: 253,
  STRING: 254,
  GEOMETRY: 255,
} as const;
const FLAG_NOT_NULL = 1;
const FLAG_UNSIGNED = 32;
const FLAG_AUTO_INCREMENT = 512;
const BINARY_CHARSET = 63;

interface MysqlField {
  name: string;
  orgName?: string;
  table?: string;
  orgTable?: string;
  db?: string;
  schema?: string;
  columnType: number;
  columnLength: number;
  flags: number;
  decimals: number;
  characterSet: number;
}

const INTEGER_TYPES = new Set<number>([T.TINY, T.SHORT, T.LONG, T.INT24, T.LONGLONG, T.YEAR]);
const DECIMAL_TYPES = new Set<number>([T.DECIMAL, T.NEWDECIMAL]);
const isBoolean = (f: MysqlField) => f.columnType === T.TINY && f.columnLength === 1;

function decode(field: MysqlField, raw: Buffer | null, options: ResultOptions): OutField {
  if (raw === null) return { isNull: true };
  const text = () => raw.toString("utf8");
  if (isBoolean(field)) return { booleanValue: text() !== "0" };
  if (INTEGER_TYPES.has(field.columnType)) {
    return options.longAsString ? { stringValue: text() } : { longValue: BigInt(text()) };
  }
  if (field.columnType === T.FLOAT || field.columnType === T.DOUBLE) return { doubleValue: Number(text()) };
  if (DECIMAL_TYPES.has(field.columnType)) {
    if (!options.decimalAsNumber) return { stringValue: text() };
    return /^-?\d+$/.test(text()) ? { longValue: BigInt(text()) } : { doubleValue: Number(text()) };
  }
  if (field.columnType === T.BIT) {
    // BIT(1) reads as a boolean through JDBC; wider BIT(n) as bytes (our guess, see docs)
    return field.columnLength === 1 ? { booleanValue: raw[0] === 1 } : { blobValue: raw.toString("base64") };
  }
  if (field.columnType === T.GEOMETRY) return { blobValue: raw.toString("base64") };
  if (field.characterSet === BINARY_CHARSET && field.columnType !== T.JSON && !isTemporal(field)) {
    return { blobValue: raw.toString("base64") };
  }
  return { stringValue: text() };
}

const isTemporal = (f: MysqlField) =>
  [T.DATE, T.TIME, T.DATETIME, T.TIMESTAMP, T.YEAR].includes(f.columnType as 10 | 11 | 12 | 7 | 13);

function jdbcType(f: MysqlField): [number, string] {
  const binary = f.characterSet === BINARY_CHARSET;
  switch (f.columnType) {
    case T.TINY:
      return isBoolean(f) ? [-7, "BIT"] : [-6, "TINYINT"];
    case T.SHORT:
      return [5, "SMALLINT"];
    case T.INT24:
      return [4, "MEDIUMINT"];
    case T.LONG:
      return [4, "INT"];
    case T.LONGLONG:
      return [-5, "BIGINT"];
    case T.FLOAT:
      return [7, "FLOAT"];
    case T.DOUBLE:
      return [8, "DOUBLE"];
    case T.DECIMAL:
    case T.NEWDECIMAL:
      return [3, "DECIMAL"];
    case T.DATE:
      return [91, "DATE"];
    case T.TIME:
      return [92, "TIME"];
    case T.DATETIME:
      return [93, "DATETIME"];
    case T.TIMESTAMP:
      return [93, "TIMESTAMP"];
    case T.YEAR:
      return [91, "YEAR"];
    case T.BIT:
      return [-7, "BIT"];
    case T.JSON:
      return [-1, "JSON"];
    case T.ENUM:
      return [1, "ENUM"];
    case T.SET:
      return [1, "SET"];
    case T.STRING:
      return binary ? [-2, "BINARY"] : [1, "CHAR"];
    case T.VARCHAR:
    case T.VAR_STRING:
      return binary ? [-3, "VARBINARY"] : [12, "VARCHAR"];
    case T.TINY_BLOB:
    case T.MEDIUM_BLOB:
    case T.LONG_BLOB:
    case T.BLOB:
      return binary ? [-4, "BLOB"] : [-1, "TEXT"];
    default:
      return [1111, "UNKNOWN"];
  }
}

function columnMetadata(f: MysqlField): ColumnMetadata {
  const [type, baseName] = jdbcType(f);
  const unsigned = (f.flags & FLAG_UNSIGNED) !== 0;
  const numeric =
    INTEGER_TYPES.has(f.columnType) || DECIMAL_TYPES.has(f.columnType) || type === 7 || type === 8;
  return {
    name: f.orgName || f.name,
    type,
    typeName: unsigned && numeric ? `${baseName} UNSIGNED` : baseName,
    label: f.name,
    schemaName: f.schema ?? f.db ?? "",
    tableName: f.orgTable ?? "",
    isAutoIncrement: (f.flags & FLAG_AUTO_INCREMENT) !== 0,
    isSigned: numeric && !unsigned,
    isCurrency: false,
    isCaseSensitive: f.characterSet === BINARY_CHARSET && !numeric,
    nullable: f.orgTable ? ((f.flags & FLAG_NOT_NULL) !== 0 ? 0 : 1) : 1,
    // DECIMAL's length counts the sign and the point; JDBC reports the digits
    precision: DECIMAL_TYPES.has(f.columnType)
      ? f.columnLength - (f.decimals > 0 ? 1 : 0) - (unsigned ? 0 : 1)
      : f.columnLength,
    scale: f.decimals,
    arrayBaseColumnType: 0,
  };
}

/** Aurora MySQL's Data API reports SQL errors as `Database error code: N. Message: …` (see docs: a guess for v2). */
export function formatMysqlError(error: { errno?: number; sqlMessage?: string; message: string }): string {
  return `Database error code: ${error.errno ?? 0}. Message: ${error.sqlMessage ?? error.message}.`;
}

type RawRows = (Buffer | null)[][];

class MysqlSession implements Session {
  constructor(
    private readonly connection: mysql.PoolConnection,
    private readonly cancelWith: (threadId: number) => Promise<void>,
  ) {}

  get connectionId(): number {
    return this.connection.threadId;
  }

  async run(statement: CompiledStatement, options: ResultOptions & { withMetadata: boolean }) {
    const [rows, fields] = await this.connection.query({
      sql: statement.sql,
      values: statement.values,
      rowsAsArray: true,
      typeCast: (field: { buffer(): Buffer | null }) => field.buffer(),
    });
    if (!Array.isArray(rows)) {
      const header = rows as mysql.ResultSetHeader;
      const insertId = BigInt(header.insertId ?? 0);
      return {
        numberOfRecordsUpdated: header.affectedRows,
        generatedFields: insertId > 0n ? [{ longValue: insertId }] : [],
      } satisfies StatementResult;
    }
    const columns = (fields ?? []) as unknown as MysqlField[];
    const result: StatementResult = {
      numberOfRecordsUpdated: 0,
      generatedFields: [],
      records: (rows as unknown as RawRows).map((row) =>
        row.map((value, i) => decode(columns[i] as MysqlField, value, options)),
      ),
      columnNames: columns.map((c) => c.name),
      jsonColumns: columns.map((c) => c.columnType === T.JSON),
    };
    if (options.withMetadata) result.columns = columns.map(columnMetadata);
    return result;
  }

  async exec(sql: string): Promise<void> {
    await this.connection.query(sql);
  }

  cancel(): Promise<void> {
    return this.cancelWith(this.connectionId);
  }

  release(destroy = false): void {
    if (destroy) this.connection.destroy();
    else this.connection.release();
  }
}

export class MysqlEngine implements Engine {
  readonly kind = "aurora-mysql";
  private readonly pools = new Map<string, mysql.Pool>();

  constructor(private readonly config: MysqlTargetConfig) {}

  compile(sql: string, parameters: Parameters<Engine["compile"]>[1]): CompiledStatement {
    const tokens = tokenize(sql, "mysql");
    const refused = mariadbOnlySyntax(tokens);
    if (refused) {
      // what MySQL 8.0 answers for syntax it does not know (ER_PARSE_ERROR), plus why
      throw new DataApiError(
        "DatabaseErrorException",
        `Database error code: 1064. Message: You have an error in your SQL syntax (aurora-mysql is MySQL 8.0: ${refused}).`,
      );
    }
    return bindMysql(tokens, parameters, (value) =>
      mysql.escape(value as Parameters<typeof mysql.escape>[0]),
    );
  }

  private pool(database: string): mysql.Pool {
    let pool = this.pools.get(database);
    if (!pool) {
      pool = mysql.createPool({
        host: this.config.host,
        port: this.config.port,
        user: this.config.user,
        password: this.config.password,
        database,
        ...(this.config.ssl ? { ssl: this.config.ssl } : {}),
        connectionLimit: this.config.poolSize ?? 10,
        supportBigNumbers: true,
        bigNumberStrings: true,
        charset: "utf8mb4",
        timezone: "Z",
      });
      pool.pool.on("connection", (connection) => {
        connection.query(`SET SESSION sql_mode = '${MYSQL8_SQL_MODE}', time_zone = '+00:00'`);
      });
      this.pools.set(database, pool);
    }
    return pool;
  }

  async acquire(database: string): Promise<Session> {
    const connection = await this.pool(database).getConnection();
    return new MysqlSession(connection, (threadId) => this.killQuery(threadId));
  }

  private async killQuery(threadId: number): Promise<void> {
    const { host, port, user, password, ssl } = this.config;
    const connection = await mysql.createConnection({ host, port, user, password, ...(ssl ? { ssl } : {}) });
    try {
      await connection.query(`KILL QUERY ${Number(threadId)}`);
    } finally {
      await connection.end();
    }
  }

  mapError(error: unknown): DataApiError {
    if (error instanceof DataApiError) return error;
    const e = error as {
      errno?: number;
      sqlMessage?: string;
      sqlState?: string;
      code?: string;
      message?: string;
    };
    if (e.sqlMessage !== undefined) {
      const message = formatMysqlError({ ...e, message: e.message ?? "" });
      return new DataApiError(
        e.errno === 1049 ? "DatabaseNotFoundException" : "DatabaseErrorException",
        message,
      );
    }
    if (typeof e.code === "string" && (/^E[A-Z]+$/.test(e.code) || e.code.startsWith("PROTOCOL_"))) {
      return new DataApiError("DatabaseUnavailableException", `Communications link failure: ${e.message}`);
    }
    return new DataApiError("InternalServerErrorException", e.message ?? String(error));
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }
}
