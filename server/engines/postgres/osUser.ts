import { readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { EngineError } from "./engine";
import { log } from "../../platform/log";

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/**
 * Postgres refuses to run as root. As root we run initdb/postgres as an unprivileged user: the
 * configured one, else the owner of an existing cluster (so `admin create` run as root uses the
 * service's cluster as the service would), else `postgres`, else an `atlashub` system user we create.
 * As anyone else we run it as ourselves.
 */
export function pgOsUser(configured: string | undefined, clusterOwnerUid: number | undefined): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  if (configured) {
    const user = lookupUser(configured);
    if (!user) throw new EngineError(`ATLASHUB_PG_OS_USER=${configured}: no such system user`);
    return user;
  }
  const owner = clusterOwnerUid ? lookupUser((u) => u.uid === clusterOwnerUid) : undefined;
  if (owner) return owner;
  const existing = lookupUser("postgres") ?? lookupUser("atlashub");
  if (existing) return existing;
  const made = Bun.spawnSync(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "atlashub"]);
  if (made.exitCode !== 0) throw new EngineError("running as root and could not create the 'atlashub' system user for Postgres; set ATLASHUB_PG_OS_USER");
  log.info("created system user for postgres", { user: "atlashub" });
  return lookupUser("atlashub")!;
}

function lookupUser(match: string | ((u: OsUser) => boolean)): OsUser | undefined {
  for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
    const [name, , uid, gid] = line.split(":");
    if (!name || !uid || !gid) continue;
    const user = { name, uid: Number(uid), gid: Number(gid) };
    if (typeof match === "string" ? name === match : match(user)) return user;
  }
  return undefined;
}

/** Postgres needs execute (search) permission on every directory above its cluster; /root is the usual trap. */
export function assertTraversable(path: string, user: OsUser) {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const st = statSync(dir);
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) {
      throw new EngineError(
        `directory ${dir} is not traversable by OS user ${user.name} (uid ${user.uid}), which runs Postgres; choose a data dir outside it (ATLASHUB_DATA_DIR) or chmod o+x ${dir}`,
      );
    }
    if (dir === "/") return;
  }
}
