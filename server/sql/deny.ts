// What the SQL editor refuses to run, matched on the lexed statement (outside strings and comments,
// case-insensitive, quoted identifiers included). Defence in depth: the project's owner role is what
// really bounds a statement (NOSUPERUSER, no CREATEROLE/CREATEDB, no server-file functions), and a
// function body (a string to the lexer) or dynamic SQL inside one is not looked into here.
import type { Token } from "./lexer";

export interface Denial {
  /** A stable name for the rule, e.g. "copy_program". */
  rule: string;
  /** Why, in words, naming what was found. */
  reason: string;
}

/** Extensions the editor may create, alter and drop (trusted ones a database owner may add anyway). */
export const ALLOWED_EXTENSIONS = ["vector", "pgcrypto", "pg_trgm", "citext", "uuid-ossp", "hstore"];

/** Functions that reach the server's files, its configuration, other sessions or other databases. */
const SERVER_FUNCTIONS = new Set([
  "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_dir", "pg_logdir_ls",
  "lo_import", "lo_export",
  "pg_reload_conf", "pg_rotate_logfile", "pg_terminate_backend", "pg_cancel_backend", "pg_signal_backend",
  "pg_promote", "pg_switch_wal", "pg_create_restore_point", "pg_backup_start", "pg_backup_stop", "pg_start_backup", "pg_stop_backup",
]);
const SERVER_FUNCTION_PREFIXES = ["dblink", "pg_ls_", "pg_read_", "pg_file_", "pg_logical_", "pg_replication_"];

type Rule = { name: string; check: (t: Token[]) => string | undefined };

const RULES: Rule[] = [
  { name: "copy_program", check: (t) => (isCopy(t) && followsToOrFrom(t, (x) => isWord(x, "program")) ? "COPY … PROGRAM runs a program on the database server" : undefined) },
  { name: "copy_file", check: (t) => (isCopy(t) && followsToOrFrom(t, (x) => x?.kind === "string") ? "COPY … TO/FROM a file reads or writes the database server's files" : undefined) },
  {
    name: "copy_stdio",
    check: (t) => (isCopy(t) ? "COPY … FROM STDIN / TO STDOUT needs a streaming client; use psql with the project's connection string" : undefined),
  },
  { name: "do", check: (t) => (isWord(t[0], "do") ? "DO blocks are not run here; create a function and call it" : undefined) },
  {
    name: "role_ddl",
    check: (t) => (isDdlOf(t, ["role", "user", "group"]) ? "CREATE/ALTER/DROP ROLE, USER or GROUP: database users are managed under the project's Database users" : undefined),
  },
  { name: "database_ddl", check: (t) => (isDdlOf(t, ["database"]) ? "CREATE/ALTER/DROP DATABASE: a project has one database, managed by AtlasHub" : undefined) },
  { name: "extension", check: extensionOutsideAllowlist },
  { name: "alter_system", check: (t) => (isWord(t[0], "alter") && isWord(t[1], "system") ? "ALTER SYSTEM changes the server's configuration" : undefined) },
  { name: "load", check: (t) => (isWord(t[0], "load") ? "LOAD loads a shared library into the server" : undefined) },
  { name: "set_role", check: setsRole },
  { name: "server_function", check: callsServerFunction },
];

/** The first rule the statement breaks, or undefined when it may run. */
export function findDenial(statement: Token[]): Denial | undefined {
  for (const rule of RULES) {
    const reason = rule.check(statement);
    if (reason) return { rule: rule.name, reason };
  }
  return undefined;
}

const word = (t: Token | undefined) => (t?.kind === "word" ? t.value.toLowerCase() : undefined);
const isWord = (t: Token | undefined, ...values: string[]) => values.includes(word(t) ?? "");
const isSymbol = (t: Token | undefined, value: string) => t?.kind === "symbol" && t.value === value;

const isCopy = (t: Token[]) => isWord(t[0], "copy");

/** COPY's TO or FROM followed by what `target` accepts (a word PROGRAM, a file name string). */
function followsToOrFrom(t: Token[], target: (x: Token | undefined) => boolean) {
  return t.some((x, i) => isWord(x, "to", "from") && target(t[i + 1]));
}

const isDdlOf = (t: Token[], objects: string[]) => isWord(t[0], "create", "alter", "drop") && isWord(t[1], ...objects);

function extensionOutsideAllowlist(t: Token[]) {
  if (!isDdlOf(t, ["extension"])) return undefined;
  const names = extensionNames(t.slice(2), isWord(t[0], "drop"));
  const other = names.length === 0 ? "(none named)" : names.find((n) => !ALLOWED_EXTENSIONS.includes(n));
  if (other === undefined) return undefined;
  return `extension ${other} is not one the SQL editor manages (allowed: ${ALLOWED_EXTENSIONS.join(", ")})`;
}

/** The names after EXTENSION [IF [NOT] EXISTS]; DROP takes a comma-separated list. */
function extensionNames(rest: Token[], list: boolean) {
  let i = 0;
  while (isWord(rest[i], "if", "not", "exists")) i++;
  const names: string[] = [];
  while (rest[i]?.kind === "word") {
    names.push(word(rest[i])!);
    if (!list || !isSymbol(rest[i + 1], ",")) break;
    i += 2;
  }
  return names;
}

const SET_ROLE = /^(set( session| local)? (role|session authorization)|reset (role|session authorization))( |$)/;

/** SET [SESSION|LOCAL] ROLE / SESSION AUTHORIZATION, RESET ROLE, or set_config() of either. */
function setsRole(t: Token[]) {
  const lead = t.slice(0, 4).map((x) => word(x) ?? "").join(" ");
  if (SET_ROLE.test(lead)) return "SET ROLE and SET SESSION AUTHORIZATION switch to another role";
  if (t.some((x, i) => isWord(x, "set_config") && !setsHarmlessSetting(t.slice(i + 1)))) {
    return "set_config() of role or session_authorization (or of a setting not named by a plain string) switches to another role";
  }
  return undefined;
}

/** set_config('name', …) with a plain string literal name other than role and session_authorization. */
function setsHarmlessSetting(args: Token[]) {
  const [open, name, comma] = args;
  if (!isSymbol(open, "(") || name?.kind !== "string" || !name.plain || !isSymbol(comma, ",")) return false;
  return !["role", "session_authorization"].includes(name.value.trim().toLowerCase());
}

function callsServerFunction(t: Token[]) {
  const found = t.map(word).find((w) => w !== undefined && (SERVER_FUNCTIONS.has(w) || SERVER_FUNCTION_PREFIXES.some((p) => w.startsWith(p)) || w.includes("replication_slot")));
  return found ? `${found}() reaches the server's files, processes or other databases` : undefined;
}
