import { createEffect, createResource, createSignal, For, Index, Match, on, onCleanup, Show, Switch } from "solid-js";
import { api, ApiError, type HttpMethod, type Job, type JobInput, type RunStatus } from "../api";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { dateTime, relTime } from "../components/format";
import { Modal } from "../components/Modal";
import { useCrumbs } from "../components/Shell";
import { Empty, safe } from "../components/States";
import { ListTable } from "../components/ListTable";
import { Badge } from "../components/StatusBadge";
import { notify } from "../components/toast";

const RUN_TONE: Record<RunStatus, "ok" | "bad" | "warn" | "info" | ""> = { running: "info", succeeded: "ok", failed: "bad", timed_out: "bad", skipped: "" };
const METHODS: HttpMethod[] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
const MASK = "********";
const isPlatform = (j: Job) => j.name.startsWith("platform/");
const ms = (n: number | null) => (n === null ? "" : n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)} s`);

export default function Jobs() {
  useCrumbs(() => [{ label: "Jobs" }]);
  const [jobsRes, { refetch }] = createResource(() => api.jobs.list().then((r) => r.items));
  const jobs = safe(jobsRes);
  const [editing, setEditing] = createSignal<Job | "new">();
  const [toDelete, setToDelete] = createSignal<Job>();
  const [selectedId, setSelectedId] = createSignal<string>();
  const selected = () => jobs()?.find((j) => j.id === selectedId());

  const [runsRes, { refetch: refetchRuns }] = createResource(selectedId, (id) => api.jobs.runs(id).then((r) => r.items));
  const runs = safe(runsRes);
  // While a run is in progress, look again every second; once it ends, read the jobs once more, as
  // the list may have been read a moment before the run's end reached the job's row.
  let wasRunning = false;
  createEffect(() => {
    const running = runs()?.some((r) => r.status === "running") ?? false;
    if (wasRunning && !running) refetch();
    wasRunning = running;
    if (!running) return;
    const t = setTimeout(() => {
      refetchRuns();
      refetch();
    }, 1000);
    onCleanup(() => clearTimeout(t));
  });

  const setEnabled = async (j: Job, enabled: boolean) => {
    try {
      await api.jobs.update(j.id, { enabled });
      notify.success(`${enabled ? "Enabled" : "Disabled"} ${j.name}`);
    } catch (err) {
      notify.error(`Could not ${enabled ? "enable" : "disable"} ${j.name}`, err);
    }
    refetch();
  };
  const runNow = async (j: Job) => {
    try {
      await api.jobs.run(j.id);
      notify.success(`Started ${j.name}`);
      setSelectedId(j.id);
      refetchRuns();
      refetch();
    } catch (err) {
      notify.error(`Could not run ${j.name}`, err);
    }
  };

  return (
    <>
      <div class="page-head">
        <h1>Jobs</h1>
        <span class="sub">Scheduled HTTP calls and the platform's own housekeeping, run by this server.</span>
        <div class="spacer" />
        <button class="btn primary" onClick={() => setEditing("new")}>
          New job
        </button>
      </div>
      <div class="panel flush">
        <ListTable
          items={jobs()}
          error={jobsRes.error}
          retry={refetch}
          cols={7}
          loadingRows={4}
          empty={
            <Empty title="No jobs yet" action={<button class="btn primary" onClick={() => setEditing("new")}>Create a job</button>}>
              A job calls a URL on a schedule: a webhook every hour, a sync every night.
            </Empty>
          }
          head={
            <tr>
              <th>Name</th>
              <th>Schedule</th>
              <th class="hide-narrow">Kind</th>
              <th>Enabled</th>
              <th class="hide-narrow">Next run</th>
              <th>Last run</th>
              <th>
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          }
        >
          {(j) => (
            <tr data-job={j.name} classList={{ selected: j.id === selectedId() }}>
              <td>
                <button class="linkish" onClick={() => setSelectedId(j.id)} aria-label={`History of ${j.name}`} title={j.description ?? j.http?.url ?? ""}>
                  {j.name}
                </button>
              </td>
              <td class="nowrap">
                <span class="mono">{j.schedule}</span> <span class="muted">{j.timezone}</span>
              </td>
              <td class="hide-narrow">
                <Badge tone={j.kind === "platform" ? "info" : ""} plain>
                  {j.kind === "http" ? `${j.http?.method ?? ""} http` : "platform"}
                </Badge>
              </td>
              <td>
                <input type="checkbox" role="switch" checked={j.enabled} aria-label={`Enabled: ${j.name}`} onChange={(e) => setEnabled(j, e.currentTarget.checked)} />
              </td>
              <td class="hide-narrow nowrap" title={dateTime(j.next_run_at)}>
                {j.next_run_at ? relTime(j.next_run_at) : <span class="muted">—</span>}
              </td>
              <td title={dateTime(j.last_run?.scheduled_for)}>
                <Show when={j.last_run} fallback={<span class="muted">never</span>}>
                  {(r) => <Badge tone={RUN_TONE[r().status]}>{r().status.replace("_", " ")}</Badge>}
                </Show>
              </td>
              <td class="actions">
                <div class="btn-row end">
                  <button class="btn small" onClick={() => runNow(j)} aria-label={`Run ${j.name} now`}>
                    Run now
                  </button>
                  <button class="btn small" onClick={() => setEditing(j)} aria-label={`Edit ${j.name}`}>
                    Edit
                  </button>
                  <Show when={!isPlatform(j)}>
                    <button class="btn small" onClick={() => setToDelete(j)} aria-label={`Delete ${j.name}`}>
                      Delete
                    </button>
                  </Show>
                </div>
              </td>
            </tr>
          )}
        </ListTable>
      </div>

      <Show when={selected()}>
        {(j) => (
          <section class="panel flush" aria-label={`Run history of ${j().name}`}>
            <div class="panel-head" style={{ padding: "10px 14px 0" }}>
              <h2>Runs of {j().name}</h2>
              <button class="btn small" onClick={() => refetchRuns()}>
                Refresh
              </button>
              <button class="btn ghost small icon" onClick={() => setSelectedId(undefined)} aria-label="Close run history">
                ✕
              </button>
            </div>
            <Show when={j().description}>
              <p class="muted" style={{ margin: "0 14px 10px" }}>
                {j().description}
              </p>
            </Show>
            <ListTable
              items={runs()}
              error={runsRes.error}
              retry={refetchRuns}
              cols={6}
              loadingRows={2}
              class="data runs"
              empty={<Empty title="No runs yet">Runs appear here when the schedule comes round, or after Run now.</Empty>}
              head={
                <tr>
                  <th>Status</th>
                  <th>Scheduled for</th>
                  <th class="hide-narrow">Trigger</th>
                  <th>Duration</th>
                  <th>Response</th>
                  <th>Excerpt</th>
                </tr>
              }
            >
              {(r) => (
                <tr data-run={r.id}>
                  <td>
                    <Badge tone={RUN_TONE[r.status]}>{r.status.replace("_", " ")}</Badge>
                    <Show when={r.attempt > 1}>
                      <span class="muted"> attempt {r.attempt}</span>
                    </Show>
                  </td>
                  <td class="nowrap" title={dateTime(r.scheduled_for)}>
                    {relTime(r.scheduled_for)}
                  </td>
                  <td class="hide-narrow">{r.trigger}</td>
                  <td class="nowrap">{ms(r.duration_ms)}</td>
                  <td class="mono">{r.response_status ?? <span class="muted">—</span>}</td>
                  <td class="excerpt">
                    <Show when={r.error}>
                      <div class="error-text">{r.error}</div>
                    </Show>
                    <Show when={r.response_body}>
                      <pre>{r.response_body}</pre>
                    </Show>
                  </td>
                </tr>
              )}
            </ListTable>
          </section>
        )}
      </Show>

      <JobForm
        job={editing()}
        onClose={() => setEditing(undefined)}
        onSaved={(j, created) => {
          setEditing(undefined);
          notify.success(`${created ? "Created" : "Saved"} ${j.name}`);
          refetch();
        }}
      />

      <ConfirmDialog
        open={!!toDelete()}
        onOpenChange={(open) => !open && setToDelete(undefined)}
        title="Delete job"
        confirmLabel="Delete"
        danger
        onConfirm={async () => {
          const j = toDelete()!;
          await api.jobs.remove(j.id);
          if (selectedId() === j.id) setSelectedId(undefined);
          notify.success(`Deleted ${j.name}`);
          refetch();
        }}
      >
        <p>
          <strong>{toDelete()?.name}</strong> stops running, and its run history goes with it.
        </p>
      </ConfirmDialog>
    </>
  );
}

const TIMEZONES: string[] = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.("timeZone") ?? [];

function JobForm(props: { job: Job | "new" | undefined; onClose: () => void; onSaved: (j: Job, created: boolean) => void }) {
  const existing = () => (typeof props.job === "object" ? props.job : undefined);
  const platform = () => !!existing() && isPlatform(existing()!);
  const isHttp = () => !existing() || existing()!.kind === "http";
  const [name, setName] = createSignal("");
  const [schedule, setSchedule] = createSignal("");
  const [timezone, setTimezone] = createSignal("UTC");
  const [method, setMethod] = createSignal<HttpMethod>("POST");
  const [url, setUrl] = createSignal("");
  const [headers, setHeaders] = createSignal<{ name: string; value: string }[]>([]);
  const [body, setBody] = createSignal("");
  const [timeout, setTimeoutMs] = createSignal(10_000);
  const [retries, setRetries] = createSignal(0);
  const [missed, setMissed] = createSignal<"skip" | "run_once">("skip");
  const [busy, setBusy] = createSignal(false);
  const [error, setError] = createSignal<string>();
  const [urlError, setUrlError] = createSignal<string>();
  const [preview, setPreview] = createSignal<{ runs?: string[]; error?: string }>();

  // Fill the form when it opens.
  createEffect(
    on(
      () => props.job,
      (job) => {
        if (!job) return;
        const j = typeof job === "object" ? job : undefined;
        setName(j?.name ?? "");
        setSchedule(j?.schedule ?? "0 * * * *");
        setTimezone(j?.timezone ?? "UTC");
        setMethod(j?.http?.method ?? "POST");
        setUrl(j?.http?.url ?? "");
        setHeaders(Object.entries(j?.http?.headers ?? {}).map(([name, value]) => ({ name, value })));
        setBody(j?.http?.body ?? "");
        setTimeoutMs(j?.http?.timeout_ms ?? 10_000);
        setRetries(j?.retries ?? 0);
        setMissed(j?.missed ?? "skip");
        setError(undefined);
        setUrlError(undefined);
      },
    ),
  );

  // The next five runs as the schedule is typed (debounced), or what is wrong with it.
  let asked = 0;
  createEffect(() => {
    const s = schedule().trim();
    const tz = timezone().trim() || "UTC";
    if (!props.job) return;
    if (!s) return setPreview(undefined);
    const n = ++asked;
    const t = setTimeout(async () => {
      try {
        const r = await api.jobs.preview(s, tz);
        if (n === asked) setPreview({ runs: r.next_runs });
      } catch (err) {
        if (n === asked) setPreview({ error: err instanceof Error ? err.message : String(err) });
      }
    }, 300);
    onCleanup(() => clearTimeout(t));
  });

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy()) return;
    setBusy(true);
    setError(undefined);
    setUrlError(undefined);
    const j = existing();
    const input: JobInput = { schedule: schedule().trim(), timezone: timezone().trim() || "UTC", retries: retries(), missed: missed() };
    if (!platform()) input.name = name().trim();
    if (isHttp()) {
      const given: Record<string, string | null> = {};
      for (const h of headers()) if (h.name.trim() && h.value !== MASK) given[h.name.trim()] = h.value;
      // On edit, a header taken out of the list is removed (a masked secret left as is is kept).
      for (const old of Object.keys(j?.http?.headers ?? {})) if (!headers().some((h) => h.name.trim().toLowerCase() === old)) given[old] = null;
      const hasBody = body() && method() !== "GET" && method() !== "HEAD";
      input.http = { method: method(), url: url().trim(), headers: given, body: hasBody ? body() : undefined, timeout_ms: timeout() };
      if (!j) input.kind = "http";
    }
    try {
      props.onSaved(j ? await api.jobs.update(j.id, input) : await api.jobs.create(input), !j);
    } catch (err) {
      if (err instanceof ApiError && err.code === "ssrf_blocked") setUrlError(err.message);
      else if (err instanceof ApiError && err.code === "validation_failed" && Array.isArray(err.details?.issues))
        setError((err.details!.issues as { path: string; message: string }[]).map((i) => `${i.path || "request"}: ${i.message}`).join("; "));
      else setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal open={!!props.job} onOpenChange={(open) => !open && props.onClose()} title={existing() ? `Edit ${existing()!.name}` : "New job"} wide>
      <form onSubmit={submit} class="job-form">
        <Show when={error()}>
          <div class="alert error" role="alert">
            {error()}
          </div>
        </Show>
        <div class="field">
          <label for="job-name">Name</label>
          <input id="job-name" type="text" maxLength={100} placeholder="nightly-sync" value={name()} disabled={platform()} onInput={(e) => setName(e.currentTarget.value)} />
          <Show when={platform()}>
            <span class="hint">Platform jobs keep their name; they can be rescheduled or disabled.</span>
          </Show>
        </div>
        <div class="form-cols">
          <div class="field">
            <label for="job-schedule">Schedule</label>
            <input
              id="job-schedule"
              class="mono"
              type="text"
              placeholder="0 3 * * *"
              value={schedule()}
              aria-describedby="job-schedule-preview"
              aria-invalid={!!preview()?.error}
              onInput={(e) => setSchedule(e.currentTarget.value)}
            />
            <span class="hint">Minute hour day month weekday, or @hourly, @daily…</span>
          </div>
          <div class="field">
            <label for="job-tz">Timezone</label>
            <input id="job-tz" type="text" list="job-tz-list" value={timezone()} onInput={(e) => setTimezone(e.currentTarget.value)} />
            <datalist id="job-tz-list">
              <For each={TIMEZONES}>{(tz) => <option value={tz} />}</For>
            </datalist>
          </div>
        </div>
        <div id="job-schedule-preview" class="cron-preview" data-testid="cron-preview" aria-live="polite">
          <Switch fallback={<span class="muted">…</span>}>
            <Match when={preview()?.error}>
              <span class="error-text">{preview()!.error}</span>
            </Match>
            <Match when={preview()?.runs}>
              <span class="muted">Next runs: </span>
              <ol>
                <For each={preview()!.runs}>{(t) => <li title={t}>{dateTime(t)}</li>}</For>
              </ol>
            </Match>
          </Switch>
        </div>
        <Show when={isHttp()}>
          <div class="form-cols">
            <div class="field" style={{ flex: "0 0 110px" }}>
              <label for="job-method">Method</label>
              <select id="job-method" value={method()} onChange={(e) => setMethod(e.currentTarget.value as HttpMethod)}>
                <For each={METHODS}>{(m) => <option value={m}>{m}</option>}</For>
              </select>
            </div>
            <div class="field" style={{ flex: "1" }}>
              <label for="job-url">URL</label>
              <input
                id="job-url"
                type="url"
                placeholder="https://api.example.com/sync"
                value={url()}
                aria-invalid={!!urlError()}
                aria-describedby={urlError() ? "job-url-error" : undefined}
                onInput={(e) => {
                  setUrl(e.currentTarget.value);
                  setUrlError(undefined);
                }}
              />
              <Show when={urlError()}>
                <span class="error" id="job-url-error" role="alert">
                  {urlError()}
                </span>
              </Show>
            </div>
          </div>
          <fieldset class="field" style={{ border: 0, padding: 0, margin: "0 0 12px" }}>
            <legend class="label" style={{ padding: 0, "margin-bottom": "4px" }}>
              Headers
            </legend>
            <Index each={headers()}>
              {(h, i) => (
                <div class="header-row">
                  <input
                    type="text"
                    placeholder="name"
                    aria-label={`Header ${i + 1} name`}
                    value={h().name}
                    onInput={(e) => setHeaders((hs) => hs.map((x, k) => (k === i ? { ...x, name: e.currentTarget.value } : x)))}
                  />
                  <input
                    type="text"
                    placeholder="value"
                    aria-label={`Header ${i + 1} value`}
                    value={h().value}
                    onInput={(e) => setHeaders((hs) => hs.map((x, k) => (k === i ? { ...x, value: e.currentTarget.value } : x)))}
                  />
                  <button type="button" class="btn ghost small icon" aria-label={`Remove header ${i + 1}`} onClick={() => setHeaders((hs) => hs.filter((_, k) => k !== i))}>
                    ✕
                  </button>
                </div>
              )}
            </Index>
            <div>
              <button type="button" class="btn small" onClick={() => setHeaders((hs) => [...hs, { name: "", value: "" }])}>
                Add header
              </button>
              <span class="hint muted"> Authorization, cookies and tokens are stored encrypted and shown back as {MASK}.</span>
            </div>
          </fieldset>
          <Show when={method() !== "GET" && method() !== "HEAD"}>
            <div class="field">
              <label for="job-body">Body (optional)</label>
              <textarea id="job-body" class="mono" rows={3} value={body()} onInput={(e) => setBody(e.currentTarget.value)} />
            </div>
          </Show>
        </Show>
        <div class="form-cols">
          <Show when={isHttp()}>
            <div class="field">
              <label for="job-timeout">Timeout (ms, 100–60,000)</label>
              <input id="job-timeout" type="number" min="100" max="60000" step="100" value={timeout()} onInput={(e) => setTimeoutMs(Number(e.currentTarget.value) || 10_000)} />
            </div>
          </Show>
          <div class="field">
            <label for="job-retries">Retries (0–10)</label>
            <input id="job-retries" type="number" min="0" max="10" value={retries()} onInput={(e) => setRetries(Math.max(0, Math.min(10, Number(e.currentTarget.value) || 0)))} />
          </div>
          <div class="field">
            <label for="job-missed">Missed runs</label>
            <select id="job-missed" value={missed()} onChange={(e) => setMissed(e.currentTarget.value as "skip" | "run_once")}>
              <option value="skip">Skip them</option>
              <option value="run_once">Run once</option>
            </select>
          </div>
        </div>
        <div class="btn-row end">
          <button type="button" class="btn" onClick={() => props.onClose()}>
            Cancel
          </button>
          <button type="submit" class="btn primary" disabled={busy() || (!platform() && !name().trim()) || !schedule().trim()}>
            {busy() ? "Saving…" : existing() ? "Save job" : "Create job"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
