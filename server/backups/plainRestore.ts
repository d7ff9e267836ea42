// Restoring a plain-format SQL dump without psql: its statements, read by plainScript.ts, are run one
// by one as a stand-in for the project's owner role (server/projects/standIn.ts) — never the
// superuser, nor with the owner as session user, so whatever the file says (SET ROLE,
// ALTER ROLE … SUPERUSER, COPY … TO PROGRAM) it can do no more than the project's owner may — each
// through the extended protocol (one statement per message: Postgres refuses two), and its COPY data
// streamed into COPY … FROM STDIN. What pg_restore's options leave out, left out here the same way:
//   --no-owner        ALTER … OWNER TO: everything belongs to the owner role that restores it;
//   extensions        CREATE EXTENSION, COMMENT ON EXTENSION and CREATE SCHEMA of an extension's own
//                     schema: made beforehand by the superuser (createRestoreDatabase);
//   privileges        GRANT / REVOKE / ALTER DEFAULT PRIVILEGES: as RestoreTarget.privileges says
//                     ("none": left out; a mapping: the source project's owner/app/ro renamed to the
//                     target's, as policies are), and a grant naming any role outside the target
//                     project (another installation's, another project's) or a system object
//                     (pg_catalog) is left out;
//   --no-tablespaces, --no-security-labels, --no-subscriptions: SET default_tablespace, SECURITY
//                     LABEL, CREATE/ALTER SUBSCRIPTION are left out.
// A statement that fails stops the restore with its line in the reason.
import postgres from "postgres";
import type { Writable } from "node:stream";
import type { PgConnectionInfo } from "../engines/postgres/engine";
import { lex, type Token } from "../sql/lexer";
import type { RestoreTarget } from "./pgRestore";
import type { ExtensionEntry } from "./snapshot";
import { BackupFailure, describeDuration } from "./failure";
import { readScript, ScriptRefused, type ScriptInfo } from "./plainScript";
import { connectStandIn } from "../projects/standIn";

export interface PlainScriptSummary {
  extensions: ExtensionEntry[];
  /** The project whose owner role the dump's objects belonged to (`ALTER … OWNER TO p_<id>_owner`), if any. */
  sourceProject?: string;
  pgDumpVersion?: string;
  statements: number;
}

/**
 * Reads the whole script once (streamed) as a restore would, without running anything: throws
 * ScriptRefused for what no restore would run, else says which extensions it creates.
 */
export async function scanPlainScript(body: ReadableStream<Uint8Array>): Promise<PlainScriptSummary> {
  const info: ScriptInfo = {};
  const extensions: ExtensionEntry[] = [];
  let sourceProject: string | undefined;
  let statements = 0;
  for await (const item of readScript(body, info)) {
    if (item.kind !== "statement") continue;
    statements++;
    const ext = createdExtension(item.tokens);
    if (ext && !extensions.some((e) => e.name === ext.name)) extensions.push(ext);
    sourceProject ??= ownerTarget(item.tokens)?.match(/^p_([a-z0-9]+)_owner$/)?.[1];
  }
  return { extensions, sourceProject, pgDumpVersion: info.dumpedBy, statements };
}

/**
 * Runs the script `open()` streams into `target.database` as `target.role` (see the top of this file).
 * Each statement (a COPY with all its data) may run `statementTimeoutMs`: past it its session is
 * ended and the restore fails. That bound is kept here, not by statement_timeout, which the script
 * may SET as it likes (and a PL/pgSQL block can catch a cancel; it cannot catch its session's end).
 */
export async function restorePlainScript(
  connection: PgConnectionInfo,
  open: (signal: AbortSignal) => ReadableStream<Uint8Array>,
  target: RestoreTarget,
  extensions: ExtensionEntry[],
  signal: AbortSignal,
  statementTimeoutMs: number,
) {
  signal.throwIfAborted();
  const targetProject = /^p_([a-z0-9]+)_owner$/.exec(target.standIn.role)?.[1];
  if (!targetProject) throw new BackupFailure(`${target.standIn.role} is not a project's owner role`);
  const policy: Policy = { privileges: target.privileges, targetProject, extensionSchemas: new Set(extensions.map((e) => e.schema).filter((s) => s !== "public")) };
  // The owner role's own statement_timeout (30 s) would cut off a large COPY or index build.
  const sql = connectStandIn(connection, target.standIn, target.database, { statement_timeout: 0, lock_timeout: 0, idle_in_transaction_session_timeout: 0, application_name: "atlashub-restore" });
  const input = new AbortController();
  const stop = () => void sql.end({ timeout: 0 });
  signal.addEventListener("abort", stop, { once: true });
  let copy: CopyIn | undefined;
  const deadline = new Deadline(connection, statementTimeoutMs);
  try {
    deadline.pid = (await sql<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
    for await (const item of readScript(open(AbortSignal.any([signal, input.signal])))) {
      signal.throwIfAborted();
      if (item.kind === "copy-data") await deadline.bound(copy!.write(item.data));
      else if (item.kind === "copy-end") {
        await deadline.bound(copy!.end());
        deadline.clear();
        copy = undefined;
      } else if (item.copy) {
        deadline.start(item.line);
        copy = await deadline.bound(openCopy(sql, item.text, item.line));
      } else {
        const text = planStatement(item.tokens, item.text, policy);
        if (text === undefined) continue;
        deadline.start(item.line);
        await deadline.bound(run(sql, text, item.line));
        deadline.clear();
      }
    }
  } catch (err) {
    signal.throwIfAborted();
    if (err instanceof ScriptRefused) throw new BackupFailure(`the script was refused at ${err.message}`);
    throw err;
  } finally {
    signal.removeEventListener("abort", stop);
    input.abort();
    deadline.clear();
    copy?.destroy();
    await sql.end({ timeout: deadline.expired ? 0 : 5 });
    await deadline.ended;
  }
}

/**
 * The time the statement being run has left. When it runs out, whatever is awaited through bound()
 * rejects with the statement's line, and the restore's session is ended by the superuser from its
 * maintenance database (not by the stand-in, whose session the script holds), so no
 * backend is left running it.
 */
class Deadline {
  pid: number | undefined;
  expired = false;
  ended: Promise<unknown> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private expire: ((err: Error) => void) | undefined;
  private readonly over: Promise<never>;

  constructor(
    private readonly superuser: PgConnectionInfo,
    private readonly ms: number,
  ) {
    this.over = new Promise<never>((_, reject) => (this.expire = reject));
    this.over.catch(() => {});
  }

  start(line: number) {
    this.clear();
    this.timer = setTimeout(() => {
      this.expired = true;
      this.ended = this.terminate().catch(() => {});
      this.expire!(new BackupFailure(`the script's statement at line ${line} ran longer than ${describeDuration(this.ms)} (ATLASHUB_RESTORE_STATEMENT_TIMEOUT) and was stopped`));
    }, this.ms);
  }

  clear() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  bound<T>(work: Promise<T>): Promise<T> {
    if (this.expired) return this.over;
    work.catch(() => {});
    return Promise.race([work, this.over]);
  }

  private async terminate() {
    if (this.pid === undefined) return;
    const sql = postgres({
      ...this.superuser,
      max: 1,
      connect_timeout: 10,
      onnotice: () => {},
      connection: { application_name: "atlashub-restore-stop" },
    });
    try {
      await sql`select pg_terminate_backend(${this.pid}::int, 10000)`;
    } finally {
      await sql.end({ timeout: 5 });
    }
  }
}


async function run(sql: postgres.Sql, text: string, line: number) {
  try {
    // Extended protocol: one statement per message, and no result rows held (forEach drops them).
    await sql.unsafe(text, [], { simple: false, prepare: false } as never).forEach(() => {});
  } catch (err) {
    throw new BackupFailure(`the script failed at line ${line}: ${describe(err)}`);
  }
}

function describe(err: unknown) {
  const e = err as { message: string; detail?: string };
  return e.detail ? `${e.message} (${e.detail})` : e.message;
}

interface CopyIn {
  write(data: string): Promise<void>;
  end(): Promise<void>;
  destroy(): void;
}

/**
 * COPY … FROM STDIN through postgres.js's writable. An error the server sends reaches only the
 * query's reject (see copyIn in tableImport.ts), so it is watched there and raced with every wait.
 */
async function openCopy(sql: postgres.Sql, text: string, line: number): Promise<CopyIn> {
  const query = sql.unsafe(text) as unknown as { reject: (err: unknown) => void; writable(): Promise<Writable> };
  let error: unknown;
  let failed!: (err: unknown) => void;
  const failure = new Promise<never>((_, reject) => (failed = reject));
  failure.catch(() => {});
  const reject = query.reject;
  query.reject = (err) => {
    error ??= err;
    failed(err);
    reject(err);
  };
  const fail = (err: unknown): never => {
    // "COPY items, line 5, column name: …": the file's own line is the COPY's plus that one.
    const row = Number(/COPY [^,]+, line (\d+)/.exec((err as { where?: string }).where ?? "")?.[1]);
    throw new BackupFailure(`the script failed at line ${row ? line + row : line}: ${describe(err)}`);
  };
  let writable: Writable;
  try {
    writable = await Promise.race([query.writable(), failure]);
  } catch (err) {
    return fail(err);
  }
  writable.on("error", (err) => failed(err));
  return {
    async write(data) {
      if (error) fail(error);
      if (writable.write(data)) return;
      await Promise.race([new Promise((resolve) => writable.once("drain", resolve)), failure]).catch(fail);
    },
    async end() {
      if (error) fail(error);
      await Promise.race([new Promise<void>((resolve) => writable.end(resolve)), failure]).catch(fail);
    },
    destroy() {
      if (!writable.writableFinished) writable.destroy();
    },
  };
}

// ---- what runs ----------------------------------------------------------------------------------

interface Policy {
  privileges: RestoreTarget["privileges"];
  targetProject: string;
  extensionSchemas: Set<string>;
}

const words = (tokens: Token[]) => tokens.map((t) => (t.kind === "word" && !t.quoted ? t.value : ""));
const startsWith = (w: string[], ...prefix: string[]) => prefix.every((p, i) => w[i] === p);
const SPECIAL_ROLES = new Set(["public", "current_user", "session_user", "current_role"]);

/** The text to run for a statement (renamed when privileges are mapped), or undefined to leave it out. */
export function planStatement(tokens: Token[], text: string, policy: Policy): string | undefined {
  const w = words(tokens);
  if (createdExtension(tokens) || startsWith(w, "comment", "on", "extension")) return undefined;
  if (startsWith(w, "create", "schema")) {
    const at = startsWith(w, "create", "schema", "if", "not", "exists") ? 5 : 2;
    if (tokens[at]?.kind === "word" && policy.extensionSchemas.has(tokens[at]!.value)) return undefined;
  }
  if (ownerTarget(tokens) !== undefined) return undefined;
  if (startsWith(w, "set", "default_tablespace") || startsWith(w, "security", "label")) return undefined;
  if (/^(create|alter|drop)$/.test(w[0]!) && w[1] === "subscription") return undefined;
  const grant = w[0] === "grant" || w[0] === "revoke" || startsWith(w, "alter", "default", "privileges");
  const policyStatement = (w[0] === "create" || w[0] === "alter") && w[1] === "policy";
  if (!grant && !policyStatement) return text;
  if (grant && (policy.privileges === "none" || w.includes("pg_catalog"))) return undefined;
  const mapping = typeof policy.privileges === "object" ? policy.privileges : undefined;
  const renamed = mapping ? text.replace(new RegExp(`(?<![A-Za-z0-9_$])p_${mapping.fromProject}_(owner|app|ro)(?![A-Za-z0-9_$])`, "g"), `p_${mapping.toProject}_$1`) : text;
  if (grant) {
    const own = `p_${policy.targetProject}_`;
    const outsider = grantRoles(renamed).some((r) => !(r.quoted ? r.value.startsWith(own) : SPECIAL_ROLES.has(r.value) || r.value.startsWith(own)));
    if (outsider) return undefined;
  }
  return renamed;
}

/** `CREATE EXTENSION [IF NOT EXISTS] name [WITH] [SCHEMA s] …`: the extension and its schema (public when not said). */
function createdExtension(tokens: Token[]): ExtensionEntry | undefined {
  const w = words(tokens);
  if (!startsWith(w, "create", "extension")) return undefined;
  const at = startsWith(w, "create", "extension", "if", "not", "exists") ? 5 : 2;
  const name = tokens[at];
  if (name?.kind !== "word") return undefined;
  const schemaAt = w.indexOf("schema", at + 1);
  const schema = schemaAt > 0 && tokens[schemaAt + 1]?.kind === "word" ? tokens[schemaAt + 1]!.value : "public";
  return { name: name.value, schema };
}

/**
 * `ALTER … OWNER TO role` (pg_dump writes one after each object): the role, else undefined. Not
 * `ALTER TABLE t RENAME [COLUMN] owner TO x`, whose last three words look the same.
 */
function ownerTarget(tokens: Token[]): string | undefined {
  const w = words(tokens);
  const n = tokens.length;
  if (w[0] !== "alter" || n < 4 || w[n - 3] !== "owner" || w[n - 2] !== "to" || tokens[n - 1]!.kind !== "word") return undefined;
  if (["rename", "column", "attribute", "constraint"].includes(w[n - 4]!)) return undefined;
  return tokens[n - 1]!.value;
}

/** The roles a GRANT / REVOKE / ALTER DEFAULT PRIVILEGES names: FOR ROLE …, TO …, FROM …, GRANTED BY …. */
function grantRoles(text: string): Token[] {
  const tokens = lex(text);
  const w = words(tokens);
  const roles: Token[] = [];
  const listAfter = (at: number, stop: string[]) => {
    for (let i = at; i < tokens.length; i++) {
      if (stop.includes(w[i]!)) return;
      if (w[i] === "group" || (tokens[i]!.kind === "symbol" && tokens[i]!.value === ",")) continue;
      if (tokens[i]!.kind === "word") roles.push(tokens[i]!);
    }
  };
  for (let i = 0; i < tokens.length; i++) {
    if ((w[i] === "for" && (w[i + 1] === "role" || w[i + 1] === "user")) && w[0] === "alter") listAfter(i + 2, ["in", "grant", "revoke"]);
    if (w[i] === "to" || w[i] === "from") listAfter(i + 1, ["with", "granted", "cascade", "restrict"]);
    if (w[i] === "granted" && w[i + 1] === "by") listAfter(i + 2, ["cascade", "restrict"]);
  }
  return roles;
}
