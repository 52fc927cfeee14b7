// Aurora MySQL is MySQL 8.0; locally it runs on MariaDB, which accepts more. This refuses the
// MariaDB-only syntax MySQL 8.0 rejects, so SQL that passes here does not fail on Aurora. Pure.
import { significantTokens, type Token } from "./tokenizer.ts";

/** Why MySQL 8.0 would reject this statement, or undefined when nothing MariaDB-only was found. */
export function mariadbOnlySyntax(tokens: readonly Token[]): string | undefined {
  const t = significantTokens(tokens);
  const word = (i: number): string | undefined => (t[i]?.kind === "word" ? t[i]?.text : undefined);
  const first = word(0);
  const isDdl = first === "CREATE" || first === "ALTER";
  for (let i = 0; i < t.length; i++) {
    const w = word(i);
    if (w === undefined) continue;
    const next = word(i + 1);
    if (w === "RETURNING") return "RETURNING is MariaDB/PostgreSQL syntax; MySQL 8.0 has no RETURNING clause";
    if (w === "SEQUENCE" && (first === "CREATE" || first === "ALTER" || first === "DROP")) {
      return "sequences (CREATE/ALTER/DROP SEQUENCE) are MariaDB-only; MySQL 8.0 uses AUTO_INCREMENT";
    }
    if ((w === "NEXTVAL" || w === "LASTVAL" || w === "SETVAL") && t[i + 1]?.text === "(") {
      return `${w}() is a MariaDB sequence function; MySQL 8.0 has no sequences`;
    }
    if ((w === "NEXT" || w === "PREVIOUS") && next === "VALUE" && word(i + 2) === "FOR") {
      return `${w} VALUE FOR is MariaDB sequence syntax; MySQL 8.0 has no sequences`;
    }
    if (w === "CREATE" && next === "OR" && word(i + 2) === "REPLACE" && word(i + 3) !== "VIEW") {
      return `CREATE OR REPLACE ${word(i + 3) ?? ""} is MariaDB-only; MySQL 8.0 allows it for views only`.trim();
    }
    if (w === "IF" && (next === "EXISTS" || (next === "NOT" && word(i + 2) === "EXISTS"))) {
      const alterTable = first === "ALTER";
      const index = t.slice(0, i).some((x) => x.kind === "word" && x.text === "INDEX") && first !== "ALTER";
      if (alterTable || index) {
        return "IF [NOT] EXISTS in ALTER TABLE or CREATE/DROP INDEX is MariaDB-only; MySQL 8.0 rejects it";
      }
    }
    if (w === "SYSTEM" && next === "VERSIONING") return "system-versioned tables are MariaDB-only";
    if (w === "FETCH" && (next === "FIRST" || next === "NEXT")) {
      return "FETCH FIRST/NEXT … ROWS is MariaDB-only; MySQL 8.0 uses LIMIT";
    }
    if (isDdl && (w === "INET4" || w === "INET6") && inTypePosition(t, i))
      return `the ${w} data type is MariaDB-only`;
    if (isDdl && w === "UUID" && t[i + 1]?.text !== "(" && inTypePosition(t, i)) {
      return "the UUID data type is MariaDB-only; MySQL 8.0 stores UUIDs as CHAR(36) or BINARY(16)";
    }
  }
  return undefined;
}

const notColumnNames = new Set([
  "TABLE",
  "COLUMN",
  "ADD",
  "EXISTS",
  "MODIFY",
  "DROP",
  "CHANGE",
  "INDEX",
  "KEY",
  "AS",
]);

/** True when token i stands where a column's data type goes: `(name TYPE`, `, name TYPE`, `ADD name TYPE`. */
function inTypePosition(t: readonly Token[], i: number): boolean {
  const prev = t[i - 1];
  const before = t[i - 2];
  if (!prev || !before) return false;
  if (prev.kind !== "quotedIdent" && !(prev.kind === "word" && !notColumnNames.has(prev.text))) return false;
  return (
    before.text === "(" ||
    before.text === "," ||
    (before.kind === "word" && ["COLUMN", "ADD", "MODIFY", "CHANGE"].includes(before.text)) ||
    (t[i - 3]?.kind === "word" && t[i - 3]?.text === "CHANGE")
  );
}
