import { A, useSearchParams } from "@solidjs/router";
import { createResource, createSignal, onCleanup, Show } from "solid-js";
import { api, type Credentials, type Project } from "../api";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { bytes, relTime, dateTime } from "../components/format";
import { Modal } from "../components/Modal";
import { useCrumbs } from "../components/Shell";
import { ShownOnce } from "../components/ShownOnce";
import { Empty, safe } from "../components/States";
import { ListTable } from "../components/ListTable";
import { isTransitional, StatusBadge } from "../components/StatusBadge";
import { notify } from "../components/toast";
import { createSubmit, FormError } from "../components/Submit";

type Filter = "active" | "deleted" | "all";

export default function Projects() {
  useCrumbs(() => [{ label: "Projects", href: "/projects" }]);
  const [params, setParams] = useSearchParams<{ q?: string; show?: Filter; new?: string }>();
  const [listRes, { refetch, mutate }] = createResource(() => api.projects.list({ limit: 1000 }).then((r) => r.items));
  const list = safe(listRes);
  const [creating, setCreating] = createSignal(params.new === "1");
  const [toDelete, setToDelete] = createSignal<Project>();
  const [toPurge, setToPurge] = createSignal<Project>();

  // Provisioning, deleting and restoring happen in the background: poll while any is under way.
  const timer = setInterval(() => {
    if (list()?.some((p) => isTransitional(p.status))) refetch();
  }, 1500);
  onCleanup(() => clearInterval(timer));

  const filter = (): Filter => params.show ?? "active";
  const shown = () => {
    const q = (params.q ?? "").trim().toLowerCase();
    return (list() ?? []).filter((p) => {
      const deleted = p.status === "deleted" || p.status === "deleting";
      if (filter() === "active" && deleted) return false;
      if (filter() === "deleted" && !deleted) return false;
      return !q || p.name.includes(q) || p.id.includes(q) || p.description.toLowerCase().includes(q);
    });
  };
  const deletedCount = () => (list() ?? []).filter((p) => p.status === "deleted").length;
  const replace = (p: Project) => mutate((items) => items?.map((x) => (x.id === p.id ? p : x)));

  const restore = async (p: Project) => {
    try {
      replace(await api.projects.restore(p.id));
      notify.success(`Restored ${p.name}`);
      refetch();
    } catch (err) {
      notify.error(`Could not restore ${p.name}`, err);
    }
  };
  const retry = async (p: Project) => {
    try {
      replace(await api.projects.retry(p.id));
      refetch();
    } catch (err) {
      notify.error(`Could not retry ${p.name}`, err);
    }
  };

  return (
    <>
      <div class="page-head">
        <h1>Projects</h1>
        <span class="sub">{list() ? `${list()!.length - deletedCount()} active` : ""}</span>
        <div class="spacer" />
        <div class="search">
          <label for="project-search" class="sr-only">
            Search projects
          </label>
          <input
            id="project-search"
            type="search"
            data-search
            placeholder="Search projects"
            value={params.q ?? ""}
            onInput={(e) => setParams({ q: e.currentTarget.value || undefined }, { replace: true })}
          />
          <Show when={!params.q}>
            <kbd aria-hidden="true">/</kbd>
          </Show>
        </div>
        <label for="project-filter" class="sr-only">
          Show
        </label>
        <select id="project-filter" value={filter()} onChange={(e) => setParams({ show: e.currentTarget.value === "active" ? undefined : e.currentTarget.value })}>
          <option value="active">Active</option>
          <option value="deleted">Deleted{deletedCount() ? ` (${deletedCount()})` : ""}</option>
          <option value="all">All</option>
        </select>
        <button class="btn primary" onClick={() => setCreating(true)}>
          New project
        </button>
      </div>

      <div class="panel flush">
        <ListTable
          items={list() ? shown() : undefined}
          error={listRes.error}
          retry={refetch}
          cols={7}
          empty={
            <Show
              when={(list() ?? []).length > 0}
              fallback={
                <Empty title="No projects yet" action={<button class="btn primary" onClick={() => setCreating(true)}>Create your first project</button>}>
                  A project is a Postgres database of its own, with roles, API keys and storage.
                </Empty>
              }
            >
              <Empty title="Nothing matches">No project {filter() === "deleted" ? "in the bin " : ""}matches “{params.q}”.</Empty>
            </Show>
          }
          head={
            <tr>
              <th>Name</th>
              <th>Status</th>
              <th class="hide-narrow">Database</th>
              <th class="hide-narrow">Created</th>
              <th class="hide-narrow">Size</th>
              <th class="hide-narrow">Last activity</th>
              <th>
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          }
        >
          {(p) => (
            <tr data-project={p.name}>
              <td>
                <Show when={p.status !== "deleted"} fallback={<strong>{p.name}</strong>}>
                  <A href={`/projects/${p.id}`}>
                    <strong>{p.name}</strong>
                  </A>
                </Show>
                <Show when={p.description}>
                  <div class="muted">{p.description}</div>
                </Show>
                <Show when={p.failure_reason}>
                  <div class="danger-text">{p.failure_reason}</div>
                </Show>
              </td>
              <td>
                <StatusBadge status={p.status} />
              </td>
              <td class="hide-narrow mono muted">{p.database.name}</td>
              <td class="hide-narrow nowrap" title={dateTime(p.created_at)}>
                {p.status === "deleted" ? `deleted ${relTime(p.deleted_at)}` : relTime(p.created_at)}
              </td>
              <td class="hide-narrow nowrap muted" title={p.size_bytes == null ? undefined : `${p.size_bytes.toLocaleString()} bytes`}>
                {p.size_bytes == null ? "—" : bytes(p.size_bytes)}
              </td>
              <td class="hide-narrow nowrap" classList={{ muted: !p.last_activity_at }} title={p.last_activity_at ? `Last API key use: ${dateTime(p.last_activity_at)}` : "No API key used yet"}>
                {p.last_activity_at ? relTime(p.last_activity_at) : "—"}
              </td>
              <td class="actions">
                <div class="btn-row end">
                  <Show when={p.status === "ready"}>
                    <button class="btn small" onClick={() => setToDelete(p)} aria-label={`Delete ${p.name}`}>
                      Delete
                    </button>
                  </Show>
                  <Show when={p.status === "deleted"}>
                    <button class="btn small" onClick={() => restore(p)} aria-label={`Restore ${p.name}`}>
                      Restore
                    </button>
                  </Show>
                  <Show when={p.status === "failed"}>
                    <button class="btn small" onClick={() => retry(p)} aria-label={`Retry ${p.name}`}>
                      Retry
                    </button>
                  </Show>
                  <Show when={p.status === "deleted" || p.status === "failed"}>
                    <button class="btn small danger" onClick={() => setToPurge(p)} aria-label={`Purge ${p.name}`}>
                      Purge
                    </button>
                  </Show>
                </div>
              </td>
            </tr>
          )}
        </ListTable>
      </div>

      <CreateProject
        open={creating()}
        onOpenChange={(open) => {
          setCreating(open);
          if (!open && params.new) setParams({ new: undefined }, { replace: true });
        }}
        onCreated={() => refetch()}
      />

      <ConfirmDialog
        open={!!toDelete()}
        onOpenChange={(open) => !open && setToDelete(undefined)}
        title="Delete project"
        confirmLabel="Delete project"
        danger
        typeToConfirm={toDelete()?.name}
        onConfirm={async () => {
          const p = toDelete()!;
          replace(await api.projects.remove(p.id));
          notify.success(`Deleted ${p.name}`, "It can be restored from Deleted until it is purged.");
          refetch();
        }}
      >
        <p>
          <strong>{toDelete()?.name}</strong> stops at once: connections are refused and its API keys stop working. The data stays, and the project can be
          restored until it is purged.
        </p>
      </ConfirmDialog>

      <ConfirmDialog
        open={!!toPurge()}
        onOpenChange={(open) => !open && setToPurge(undefined)}
        title="Purge project"
        confirmLabel="Purge for good"
        danger
        typeToConfirm={toPurge()?.name}
        onConfirm={async () => {
          const p = toPurge()!;
          await api.projects.purge(p.id, p.name);
          notify.success(`Purged ${p.name}`);
          refetch();
        }}
      >
        <p>
          This drops the database, its roles and every stored object of <strong>{toPurge()?.name}</strong>. It cannot be undone.
        </p>
      </ConfirmDialog>
    </>
  );
}

function CreateProject(props: { open: boolean; onOpenChange: (open: boolean) => void; onCreated: () => void }) {
  const [name, setName] = createSignal("");
  const [description, setDescription] = createSignal("");
  const [created, setCreated] = createSignal<Project & { credentials: Credentials }>();
  const valid = () => /^[a-z0-9_-]{3,40}$/.test(name());
  // The list is read again either way: a failed create may still have made the project (failed state).
  const { busy, error, setError, submit } = createSubmit(async () => {
    if (!valid()) return;
    try {
      setCreated(await api.projects.create({ name: name(), description: description().trim() || undefined }));
    } finally {
      props.onCreated();
    }
  });

  const close = (open: boolean) => {
    if (open) return props.onOpenChange(true);
    if (busy()) return;
    props.onOpenChange(false);
    setCreated(undefined);
    setName("");
    setDescription("");
    setError(undefined);
  };

  return (
    <Modal open={props.open} onOpenChange={close} title={created() ? `Project ${created()!.name} is ready` : "New project"} wide={!!created()}>
      <Show
        when={created()}
        fallback={
          <form onSubmit={submit}>
            <FormError error={error()} />
            <div class="field">
              <label for="project-name">Name</label>
              <input
                id="project-name"
                type="text"
                autocomplete="off"
                spellcheck={false}
                required
                value={name()}
                onInput={(e) => setName(e.currentTarget.value.toLowerCase())}
                aria-describedby="project-name-hint"
                aria-invalid={name() !== "" && !valid()}
              />
              <span id="project-name-hint" class={name() !== "" && !valid() ? "error" : "hint"}>
                3–40 characters: a–z, 0–9, - and _.
              </span>
            </div>
            <div class="field">
              <label for="project-description">Description (optional)</label>
              <input id="project-description" type="text" maxLength={500} value={description()} onInput={(e) => setDescription(e.currentTarget.value)} />
            </div>
            <div class="btn-row end">
              <button type="button" class="btn" onClick={() => close(false)} disabled={busy()}>
                Cancel
              </button>
              <button type="submit" class="btn primary" disabled={!valid() || busy()}>
                {busy() ? "Creating database…" : "Create project"}
              </button>
            </div>
          </form>
        }
      >
        {(p) => (
          <>
            <ShownOnce
              what="the passwords"
              items={[
                { label: "App connection string (read and write; use this in your app)", value: p().credentials.app.connection_string, testId: "conn-app" },
                { label: "App password", value: p().credentials.app.password, testId: "password-app" },
                { label: "Owner connection string (migrations and DDL)", value: p().credentials.owner.connection_string, testId: "conn-owner" },
                { label: "Read-only connection string", value: p().credentials.ro.connection_string, testId: "conn-ro" },
              ]}
            />
            <p class="muted" style={{ "margin-top": "12px" }}>
              Lost them? An admin can reveal them again on the project's overview (recorded in the audit log) or rotate a password.
            </p>
            <div class="btn-row end">
              <A class="btn" href={`/projects/${p().id}`} onClick={() => close(false)}>
                Open project
              </A>
              <button type="button" class="btn primary" onClick={() => close(false)}>
                I have saved them
              </button>
            </div>
          </>
        )}
      </Show>
    </Modal>
  );
}
