// Turns Data API `SqlParameter`s into driver values, per dialect. Pure.
import { badRequest } from "./errors.ts";
import type { SqlParameter, TypeHint } from "./protocol.ts";
import { type Dialect, rewriteParameters, type Token } from "./tokenizer.ts";

export type BoundValue =
  | { kind: "null"; hint?: TypeHint }
  | { kind: "boolean"; value: boolean }
  | { kind: "long"; value: number }
  | { kind: "double"; value: number }
  | { kind: "string"; value: string; hint?: TypeHint }
  | { kind: "blob"; value: Buffer };

/** Validates one parameter's `Field` (exactly one member; arrays refused as the model documents). */
export function toBoundValue(parameter: SqlParameter): BoundValue {
  const field = parameter.value ?? {};
  const members = Object.entries(field).filter(([, v]) => v !== undefined);
  if (members.length !== 1) {
    throw badRequest(`Parameter ${parameter.name ?? "(unnamed)"} must set exactly one value member`);
  }
  const [member, raw] = members[0] as [string, unknown];
  const hint = parameter.typeHint;
  switch (member) {
    case "isNull":
      if (raw !== true) throw badRequest(`Parameter ${parameter.name}: isNull must be true`);
      return hint ? { kind: "null", hint } : { kind: "null" };
    case "booleanValue":
      return { kind: "boolean", value: raw as boolean };
    case "longValue":
      return { kind: "long", value: raw as number };
    case "doubleValue":
      return { kind: "double", value: raw as number };
    case "stringValue":
      return hint ? { kind: "string", value: raw as string, hint } : { kind: "string", value: raw as string };
    case "blobValue":
      return { kind: "blob", value: Buffer.from(raw as string, "base64") };
    case "arrayValue":
      throw badRequest("Array parameters are not supported.");
    default:
      throw badRequest(`Unknown value member ${member}`);
  }
}

function parameterMap(parameters: readonly SqlParameter[]): Map<string, BoundValue> {
  const byName = new Map<string, BoundValue>();
  for (const p of parameters) {
    if (!p.name) throw badRequest("Parameter name is required");
    byName.set(p.name, toBoundValue(p));
  }
  return byName;
}

const pgHintCast: Record<TypeHint, string> = {
  DATE: "date",
  TIME: "time",
  TIMESTAMP: "timestamp",
  DECIMAL: "numeric",
  JSON: "json",
  UUID: "uuid",
};

function pgPlaceholder(index: number, value: BoundValue): string {
  const n = `$${index}`;
  switch (value.kind) {
    case "long":
      return `${n}::int8`;
    case "double":
      return `${n}::float8`;
    case "boolean":
      return `${n}::boolean`;
    case "blob":
      return `${n}::bytea`;
    case "string":
      // an unhinted string is bound like JDBC setString: varchar (so a uuid column needs the hint)
      return `${n}::${value.hint ? pgHintCast[value.hint] : "varchar"}`;
    case "null":
      return value.hint ? `${n}::${pgHintCast[value.hint]}` : n;
  }
}

function driverValue(value: BoundValue): unknown {
  switch (value.kind) {
    case "null":
      return null;
    case "long":
    case "double":
      return value.value;
    default:
      return value.value;
  }
}

const missing = (name: string) => badRequest(`No value specified for parameter: ${name}`);

/** PostgreSQL: `:name` → `$n::type`, one `$n` per distinct name. */
export function bindPostgres(tokens: readonly Token[], parameters: readonly SqlParameter[]) {
  const byName = parameterMap(parameters);
  const indexOf = new Map<string, number>();
  const values: unknown[] = [];
  const { sql } = rewriteParameters(tokens, (name) => {
    const value = byName.get(name);
    if (!value) throw missing(name);
    let index = indexOf.get(name);
    if (index === undefined) {
      values.push(driverValue(value));
      index = values.length;
      indexOf.set(name, index);
    }
    return pgPlaceholder(index, value);
  });
  return { sql, values };
}

const mysqlHintCast: Partial<Record<TypeHint, string>> = {
  DATE: "DATE",
  TIME: "TIME(6)",
  TIMESTAMP: "DATETIME(6)",
};

/**
 * MySQL: `:name` → `?` per occurrence (a repeated name binds its value again). With `literal`, the
 * escaped value is written in place of the `?` instead (the driver's own `?` substitution does not
 * skip string literals, so a `'?'` in the SQL would take a value).
 */
export function bindMysql(
  tokens: readonly Token[],
  parameters: readonly SqlParameter[],
  literal?: (value: unknown) => string,
) {
  const byName = parameterMap(parameters);
  const values: unknown[] = [];
  const { sql } = rewriteParameters(tokens, (name) => {
    const value = byName.get(name);
    if (!value) throw missing(name);
    let placeholder = "?";
    if (literal) placeholder = literal(driverValue(value));
    else values.push(driverValue(value));
    const cast =
      (value.kind === "string" || value.kind === "null") && value.hint && mysqlHintCast[value.hint];
    return cast ? `CAST(${placeholder} AS ${cast})` : placeholder;
  });
  return { sql, values };
}

export type { Dialect };
