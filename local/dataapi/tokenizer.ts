// A small SQL tokenizer, enough to find `:name` parameters and keywords the way the Data API does:
// never inside string literals, quoted identifiers, comments or dollar quotes, and never in a
// PostgreSQL `::` cast or a MySQL `:=` assignment. Pure: no I/O.

export type Dialect = "postgres" | "mysql";

export type TokenKind =
  | "word"
  | "quotedIdent"
  | "string"
  | "param"
  | "comment"
  | "whitespace"
  | "number"
  | "operator";

export interface Token {
  kind: TokenKind;
  text: string;
  /** for `param`: the name without the colon */
  name?: string;
}

const isIdentStart = (c: string | undefined): boolean => c !== undefined && /[A-Za-z_\u0080-\uffff]/.test(c);
const isIdentPart = (c: string | undefined): boolean =>
  c !== undefined && /[A-Za-z0-9_$\u0080-\uffff]/.test(c);
const isSpace = (c: string | undefined): boolean => c !== undefined && /\s/.test(c);
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9";

/** End index (exclusive) of a quoted run starting at `start` (the opening quote). */
function quotedEnd(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslashEscapes && c === "\\") {
      i += 2;
      continue;
    }
    if (c === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return sql.length; // unterminated: the database reports it
}

function blockCommentEnd(sql: string, start: number, nested: boolean): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql.startsWith("/*", i)) {
      depth = nested ? depth + 1 : 1;
      i += 2;
    } else if (sql.startsWith("*/", i)) {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else i++;
  }
  return sql.length;
}

function lineEnd(sql: string, start: number): number {
  const nl = sql.indexOf("\n", start);
  return nl === -1 ? sql.length : nl + 1;
}

/** `$tag$` opener at `start`, or undefined when the `$` starts something else (e.g. `$1`). */
function dollarTag(sql: string, start: number): string | undefined {
  let i = start + 1;
  if (sql[i] === "$") return "$$";
  if (!isIdentStart(sql[i])) return undefined;
  while (isIdentPart(sql[i]) && sql[i] !== "$") i++;
  return sql[i] === "$" ? sql.slice(start, i + 1) : undefined;
}

export function tokenize(sql: string, dialect: Dialect): Token[] {
  const tokens: Token[] = [];
  const push = (kind: TokenKind, start: number, end: number, name?: string): number => {
    const token: Token = { kind, text: sql.slice(start, end) };
    if (name !== undefined) token.name = name;
    tokens.push(token);
    return end;
  };
  const mysql = dialect === "mysql";
  let i = 0;
  while (i < sql.length) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (isSpace(c)) {
      let j = i + 1;
      while (isSpace(sql[j])) j++;
      i = push("whitespace", i, j);
    } else if (c === "-" && next === "-" && (!mysql || isSpace(sql[i + 2]) || i + 2 >= sql.length)) {
      // MySQL needs whitespace after `--` (so `1--1` is arithmetic there)
      i = push("comment", i, lineEnd(sql, i));
    } else if (mysql && c === "#") {
      i = push("comment", i, lineEnd(sql, i));
    } else if (c === "/" && next === "*") {
      i = push("comment", i, blockCommentEnd(sql, i, !mysql)); // PostgreSQL nests block comments
    } else if (c === "'") {
      i = push("string", i, quotedEnd(sql, i, "'", mysql));
    } else if (c === '"') {
      // MySQL (without ANSI_QUOTES): a string; PostgreSQL: an identifier
      i = push(mysql ? "string" : "quotedIdent", i, quotedEnd(sql, i, '"', mysql));
    } else if (mysql && c === "`") {
      i = push("quotedIdent", i, quotedEnd(sql, i, "`", false));
    } else if (!mysql && (c === "E" || c === "e") && next === "'" && !isIdentPart(sql[i - 1])) {
      i = push("string", i, quotedEnd(sql, i + 1, "'", true)); // E'…' escape string
    } else if (!mysql && c === "$" && dollarTag(sql, i) !== undefined) {
      const tag = dollarTag(sql, i) as string;
      const close = sql.indexOf(tag, i + tag.length);
      i = push("string", i, close === -1 ? sql.length : close + tag.length);
    } else if (c === ":") {
      if (next === ":" || next === "=") i = push("operator", i, i + 2);
      else if (isIdentStart(next) && next !== "$") {
        let j = i + 1;
        while (isIdentPart(sql[j]) && sql[j] !== "$") j++;
        i = push("param", i, j, sql.slice(i + 1, j));
      } else i = push("operator", i, i + 1);
    } else if (isIdentStart(c)) {
      let j = i + 1;
      while (isIdentPart(sql[j])) j++;
      i = push("word", i, j);
    } else if (isDigit(c)) {
      let j = i + 1;
      while (isDigit(sql[j]) || sql[j] === "." || isIdentPart(sql[j])) j++;
      i = push("number", i, j);
    } else {
      i = push("operator", i, i + 1);
    }
  }
  return tokens;
}

/**
 * Replaces each `:name` with what `placeholder` returns for it. `placeholder` receives the name and
 * the position of this occurrence among all parameter occurrences (0-based).
 */
export function rewriteParameters(
  tokens: readonly Token[],
  placeholder: (name: string, occurrence: number) => string,
): { sql: string; names: string[] } {
  const names: string[] = [];
  const sql = tokens
    .map((t) => {
      if (t.kind !== "param" || t.name === undefined) return t.text;
      names.push(t.name);
      return placeholder(t.name, names.length - 1);
    })
    .join("");
  return { sql, names };
}

/** The statement's meaningful tokens (no whitespace or comments), words upper-cased: for syntax checks. */
export function significantTokens(tokens: readonly Token[]): Token[] {
  return tokens
    .filter((t) => t.kind !== "whitespace" && t.kind !== "comment")
    .map((t) => (t.kind === "word" ? { ...t, text: t.text.toUpperCase() } : t));
}
