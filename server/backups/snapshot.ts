// What a backup promises about the database: per table a row count and a content checksum, and each
// sequence's position, taken in the very snapshot pg_dump dumps (--snapshot), so a restore can be
// compared with exactly what was dumped. The checksum is the sum over rows of the first 64 bits of
// md5(row as text): independent of row order (no sort, memory stays flat on big tables), and the
// row's text form is pinned by the session settings below, identical on both sides.
import postgres from "postgres";
import type { AppContext } from "../context";
import type { Db } from "../platform/db";

export interface TableChecksum {
  schema: string;
  table: string;
  rows: number;
  checksum: string;
}

export interface SequenceState {
  schema: string;
  name: string;
  last_value: string;
  is_called: boolean;
}

export interface ExtensionEntry {
  name: string;
  schema: string;
}

export interface DatabaseSnapshot {
  tables: TableChecksum[];
  sequences: SequenceState[];
  extensions: ExtensionEntry[];
}

/**
 * A superuser connection into one database for dumping, checksumming and verifying: it reads every
 * table whatever its RLS, without a statement timeout (a big table takes long on a Pi), and with the
 * output settings that fix a row's text form.
 */
export function connectForBackup(ctx: Pick<AppContext, "engine">, database: string) {
  return postgres({
    ...ctx.engine.superuser(),
    database,
    max: 1,
    connect_timeout: 10,
    idle_timeout: 0,
    onnotice: () => {},
    connection: {
      application_name: "atlashub-backup",
      statement_timeout: 0,
      idle_in_transaction_session_timeout: 0,
      TimeZone: "UTC",
      DateStyle: "ISO, YMD",
      IntervalStyle: "postgres",
      extra_float_digits: 1,
      bytea_output: "hex",
      // A superuser session inside the tenant's database: only the system's functions and operators
      // can be meant by the queries here (every table is named with its schema).
      search_path: "pg_catalog",
    },
  });
}

// Ordinary tables of the database's own schemas; the members of extensions are theirs to restore.
// Partitioned parents hold no rows of their own: their partitions are listed.
const USER_RELATIONS = (kind: "r" | "S") => `
  select n.nspname as schema, c.relname as name
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind = '${kind}' and c.relpersistence <> 't'
    and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp_)'
    and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
  order by 1, 2`;

export async function takeSnapshot(db: Db, signal?: AbortSignal): Promise<DatabaseSnapshot> {
  const tables: TableChecksum[] = [];
  for (const { schema, name } of await db.unsafe<{ schema: string; name: string }[]>(USER_RELATIONS("r"))) {
    tables.push({ schema, table: name, ...(await tableChecksum(db, schema, name, signal)) });
  }
  const sequences: SequenceState[] = [];
  for (const { schema, name } of await db.unsafe<{ schema: string; name: string }[]>(USER_RELATIONS("S"))) {
    const [state] = await db<{ last_value: string; is_called: boolean }[]>`select last_value::text, is_called from ${db(schema)}.${db(name)}`;
    sequences.push({ schema, name, ...state! });
  }
  const extensions = await db<ExtensionEntry[]>`
    select e.extname as name, n.nspname as schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace
    where e.extname <> 'plpgsql' order by 1`;
  return { tables, sequences, extensions };
}

/** Row count and checksum of one table. `(r.*)::text`, not `r::text`: a column named like the alias would win. */
export async function tableChecksum(db: Db, schema: string, table: string, signal?: AbortSignal) {
  const query = db<{ rows: string; checksum: string }[]>`
    select count(*) as rows, coalesce(sum(('x' || substr(md5((r.*)::text), 1, 16))::bit(64)::bigint::numeric), 0)::text as checksum
    from ${db(schema)}.${db(table)} as r`;
  const cancel = () => void query.cancel();
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    const [row] = await query;
    return { rows: Number(row!.rows), checksum: row!.checksum };
  } finally {
    signal?.removeEventListener("abort", cancel);
  }
}

/** What differs between two snapshots, as short sentences naming tables (never their contents). */
export function compareSnapshots(expected: DatabaseSnapshot, actual: DatabaseSnapshot): string[] {
  const problems: string[] = [];
  const key = (t: { schema: string; table?: string; name?: string }) => `${t.schema}.${t.table ?? t.name}`;
  const actualTables = new Map(actual.tables.map((t) => [key(t), t]));
  for (const t of expected.tables) {
    const got = actualTables.get(key(t));
    if (!got) problems.push(`table ${key(t)} is missing`);
    else if (got.rows !== t.rows) problems.push(`table ${key(t)} has ${got.rows} rows, expected ${t.rows}`);
    else if (got.checksum !== t.checksum) problems.push(`table ${key(t)} has different contents (checksum)`);
    actualTables.delete(key(t));
  }
  for (const extra of actualTables.keys()) problems.push(`table ${extra} is not in the backup's snapshot`);
  const actualSequences = new Map(actual.sequences.map((s) => [key(s), s]));
  for (const s of expected.sequences) {
    const got = actualSequences.get(key(s));
    if (!got) problems.push(`sequence ${key(s)} is missing`);
    else if (got.last_value !== s.last_value || got.is_called !== s.is_called) problems.push(`sequence ${key(s)} is at ${got.last_value}, expected ${s.last_value}`);
  }
  return problems;
}
