import { createSignal, For, Show } from "solid-js";
import { api, type Credential, type Credentials, type RoleKind } from "../api";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { CodeBlock } from "../components/CopyButton";
import { dateTime } from "../components/format";
import { Modal } from "../components/Modal";
import { ShownOnce } from "../components/ShownOnce";
import { StatusBadge } from "../components/StatusBadge";
import { notify } from "../components/toast";
import { useProject, useProjectCrumbs } from "./project";

const ROLES: { kind: RoleKind; label: string; use: string }[] = [
  { kind: "app", label: "App", use: "read and write: your application" },
  { kind: "owner", label: "Owner", use: "DDL and migrations" },
  { kind: "ro", label: "Read-only", use: "reports, dashboards" },
];

export default function Overview() {
  useProjectCrumbs("Overview");
  const { project, refetch } = useProject();
  const p = () => project()!;
  const [confirmReveal, setConfirmReveal] = createSignal(false);
  const [revealed, setRevealed] = createSignal<Credentials>();
  const [rotateRole, setRotateRole] = createSignal<RoleKind>();
  const [rotated, setRotated] = createSignal<Credential>();

  const origin = location.origin;
  const env = () => {
    const db = p().database;
    const app = revealed()?.app.connection_string ?? `postgresql://${db.roles.app}:<password>@${db.host.includes(":") ? `[${db.host}]` : db.host}:${db.port}/${db.name}?sslmode=${db.sslmode}`;
    return [
      `# .env.local (Next.js). Keys: create them under API keys.`,
      `DATABASE_URL="${app}"`,
      `ATLASHUB_URL="${origin}"`,
      `# Secret key: server side only`,
      `ATLASHUB_SECRET_KEY="ah_sk_…"`,
      `# Publishable key: safe in the browser`,
      `NEXT_PUBLIC_ATLASHUB_URL="${origin}"`,
      `NEXT_PUBLIC_ATLASHUB_KEY="ah_pk_…"`,
    ].join("\n");
  };

  const retry = async () => {
    try {
      await api.projects.retry(p().id);
      refetch();
    } catch (err) {
      notify.error("Retry failed", err);
    }
  };

  return (
    <>
      <div class="page-head">
        <h1>{p().name}</h1>
        <StatusBadge status={p().status} />
        <span class="sub mono">{p().id}</span>
      </div>
      <Show when={p().description}>
        <p class="muted">{p().description}</p>
      </Show>
      <Show when={p().status === "failed"}>
        <div class="alert error" role="alert">
          {p().failure_reason ?? "The last operation failed."}{" "}
          <button class="btn small" onClick={retry}>
            Retry
          </button>
        </div>
      </Show>
      <Show when={p().status === "deleted"}>
        <div class="alert warn">This project is deleted: connections are refused. Restore it from the projects list.</div>
      </Show>

      <div class="grid-2">
        <section class="panel" aria-labelledby="conn-title">
          <div class="panel-head">
            <h2 id="conn-title">Connection</h2>
          </div>
          <dl class="dl">
            <dt>Host</dt>
            <dd class="mono">{p().database.host}</dd>
            <dt>Port</dt>
            <dd class="mono">{p().database.port}</dd>
            <dt>Database</dt>
            <dd class="mono">{p().database.name}</dd>
            <dt>SSL mode</dt>
            <dd class="mono">{p().database.sslmode}</dd>
            <For each={ROLES}>
              {(r) => (
                <>
                  <dt>{r.label} role</dt>
                  <dd>
                    <span class="mono">{p().database.roles[r.kind]}</span> <span class="muted">— {r.use}</span>
                  </dd>
                </>
              )}
            </For>
            <dt>Extensions</dt>
            <dd>{p().database.extensions.join(", ") || "none"}</dd>
            <dt>Created</dt>
            <dd>{dateTime(p().created_at)}</dd>
          </dl>
        </section>

        <section class="panel" aria-labelledby="creds-title">
          <div class="panel-head">
            <h2 id="creds-title">Passwords</h2>
            <Show when={revealed()}>
              <button class="btn small" onClick={() => setRevealed(undefined)}>
                Hide
              </button>
            </Show>
          </div>
          <Show
            when={revealed()}
            fallback={
              <>
                <p class="muted">Passwords are hidden. Revealing them is recorded in the audit log with your name.</p>
                <div class="btn-row">
                  <button class="btn" onClick={() => setConfirmReveal(true)} disabled={p().status !== "ready"}>
                    Reveal credentials
                  </button>
                  <For each={ROLES}>
                    {(r) => (
                      <button class="btn small" onClick={() => setRotateRole(r.kind)} disabled={p().status !== "ready"}>
                        Rotate {r.label.toLowerCase()}
                      </button>
                    )}
                  </For>
                </div>
              </>
            }
          >
            {(c) => (
              <div class="secret-list">
                <For each={ROLES}>
                  {(r) => (
                    <div>
                      <div class="label">{r.label}</div>
                      <CodeBlock text={c()[r.kind].connection_string} label={`${r.label} connection string`} testId={`revealed-${r.kind}`} />
                    </div>
                  )}
                </For>
              </div>
            )}
          </Show>
        </section>
      </div>

      <section class="panel" aria-labelledby="env-title">
        <div class="panel-head">
          <h2 id="env-title">.env for a Next.js app</h2>
        </div>
        <CodeBlock text={env()} label=".env snippet" />
        <p class="muted" style={{ "margin-top": "8px" }}>
          {revealed() ? "Contains the app password: keep it out of version control." : "Reveal the credentials to fill in the password."}
        </p>
      </section>

      <ConfirmDialog
        open={confirmReveal()}
        onOpenChange={setConfirmReveal}
        title="Reveal credentials"
        confirmLabel="Reveal"
        onConfirm={async () => setRevealed((await api.projects.reveal(p().id)).credentials)}
      >
        <p>The passwords of all three roles will be shown. This is recorded in the audit log.</p>
      </ConfirmDialog>

      <ConfirmDialog
        open={!!rotateRole()}
        onOpenChange={(open) => !open && setRotateRole(undefined)}
        title={`Rotate the ${rotateRole() ?? ""} password`}
        confirmLabel="Rotate password"
        danger
        onConfirm={async () => {
          const role = rotateRole()!;
          setRotated(await api.projects.rotate(p().id, role));
          setRevealed(undefined);
        }}
      >
        <p>The old password stops working at once and the role's open sessions are ended. Apps using it must get the new one.</p>
      </ConfirmDialog>

      <Modal open={!!rotated()} onOpenChange={(open) => !open && setRotated(undefined)} title="New password" wide>
        <Show when={rotated()}>
          {(r) => (
            <>
              <ShownOnce
                what="it"
                items={[
                  { label: `Connection string (${r().role})`, value: r().connection_string },
                  { label: "Password", value: r().password },
                ]}
              />
              <div class="btn-row end">
                <button class="btn primary" onClick={() => setRotated(undefined)}>
                  Done
                </button>
              </div>
            </>
          )}
        </Show>
      </Modal>
    </>
  );
}
