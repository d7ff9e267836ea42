import type postgres from "postgres";
import type { Db, Sql } from "./db";

export interface Actor {
  type: "admin" | "token" | "cli" | "system" | "anonymous";
  /** The admin user's id, also when acting through one of their tokens. */
  id?: string;
  /** Who, for the audit log: an email, or "email (token name)". */
  label?: string;
  email?: string;
}

export interface AuditEntry {
  actor: Actor;
  action: string;
  target?: { type: string; id: string };
  requestId?: string;
  ip?: string;
  /** Never secrets: names, ids and counts only. */
  details?: Record<string, unknown>;
}

export async function recordAudit(sql: Db, entry: AuditEntry) {
  await sql`
    insert into audit_log (actor_type, actor_id, actor_label, action, target_type, target_id, request_id, ip, details)
    values (${entry.actor.type}, ${entry.actor.id ?? null}, ${entry.actor.label ?? null}, ${entry.action},
            ${entry.target?.type ?? null}, ${entry.target?.id ?? null}, ${entry.requestId ?? null}, ${entry.ip ?? null},
            ${sql.json((entry.details ?? {}) as postgres.JSONValue)})`;
}

export async function listAudit(sql: Sql, q: { limit: number; offset: number; action?: string }) {
  return sql`
    select id, at, actor_type, actor_id, actor_label, action, target_type, target_id, request_id, ip, details
    from audit_log where ${q.action ? sql`action = ${q.action}` : sql`true`}
    order by id desc limit ${q.limit} offset ${q.offset}`;
}
