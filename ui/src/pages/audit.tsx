import { useSearchParams } from "@solidjs/router";
import { createResource, For, Match, Show, Switch } from "solid-js";
import { api } from "../api";
import { dateTime, relTime } from "../components/format";
import { useCrumbs } from "../components/Shell";
import { Empty, LoadError, SkeletonRows, safe } from "../components/States";
import { Badge } from "../components/StatusBadge";

const PAGE = 50;
// What the server records (docs/API.md); the filter is an exact match on one of these.
const ACTIONS = [
  "admin.login",
  "admin.login_failed",
  "admin.logout",
  "admin.create",
  "admin.token.create",
  "admin.token.revoke",
  "project.create",
  "project.update",
  "project.delete",
  "project.restore",
  "project.purge",
  "project.retry",
  "project.reconcile",
  "project.credentials.reveal",
  "project.credentials.rotate",
  "project.user.create",
  "project.user.password_rotate",
  "project.user.delete",
  "project.key.create",
  "project.key.rotate",
  "project.key.revoke",
  "project.sql",
  "storage.bucket.create",
  "storage.bucket.update",
  "storage.bucket.delete",
  "storage.object.upload",
  "storage.object.delete",
  "storage.settings.update",
  "job.create",
  "job.update",
  "job.delete",
  "job.run",
];

function detailsText(d: Record<string, unknown>) {
  return Object.entries(d)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join("  ");
}

export default function Audit() {
  useCrumbs(() => [{ label: "Audit log" }]);
  const [params, setParams] = useSearchParams<{ action?: string; page?: string }>();
  const page = () => Math.max(0, Number(params.page ?? 0) || 0);
  const [entriesRes, { refetch }] = createResource(
    () => ({ action: params.action, offset: page() * PAGE }),
    // One more than a page: tells whether there is a next page.
    (q) => api.audit({ action: q.action, offset: q.offset, limit: PAGE + 1 }).then((r) => r.items),
  );
  const entries = safe(entriesRes);
  const rows = () => (entries() ?? []).slice(0, PAGE);
  const hasNext = () => (entries()?.length ?? 0) > PAGE;

  return (
    <>
      <div class="page-head">
        <h1>Audit log</h1>
        <span class="sub">Who did what, newest first.</span>
        <div class="spacer" />
        <label for="audit-action" class="sr-only">
          Filter by action
        </label>
        <select id="audit-action" data-search value={params.action ?? ""} onChange={(e) => setParams({ action: e.currentTarget.value || undefined, page: undefined })}>
          <option value="">All actions</option>
          <For each={ACTIONS}>{(a) => <option value={a}>{a}</option>}</For>
        </select>
      </div>
      <div class="panel flush">
        <Switch>
          <Match when={entriesRes.error}>
            <LoadError error={entriesRes.error} retry={refetch} />
          </Match>
          <Match when={entries() && rows().length === 0}>
            <Empty title="No entries">{params.action ? `Nothing recorded as ${params.action}${page() ? " on this page" : ""}.` : "Nothing has been recorded yet."}</Empty>
          </Match>
          <Match when={true}>
            <div class="table-wrap">
              <table class="data">
                <thead>
                  <tr>
                    <th>When</th>
                    <th>Who</th>
                    <th>Action</th>
                    <th class="hide-narrow">Target</th>
                    <th class="hide-narrow">Details</th>
                    <th class="hide-narrow">IP</th>
                  </tr>
                </thead>
                <tbody>
                  <Show when={entries()} fallback={<SkeletonRows cols={6} rows={8} />}>
                    <For each={rows()}>
                      {(e) => (
                        <tr>
                          <td class="nowrap" title={dateTime(e.at)}>
                            {relTime(e.at)}
                          </td>
                          <td class="nowrap">
                            <span>{e.actor_label ?? e.actor_type}</span>
                            <Show when={e.actor_type !== "admin"}>
                              {" "}
                              <Badge plain>{e.actor_type}</Badge>
                            </Show>
                          </td>
                          <td class="mono">
                            <button class="linkish mono" onClick={() => setParams({ action: e.action, page: undefined })} title="Show only this action">
                              {e.action}
                            </button>
                          </td>
                          <td class="hide-narrow mono muted nowrap">{e.target_id ? `${e.target_type}:${e.target_id}` : ""}</td>
                          <td class="hide-narrow mono muted truncate" title={detailsText(e.details)}>
                            {detailsText(e.details)}
                          </td>
                          <td class="hide-narrow mono muted">{e.ip}</td>
                        </tr>
                      )}
                    </For>
                  </Show>
                </tbody>
              </table>
            </div>
            <div class="pager">
              <span>Page {page() + 1}</span>
              <button class="btn small" disabled={page() === 0} onClick={() => setParams({ page: page() > 1 ? String(page() - 1) : undefined })}>
                Newer
              </button>
              <button class="btn small" disabled={!hasNext()} onClick={() => setParams({ page: String(page() + 1) })}>
                Older
              </button>
            </div>
          </Match>
        </Switch>
      </div>
    </>
  );
}
