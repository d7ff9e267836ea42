// What a backup promises about the database: per table a row count and a content checksum, and each
// sequence's position, taken in the very snapshot pg_dump dumps (--snapshot), so a restore can be
// compared with exactly what was dumped. The checksum is the sum over rows of the first 64 bits of
// md5(row as text): independent of row order (no sort, memory stays flat on big tables), and the
// row's text form is pinned by the session settings below, identical on both sides.
import postgres from "postgres";
import type { AppContext } from "../context";
import type { Db, Sql } from "../platform/db";
import { connectStandIn, type StandIn } from "../projects/standIn";
import { BackupFailure } from "./failure";

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
 * A superuser connection into one database, for what only a superuser can do there: exporting
 * pg_dump's snapshot, making extensions in an empty database, reading the tables the owner role
 * cannot read whole (describeRelations). Views and foreign tables are refused outright
 * (restrict_nonsystem_relation_kind), only the system's functions and operators can be meant
 * (search_path, and every query names pg_catalog), and the output settings fix a row's text form.
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
      ...SNAPSHOT_SETTINGS,
      application_name: "atlashub-backup",
    },
  });
}

const SNAPSHOT_SETTINGS = {
  statement_timeout: 0,
  lock_timeout: 0,
  idle_in_transaction_session_timeout: 0,
  TimeZone: "UTC",
  DateStyle: "ISO, YMD",
  IntervalStyle: "postgres",
  extra_float_digits: 1,
  bytea_output: "hex",
  search_path: "pg_catalog",
  row_security: "off",
  restrict_nonsystem_relation_kind: "view,foreign-table",
};

/**
 * A stand-in's session for reading a database's tables (describeRelations), as the project's owner
 * role: without a statement timeout (a big table takes long on a Pi), with the output settings that
 * fix a row's text form, and refusing views and foreign tables (a table's name can be taken by a
 * view between its listing and its reading).
 */
function connectForSnapshot(ctx: Pick<AppContext, "engine">, standIn: StandIn, database: string) {
  return connectStandIn(
    ctx.engine.superuser(),
    standIn,
    database,
    { ...SNAPSHOT_SETTINGS, application_name: "atlashub-backup" },
    { idle_timeout: 0 },
  );
}

/** A table or sequence as the transaction's snapshot lists it. */
export interface ListedRelation {
  oid: string;
  schema: string;
  name: string;
  kind: "r" | "S";
  /** The reader's role may read all of it: SELECT granted, and no row-level security applies to it. */
  readable: boolean;
}

// Ordinary tables and sequences of the database's own schemas; the members of extensions are theirs
// to restore. Partitioned parents hold no rows of their own: their partitions are listed.
const LIST_RELATIONS = `
  select c.oid::pg_catalog.text as oid, n.nspname as schema, c.relname as name, c.relkind::pg_catalog.text as kind,
    case when c.relkind = 'r'
      then pg_catalog.has_table_privilege(c.oid, 'SELECT') and not pg_catalog.row_security_active(c.oid)
      else pg_catalog.has_sequence_privilege(c.oid, 'SELECT') end as readable
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'S') and c.relpersistence <> 't'
    and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp_)'
    and not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.objid = c.oid and d.deptype = 'e')
  order by 2, 3`;

/**
 * What `database` holds, and then `during` (pg_dump), in one snapshot read by three sessions: the
 * exporter (the superuser) exports it and holds nothing else; the reader (`standIn`, for the owner
 * role: connectForSnapshot) and the privileged reader (the superuser again) import it. Each table is
 * locked (ACCESS SHARE) by the session that reads it, checked to be the relation listed, read, and
 * the readers' transactions end before `during` starts: a tenant's DROP waiting on one of those
 * locks then waits on nothing of ours, and whatever it puts in the table's place afterwards pg_dump
 * refuses (≥ 15.8, a view) or dumps as it is. The reader reads what the owner may read whole; the
 * superuser only what it cannot (no SELECT granted, or row-level security applying to the owner):
 * it bypasses RLS, so no policy runs, and refuses views.
 */
export async function snapshotDatabase<T>(ctx: Pick<AppContext, "engine">, standIn: StandIn, database: string, during: (snapshot: string) => Promise<T>, signal?: AbortSignal) {
  const exporter = connectForBackup(ctx, database);
  const reader = connectForSnapshot(ctx, standIn, database);
  const privileged = connectForBackup(ctx, database);
  try {
    return await exporter.begin("isolation level repeatable read read only", async (tx) => {
      const [exported] = await tx<{ snapshot: string }[]>`select pg_catalog.pg_export_snapshot() as snapshot`;
      const snapshot = exported!.snapshot;
      if (!/^[0-9A-F-]+$/.test(snapshot)) throw new BackupFailure(`unexpected snapshot id ${snapshot}`);
      const inSnapshot = <U>(sql: Sql, work: (tx: Db) => Promise<U>) =>
        sql.begin("isolation level repeatable read read only", async (t) => {
          await t.unsafe(`set transaction snapshot '${snapshot}'`);
          return work(t);
        }) as Promise<U>;
      const described = await inSnapshot(reader, (r) => inSnapshot(privileged, async (su) => describeRelations(r, su, await lockRelations(r, su), signal)));
      return { snapshot: described, result: await during(snapshot) };
    });
  } finally {
    await Promise.all([exporter, reader, privileged].map((s) => s.end({ timeout: 5 })));
  }
}

/** Lists, locks and describes in one repeatable-read transaction of `sql`'s own (whoever it is). */
export async function takeSnapshot(sql: Sql, signal?: AbortSignal): Promise<DatabaseSnapshot> {
  return sql.begin("isolation level repeatable read read only", async (tx) => describeRelations(tx, tx, await lockRelations(tx, tx), signal));
}

/** Lists the tables and sequences in the snapshot; each table is locked by the session that will read it. */
async function lockRelations(reader: Db, superuser: Db): Promise<ListedRelation[]> {
  const listed = await reader.unsafe<ListedRelation[]>(LIST_RELATIONS);
  for (const r of listed) {
    const by = r.readable ? reader : superuser;
    if (r.kind === "r") await by`lock table only ${by(r.schema)}.${by(r.name)} in access share mode`;
  }
  return listed;
}

/**
 * Row count and checksum of each table, and each sequence's position, in the snapshot. A name that
 * no longer means the relation listed (dropped and made again, or a view now) fails the snapshot
 * rather than describing something else.
 */
async function describeRelations(reader: Db, superuser: Db, listed: ListedRelation[], signal?: AbortSignal): Promise<DatabaseSnapshot> {
  const tables: TableChecksum[] = [];
  const sequences: SequenceState[] = [];
  for (const r of listed) {
    const by = r.readable ? reader : superuser;
    await assertSameRelation(by, r);
    if (r.kind === "r") tables.push({ schema: r.schema, table: r.name, ...(await tableChecksum(by, r.schema, r.name, signal)) });
    else {
      const [state] = await by<{ last_value: string; is_called: boolean }[]>`select last_value::pg_catalog.text, is_called from ${by(r.schema)}.${by(r.name)}`;
      sequences.push({ schema: r.schema, name: r.name, ...state! });
    }
  }
  const extensions = await reader<ExtensionEntry[]>`
    select e.extname as name, n.nspname as schema from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace
    where e.extname <> 'plpgsql' order by 1`;
  return { tables, sequences, extensions };
}

/** The name resolved now (not in the snapshot: catalog lookups see the latest state) must still be the listed relation. */
async function assertSameRelation(tx: Db, r: ListedRelation) {
  const [now] = await tx<{ oid: string | null }[]>`select pg_catalog.to_regclass(pg_catalog.format('%I.%I', ${r.schema}::pg_catalog.text, ${r.name}::pg_catalog.text))::pg_catalog.oid::pg_catalog.text as oid`;
  if (now?.oid !== r.oid) throw new BackupFailure(`${r.kind === "r" ? "table" : "sequence"} ${r.schema}.${r.name} was dropped or replaced while it was being backed up`);
}

/** Row count and checksum of one table. `(r.*)::text`, not `r::text`: a column named like the alias would win. */
export async function tableChecksum(db: Db, schema: string, table: string, signal?: AbortSignal) {
  const query = db<{ rows: string; checksum: string }[]>`
    select pg_catalog.count(*) as rows,
      coalesce(pg_catalog.sum(('x' operator(pg_catalog.||) pg_catalog.substr(pg_catalog.md5((r.*)::pg_catalog.text), 1, 16))::pg_catalog.bit(64)::pg_catalog.int8::pg_catalog.numeric), 0)::pg_catalog.text as checksum
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
    actualTables.delete(key(t));
    if (!got) problems.push(`table ${key(t)} is missing`);
    else if (got.rows !== t.rows) problems.push(`table ${key(t)} has ${got.rows} rows, expected ${t.rows}`);
    else if (got.checksum !== t.checksum) problems.push(`table ${key(t)} has different contents (checksum)`);
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
