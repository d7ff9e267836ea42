import { createResource, createSignal, For, Show } from "solid-js";
import { api, type ApiKey, type KeyKind, type NewApiKey } from "../api";
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

const STATUS_TONE = { active: "ok", rotating: "warn", expired: "", revoked: "bad" } as const;

export default function Keys() {
  useProjectCrumbs("API keys");
  const { id } = useProject();
  const [keysRes, { refetch }] = createResource(id, (pid) => api.keys.list(pid).then((r) => r.items));
  const keys = safe(keysRes);
  const [creating, setCreating] = createSignal(false);
  const [shown, setShown] = createSignal<NewApiKey>();
  const [toRotate, setToRotate] = createSignal<ApiKey>();
  const [grace, setGrace] = createSignal(24);
  const [toRevoke, setToRevoke] = createSignal<ApiKey>();
  const [showInactive, setShowInactive] = createSignal(false);
  const visible = () => (keys() ?? []).filter((k) => showInactive() || k.status === "active" || k.status === "rotating");
  const hidden = () => (keys() ?? []).length - visible().length;

  return (
    <>
      <div class="page-head">
        <h1>API keys</h1>
        <span class="sub">For /v1 and /rest/v1 (supabase-js). Publishable keys read; secret keys write.</span>
        <div class="spacer" />
        <label class="nowrap" style={{ display: "flex", gap: "6px", "align-items": "center" }}>
          <input type="checkbox" checked={showInactive()} onChange={(e) => setShowInactive(e.currentTarget.checked)} />
          Show revoked and expired
        </label>
        <button class="btn primary" onClick={() => setCreating(true)}>
          New key
        </button>
      </div>
      <div class="panel flush">
        <ListTable
          items={keys() ? visible() : undefined}
          error={keysRes.error}
          retry={refetch}
          cols={8}
          loadingRows={3}
          empty={
            <Empty title={hidden() ? "No active keys" : "No API keys yet"} action={<button class="btn primary" onClick={() => setCreating(true)}>Create a key</button>}>
              Apps call the data and storage APIs with a key: a publishable one in the browser, a secret one on your server.
            </Empty>
          }
          head={
            <tr>
              <th>Name</th>
              <th>Kind</th>
              <th>Key</th>
              <th>Status</th>
              <th class="hide-narrow">Last used</th>
              <th class="hide-narrow">Created</th>
              <th class="hide-narrow">Expires</th>
              <th>
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          }
        >
          {(k) => (
            <tr data-key={k.name}>
              <td>{k.name}</td>
              <td>
                <Badge tone={k.kind === "secret" ? "warn" : "info"} plain>
                  {k.kind}
                </Badge>
              </td>
              <td class="mono muted">{k.prefix}…</td>
              <td>
                <Badge tone={STATUS_TONE[k.status]}>{k.status}</Badge>
              </td>
              <td class="hide-narrow" title={dateTime(k.last_used_at)}>
                {k.last_used_at ? relTime(k.last_used_at) : <span class="muted">never</span>}
              </td>
              <td class="hide-narrow" title={dateTime(k.created_at)}>
                {relTime(k.created_at)}
              </td>
              <td class="hide-narrow" title={dateTime(k.expires_at)}>
                {k.expires_at ? relTime(k.expires_at) : <span class="muted">never</span>}
              </td>
              <td class="actions">
                <Show when={k.status === "active" || k.status === "rotating"}>
                  <div class="btn-row end">
                    <Show when={k.status === "active"}>
                      <button class="btn small" onClick={() => setToRotate(k)} aria-label={`Rotate ${k.name}`}>
                        Rotate
                      </button>
                    </Show>
                    <button class="btn small" onClick={() => setToRevoke(k)} aria-label={`Revoke ${k.name}`}>
                      Revoke
                    </button>
                  </div>
                </Show>
              </td>
            </tr>
          )}
        </ListTable>
      </div>

      <CreateKey
        open={creating()}
        onOpenChange={setCreating}
        onCreated={(k) => {
          setCreating(false);
          setShown(k);
          refetch();
        }}
      />

      <Modal open={!!shown()} onOpenChange={(open) => !open && setShown(undefined)} title={`Key ${shown()?.name ?? ""}`} wide>
        <Show when={shown()}>
          {(k) => (
            <>
              <ShownOnce what="the key" items={[{ label: `${k().kind === "secret" ? "Secret" : "Publishable"} key`, value: k().key, testId: "new-key" }]} />
              <p class="muted" style={{ "margin-top": "10px" }}>
                Send it as <code>x-api-key</code> (or <code>apikey</code>, as supabase-js does).{" "}
                {k().kind === "secret" ? "Keep it on your server: it can write." : "It can only read, so it may go in a browser."}
              </p>
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
        open={!!toRotate()}
        onOpenChange={(open) => !open && setToRotate(undefined)}
        title="Rotate key"
        confirmLabel="Rotate"
        onConfirm={async () => {
          setShown(await api.keys.rotate(id(), toRotate()!.id, grace()));
          refetch();
        }}
      >
        <p>
          A new key replaces <strong>{toRotate()?.name}</strong>. The old one keeps working for a grace period so you can deploy the new one.
        </p>
        <div class="field">
          <label for="grace">Grace period (hours, 0–720)</label>
          <input id="grace" type="number" min="0" max="720" value={grace()} onInput={(e) => setGrace(Math.max(0, Math.min(720, Number(e.currentTarget.value) || 0)))} />
        </div>
      </ConfirmDialog>

      <ConfirmDialog
        open={!!toRevoke()}
        onOpenChange={(open) => !open && setToRevoke(undefined)}
        title="Revoke key"
        confirmLabel="Revoke"
        danger
        onConfirm={async () => {
          await api.keys.revoke(id(), toRevoke()!.id);
          notify.success(`Revoked ${toRevoke()!.name}`, "Requests with it are refused within 5 seconds.");
          refetch();
        }}
      >
        <p>
          <strong>{toRevoke()?.name}</strong> ({toRevoke()?.prefix}…) stops working within 5 seconds, everywhere. This cannot be undone.
        </p>
      </ConfirmDialog>
    </>
  );
}

function CreateKey(props: { open: boolean; onOpenChange: (open: boolean) => void; onCreated: (k: NewApiKey) => void }) {
  const { id } = useProject();
  const [name, setName] = createSignal("");
  const [kind, setKind] = createSignal<KeyKind>("publishable");
  const [expires, setExpires] = createSignal("");
  const { busy, error, submit } = createSubmit(async () => {
    if (!name().trim()) return;
    const expires_at = expires() ? new Date(expires()).toISOString() : undefined;
    props.onCreated(await api.keys.create(id(), { name: name().trim(), kind: kind(), expires_at }));
    setName("");
    setExpires("");
  });
  return (
    <Modal open={props.open} onOpenChange={props.onOpenChange} title="New API key">
      <form onSubmit={submit}>
        <FormError error={error()} />
        <div class="field">
          <label for="key-name">Name</label>
          <input id="key-name" type="text" maxLength={100} placeholder="web app" value={name()} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <fieldset class="field" style={{ border: 0, padding: 0, margin: "0 0 12px" }}>
          <legend class="label" style={{ padding: 0, "margin-bottom": "4px" }}>
            Kind
          </legend>
          <label style={{ display: "flex", gap: "6px", "align-items": "baseline", "margin-bottom": "4px" }}>
            <input type="radio" name="kind" value="publishable" checked={kind() === "publishable"} onChange={() => setKind("publishable")} />
            <span>
              Publishable <span class="muted">— reads only; safe in a browser</span>
            </span>
          </label>
          <label style={{ display: "flex", gap: "6px", "align-items": "baseline" }}>
            <input type="radio" name="kind" value="secret" checked={kind() === "secret"} onChange={() => setKind("secret")} />
            <span>
              Secret <span class="muted">— reads and writes; server side only</span>
            </span>
          </label>
        </fieldset>
        <div class="field">
          <label for="key-expires">Expires (optional)</label>
          <input id="key-expires" type="datetime-local" value={expires()} onInput={(e) => setExpires(e.currentTarget.value)} />
        </div>
        <div class="btn-row end">
          <button type="button" class="btn" onClick={() => props.onOpenChange(false)}>
            Cancel
          </button>
          <button type="submit" class="btn primary" disabled={!name().trim() || busy()}>
            {busy() ? "Creating…" : "Create key"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
