// Request and response shapes of the five Data API operations (restJson1, POST /<Op>), one zod
// schema per request as the @aws-sdk/client-rds-data model defines it.
import { z } from "zod";

const arn = z.string().min(1).max(100);

export const fieldSchema = z
  .object({
    isNull: z.boolean().optional(),
    booleanValue: z.boolean().optional(),
    longValue: z.number().int().optional(),
    doubleValue: z.number().optional(),
    stringValue: z.string().optional(),
    blobValue: z.string().optional(), // base64 on the wire
    arrayValue: z.unknown().optional(),
  })
  .strict();

export const typeHintSchema = z.enum(["DATE", "DECIMAL", "JSON", "TIME", "TIMESTAMP", "UUID"]);
export type TypeHint = z.infer<typeof typeHintSchema>;

export const sqlParameterSchema = z.object({
  name: z.string().optional(),
  value: fieldSchema.optional(),
  typeHint: typeHintSchema.optional(),
});
export type SqlParameter = z.infer<typeof sqlParameterSchema>;

const common = {
  resourceArn: arn,
  secretArn: arn,
  database: z.string().max(64).optional(),
  schema: z.string().max(64).optional(),
};

export const executeStatementRequestSchema = z.object({
  ...common,
  sql: z.string().max(65536),
  parameters: z.array(sqlParameterSchema).optional(),
  transactionId: z.string().max(192).optional(),
  includeResultMetadata: z.boolean().optional(),
  continueAfterTimeout: z.boolean().optional(),
  resultSetOptions: z
    .object({
      decimalReturnType: z.enum(["STRING", "DOUBLE_OR_LONG"]).optional(),
      longReturnType: z.enum(["STRING", "LONG"]).optional(),
    })
    .optional(),
  formatRecordsAs: z.enum(["NONE", "JSON"]).optional(),
});
export type ExecuteStatementRequest = z.infer<typeof executeStatementRequestSchema>;

export const batchExecuteStatementRequestSchema = z.object({
  ...common,
  sql: z.string().max(65536),
  parameterSets: z.array(z.array(sqlParameterSchema)).optional(),
  transactionId: z.string().max(192).optional(),
});
export type BatchExecuteStatementRequest = z.infer<typeof batchExecuteStatementRequestSchema>;

export const beginTransactionRequestSchema = z.object(common);
export type BeginTransactionRequest = z.infer<typeof beginTransactionRequestSchema>;

export const endTransactionRequestSchema = z.object({
  resourceArn: arn,
  secretArn: arn,
  transactionId: z.string().min(0).max(192),
});
export type EndTransactionRequest = z.infer<typeof endTransactionRequestSchema>;

/** A result value. `longValue` is a bigint so 64-bit values stay exact until serialisation. */
export type OutField =
  | { isNull: true }
  | { booleanValue: boolean }
  | { longValue: bigint }
  | { doubleValue: number }
  | { stringValue: string }
  | { blobValue: string }
  | { arrayValue: OutArray };
export type OutArray =
  | { booleanValues: boolean[] }
  | { longValues: bigint[] }
  | { doubleValues: number[] }
  | { stringValues: string[] }
  | { arrayValues: OutArray[] };

export interface ColumnMetadata {
  name: string;
  type: number;
  typeName: string;
  label: string;
  schemaName: string;
  tableName: string;
  isAutoIncrement: boolean;
  isSigned: boolean;
  isCurrency: boolean;
  isCaseSensitive: boolean;
  nullable: number;
  precision: number;
  scale: number;
  arrayBaseColumnType: number;
}

export interface ResultOptions {
  longAsString: boolean;
  decimalAsNumber: boolean;
}

/** What an engine returns for one statement, already encoded as Data API fields. */
export interface StatementResult {
  /** present when the statement produced a result set */
  records?: OutField[][];
  /** names of the result columns, and which hold JSON (embedded as JSON in `formattedRecords`) */
  columnNames?: string[];
  jsonColumns?: boolean[];
  /** only when metadata was asked for */
  columns?: ColumnMetadata[];
  numberOfRecordsUpdated: number;
  generatedFields: OutField[];
}

const marker = `__kwc_bigint_${Math.random().toString(36).slice(2)}__`;

/** JSON with bigints written as exact digits (JSON.rawJSON needs Node 21). */
export function stringifyExact(value: unknown): string {
  const json = JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? `${marker}${v}` : v));
  return json.replace(new RegExp(`"${marker}(-?\\d+)"`, "g"), "$1");
}
