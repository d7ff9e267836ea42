import { createResource, createSignal, For, Show } from "solid-js";
import { api, type Access, type DbUser, type DbUserWithPassword } from "../api";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { dateTime, relTime } from "../components/format";
import { Modal } from "../components/Modal";
import { ShownOnce } from "../components/ShownOnce";
import { Empty, safe } from "../components/States";
import { ListTable } from "../components/ListTable";
import { Badge } from "../components/StatusBadge";
import { notify } from "../components/toast";
import { useProject, useProjectCrumbs } from "./project";
import { createSubmit, FormError } from "../components/Submit";

const ACCESS: { value: Access; label: string; help: string }[] = [
  { value: "read", label: "Read", help: "SELECT only (the read-only role)" },
  { value: "write", label: "Read/write", help: "SELECT, INSERT, UPDATE, DELETE (the app role)" },
  { value: "migrate", label: "Migrate", help: "DDL and migrations (the owner role)" },
];

export default function Users() {
  useProjectCrumbs("Database users");
  const { id } = useProject();
  const [usersRes, { refetch }] = createResource(id, (pid) => api.users.list(pid).then((r) => r.items));
  const users = safe(usersRes);
  const [creating, setCreating] = createSignal(false);
  const [shown, setShown] = createSignal<DbUserWithPassword>();
  const [toRegenerate, setToRegenerate] = createSignal<DbUser>();
  const [toDelete, setToDelete] = createSignal<DbUser>();

  return (
    <>
      <div class="page-head">
        <h1>Database users</h1>
        <span class="sub">Logins for people and tools, each acting as one of the project's roles.</span>
        <div class="spacer" />
        <button class="btn primary" onClick={() => setCreating(true)}>
          New user
        </button>
      </div>
      <div class="panel flush">
        <ListTable
          items={users()}
          error={usersRes.error}
          retry={refetch}
          cols={5}
          loadingRows={3}
          empty={
            <Empty title="No database users" action={<button class="btn primary" onClick={() => setCreating(true)}>Create a user</button>}>
              Give a teammate or a tool (psql, a BI dashboard, a migration runner) its own login instead of sharing the project's passwords.
            </Empty>
          }
          head={
            <tr>
              <th>User</th>
              <th>Access</th>
              <th class="hide-narrow">Role</th>
              <th class="hide-narrow">Password changed</th>
              <th>
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          }
        >
          {(u) => (
            <tr>
              <td class="mono">{u.username}</td>
              <td>
                <Badge tone={u.access === "migrate" ? "warn" : u.access === "write" ? "info" : ""} plain>
                  {u.access}
                </Badge>
              </td>
              <td class="hide-narrow mono muted">{u.role_name}</td>
              <td class="hide-narrow" title={dateTime(u.password_changed_at)}>
                {relTime(u.password_changed_at)}
              </td>
              <td class="actions">
                <div class="btn-row end">
                  <button class="btn small" onClick={() => setToRegenerate(u)} aria-label={`New password for ${u.username}`}>
                    New password
                  </button>
                  <button class="btn small" onClick={() => setToDelete(u)} aria-label={`Delete ${u.username}`}>
                    Delete
                  </button>
                </div>
              </td>
            </tr>
          )}
        </ListTable>
      </div>

      <CreateUser
        open={creating()}
        onOpenChange={setCreating}
        onCreated={(u) => {
          setCreating(false);
          setShown(u);
          refetch();
        }}
      />

      <Modal open={!!shown()} onOpenChange={(open) => !open && setShown(undefined)} title={`Password for ${shown()?.username ?? ""}`} wide>
        <Show when={shown()}>
          {(u) => (
            <>
              <ShownOnce
                what="the password"
                items={[
                  { label: "Connection string", value: u().connection_string, testId: "user-conn" },
                  { label: "Password", value: u().password },
                ]}
              />
              <div class="btn-row end">
                <button class="btn primary" onClick={() => setShown(undefined)}>
                  I have saved it
                </button>
              </div>
            </>
          )}
        </Show>
      </Modal>

      <ConfirmDialog
        open={!!toRegenerate()}
        onOpenChange={(open) => !open && setToRegenerate(undefined)}
        title="New password"
        confirmLabel="Generate new password"
        danger
        onConfirm={async () => {
          setShown(await api.users.regenerate(id(), toRegenerate()!.username));
          refetch();
        }}
      >
        <p>
          The current password of <code>{toRegenerate()?.username}</code> stops working at once and its open sessions are ended.
        </p>
      </ConfirmDialog>

      <ConfirmDialog
        open={!!toDelete()}
        onOpenChange={(open) => !open && setToDelete(undefined)}
        title="Delete database user"
        confirmLabel="Delete user"
        danger
        onConfirm={async () => {
          await api.users.remove(id(), toDelete()!.username);
          notify.success(`Deleted ${toDelete()!.username}`);
          refetch();
        }}
      >
        <p>
          <code>{toDelete()?.username}</code> is disconnected and its login removed. Tables it created stay (they belong to the owner role).
        </p>
      </ConfirmDialog>
    </>
  );
}

function CreateUser(props: { open: boolean; onOpenChange: (open: boolean) => void; onCreated: (u: DbUserWithPassword) => void }) {
  const { id } = useProject();
  const [username, setUsername] = createSignal("");
  const [access, setAccess] = createSignal<Access>("read");
  const valid = () => /^[a-z][a-z0-9_]{2,31}$/.test(username());
  const { busy, error, submit } = createSubmit(async () => {
    if (!valid()) return;
    props.onCreated(await api.users.create(id(), { username: username(), access: access() }));
    setUsername("");
    setAccess("read");
  });
  return (
    <Modal open={props.open} onOpenChange={props.onOpenChange} title="New database user">
      <form onSubmit={submit}>
        <FormError error={error()} />
        <div class="field">
          <label for="username">Username</label>
          <input
            id="username"
            type="text"
            autocomplete="off"
            spellcheck={false}
            value={username()}
            onInput={(e) => setUsername(e.currentTarget.value.toLowerCase())}
            aria-describedby="username-hint"
            aria-invalid={username() !== "" && !valid()}
          />
          <span id="username-hint" class={username() !== "" && !valid() ? "error" : "hint"}>
            3–32 characters of a–z, 0–9 and _, starting with a letter.
          </span>
        </div>
        <fieldset class="field" style={{ border: 0, padding: 0, margin: "0 0 12px" }}>
          <legend class="label" style={{ padding: 0, "margin-bottom": "4px" }}>
            Access
          </legend>
          <For each={ACCESS}>
            {(a) => (
              <label style={{ display: "flex", gap: "6px", "align-items": "baseline", "margin-bottom": "4px" }}>
                <input type="radio" name="access" value={a.value} checked={access() === a.value} onChange={() => setAccess(a.value)} />
                <span>
                  {a.label} <span class="muted">— {a.help}</span>
                </span>
              </label>
            )}
          </For>
        </fieldset>
        <div class="btn-row end">
          <button type="button" class="btn" onClick={() => props.onOpenChange(false)}>
            Cancel
          </button>
          <button type="submit" class="btn primary" disabled={!valid() || busy()}>
            {busy() ? "Creating…" : "Create user"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
