import { A, useSearchParams } from "@solidjs/router";
import { createResource, createSignal, Match, onCleanup, Show, Switch } from "solid-js";
import { api, type Backup, type BackupSchedule, type Credentials, type Project, type Restore, type RestoreMode } from "../api";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { bytes, dateTime, relTime } from "../components/format";
import { Modal } from "../components/Modal";
import { ShownOnce } from "../components/ShownOnce";
import { Empty, LoadError, SkeletonBlock, safe } from "../components/States";
import { ListTable } from "../components/ListTable";
import { Badge } from "../components/StatusBadge";
import { createSubmit, FormError } from "../components/Submit";
import { notify } from "../components/toast";
import { ImportWizard } from "./databaseImport";
import { useProject, useProjectCrumbs } from "./project";

// Database tools: the project's backups (made now, on a schedule or uploaded), their verification,
// download and restore, the restore history with its rollback, and the table import wizard.
const POLL_MS = 1500;

const verifying = (b: Backup) => b.status === "completed" && !!b.verify_started_at && !b.verified_at && !b.verify_error;
const usable = (b: Backup) => b.status === "completed" || b.status === "verified";
const restoreBusy = (r: Restore) => r.status === "restoring" || r.status === "swapping" || r.status === "rolling_back";
const canRollBack = (r: Restore) => !!r.rollback_until && Date.parse(r.rollback_until) > Date.now();

export default function DatabaseTools() {
  useProjectCrumbs("Database tools");
  const { id, refetch: refetchProject } = useProject();
  const [params] = useSearchParams<{ import?: string }>();
  const [backupsRes, { refetch }] = createResource(id, (pid) => api.backups.list(pid).then((r) => r.items));
  const [restoresRes, { refetch: refetchRestores }] = createResource(id, (pid) => api.backups.restores(pid).then((r) => r.items));
  const backups = safe(backupsRes);
  const restores = safe(restoresRes);
  const [toRestore, setToRestore] = createSignal<Backup>();
  const [toDelete, setToDelete] = createSignal<Backup>();

  // While a backup, a verification or a restore is under way, look again.
  const timer = setInterval(() => {
    if (backups()?.some((b) => b.status === "running" || verifying(b))) refetch();
    if (restores()?.some(restoreBusy)) {
      refetchRestores();
      refetchProject();
    }
  }, POLL_MS);
  onCleanup(() => clearInterval(timer));

  const backUpNow = createSubmit(async () => {
    await api.backups.create(id());
    notify.success("Backup started");
    refetch();
  });

  return (
    <>
      <div class="page-head">
        <h1>Database tools</h1>
        <span class="sub">Backups and restores of the database and files; imports into tables.</span>
        <div class="spacer" />
        <UploadDump onUploaded={refetch} />
        <button class="btn primary" disabled={backUpNow.busy()} onClick={() => backUpNow.submit()}>
          {backUpNow.busy() ? "Starting…" : "Back up now"}
        </button>
      </div>
      <FormError error={backUpNow.error()} />

      <section class="panel flush" aria-labelledby="backups-title">
        <div class="panel-head" style={{ padding: "12px 14px 0" }}>
          <h2 id="backups-title">Backups</h2>
        </div>
        <BackupTable backups={backups()} error={backupsRes.error} onBackUpNow={() => backUpNow.submit()} onRestore={setToRestore} onDelete={setToDelete} onChanged={refetch} />
      </section>

      <div class="grid-2">
        <ScheduleSection />
        <RestoreHistory restores={restores()} error={restoresRes.error} retry={refetchRestores} onRolledBack={() => (refetchRestores(), refetchProject())} />
      </div>

      <ImportWizard initialTable={params.import} />

      <RestoreDialog
        backup={toRestore()}
        onClose={() => setToRestore(undefined)}
        onStarted={() => {
          refetchRestores();
          refetchProject();
        }}
      />

      <ConfirmDialog
        open={!!toDelete()}
        onOpenChange={(open) => !open && setToDelete(undefined)}
        title="Delete backup"
        confirmLabel="Delete backup"
        danger
        onConfirm={async () => {
          await api.backups.remove(id(), toDelete()!.id);
          notify.success("Backup deleted");
          refetch();
        }}
      >
        <p>The backup of {dateTime(toDelete()?.created_at)} and its files are deleted. It can no longer be restored.</p>
      </ConfirmDialog>
    </>
  );
}

function BackupTable(props: {
  backups: Backup[] | undefined;
  error: unknown;
  onBackUpNow: () => void;
  onRestore: (b: Backup) => void;
  onDelete: (b: Backup) => void;
  onChanged: () => void;
}) {
  const { id } = useProject();
  const download = async (b: Backup) => {
    try {
      const { url } = await api.backups.downloadUrl(id(), b.id);
      startDownload(url);
    } catch (err) {
      notify.error("Download failed", err);
    }
  };
  const verify = async (b: Backup) => {
    try {
      await api.backups.verify(id(), b.id);
      notify.info("Verification started", "The backup is being restored into a scratch database and compared.");
      props.onChanged();
    } catch (err) {
      notify.error("Verification did not start", err);
    }
  };
  return (
    <ListTable
      items={props.backups}
      error={props.error}
      retry={props.onChanged}
      cols={5}
      loadingRows={2}
      class="data backups"
      labelledBy="backups-title"
      empty={
        <Empty title="No backups yet" action={<button class="btn primary" onClick={() => props.onBackUpNow()}>Back up now</button>}>
          A backup holds the database (pg_dump) and the stored files. Each one is verified by restoring it into a scratch database.
        </Empty>
      }
      head={
        <tr>
          <th>Created</th>
          <th>Status</th>
          <th class="hide-narrow">Size</th>
          <th class="hide-narrow">Trigger</th>
          <th>
            <span class="sr-only">Actions</span>
          </th>
        </tr>
      }
    >
      {(b) => (
        <tr data-backup={b.id} data-status={b.status} data-trigger={b.trigger}>
          <td class="nowrap" title={dateTime(b.created_at)}>
            {dateTime(b.created_at)}
            <div class="muted">{relTime(b.created_at)}</div>
          </td>
          <td>
            <BackupState backup={b} />
          </td>
          <td class="nowrap hide-narrow" data-testid="backup-size">
            {bytes(b.bytes.total)}
            <Show when={b.status === "running"}>
              <span class="muted"> so far</span>
            </Show>
            <Show when={b.files_count > 0}>
              <div class="muted">{b.files_count} files</div>
            </Show>
          </td>
          <td class="hide-narrow">{b.trigger}</td>
          <td class="actions">
            <div class="btn-row end">
              <Show when={usable(b)}>
                <button class="btn small" onClick={() => download(b)} aria-label={`Download backup of ${dateTime(b.created_at)}`}>
                  Download
                </button>
                <button class="btn small" disabled={verifying(b)} onClick={() => verify(b)} aria-label={`Verify backup of ${dateTime(b.created_at)}`}>
                  Verify
                </button>
                <button class="btn small" onClick={() => props.onRestore(b)} aria-label={`Restore backup of ${dateTime(b.created_at)}`}>
                  Restore…
                </button>
              </Show>
              <Show when={b.status !== "running"}>
                <button class="btn small" onClick={() => props.onDelete(b)} aria-label={`Delete backup of ${dateTime(b.created_at)}`}>
                  Delete
                </button>
              </Show>
            </div>
          </td>
        </tr>
      )}
    </ListTable>
  );
}

/** Running, failed, or complete and how its verification went (status "verified" is a complete backup that restored). */
function BackupState(props: { backup: Backup }) {
  const b = () => props.backup;
  return (
    <Switch>
      <Match when={b().status === "running"}>
        <Badge tone="info">running</Badge>
        <div class="muted small-text">{bytes(b().bytes.total)} so far</div>
      </Match>
      <Match when={b().status === "failed"}>
        <Badge tone="bad">failed</Badge>
        <div class="error-text small-text">{b().failure_reason}</div>
      </Match>
      <Match when={b().status === "verified"}>
        <span title={`Restored and compared ${dateTime(b().verified_at)}`}>
          <Badge tone="ok">verified</Badge> <span class="muted small-text">{relTime(b().verified_at)}</span>
        </span>
      </Match>
      <Match when={verifying(b())}>
        <Badge tone="info">verifying</Badge>
      </Match>
      <Match when={b().verify_error}>
        <Badge tone="warn">did not verify</Badge>
        <div class="error-text small-text">{b().verify_error}</div>
      </Match>
      <Match when={true}>
        <Badge tone="ok" plain>
          completed
        </Badge>{" "}
        <span class="muted small-text">not verified</span>
      </Match>
    </Switch>
  );
}

/** Downloads a URL through a link (the signed URL needs no session; the browser saves the file). */
function startDownload(url: string) {
  const a = document.createElement("a");
  a.href = url;
  a.download = "";
  document.body.appendChild(a);
  a.click();
  a.remove();
}

function UploadDump(props: { onUploaded: () => void }) {
  const { id } = useProject();
  let input!: HTMLInputElement;
  const [busy, setBusy] = createSignal(false);
  const upload = async (file: File | undefined) => {
    if (!file) return;
    setBusy(true);
    try {
      await api.backups.upload(id(), file);
      notify.success(`Uploaded ${file.name}`, "It is verified by its first restore into a scratch database.");
      props.onUploaded();
    } catch (err) {
      notify.error(`Upload of ${file.name} failed`, err);
    } finally {
      setBusy(false);
      input.value = "";
    }
  };
  return (
    <>
      <input ref={input} type="file" class="sr-only" id="dump-input" tabIndex={-1} accept=".dump,.backup,.pgdump,.sql,application/octet-stream,application/sql" onChange={(e) => upload(e.currentTarget.files?.[0])} />
      <button class="btn" disabled={busy()} onClick={() => input.click()} title="A pg_dump file (custom format, or plain .sql), taken as a backup of this project">
        {busy() ? "Uploading…" : "Upload a dump"}
      </button>
    </>
  );
}

function ScheduleSection() {
  const { id } = useProject();
  const [scheduleRes, { refetch, mutate }] = createResource(id, (pid) => api.backups.schedule(pid));
  return (
    <section class="panel" aria-labelledby="schedule-title">
      <div class="panel-head">
        <h2 id="schedule-title">Schedule</h2>
      </div>
      <Switch>
        <Match when={scheduleRes.error}>
          <LoadError error={scheduleRes.error} retry={refetch} />
        </Match>
        <Match when={safe(scheduleRes)()}>{(s) => <ScheduleForm initial={s()} onSaved={mutate} />}</Match>
        <Match when={true}>
          <SkeletonBlock lines={4} />
        </Match>
      </Switch>
    </section>
  );
}

const DAILY = /^(\d{1,2}) (\d{1,2}) \* \* \*$/;
const pad = (n: string) => n.padStart(2, "0");

function ScheduleForm(props: { initial: BackupSchedule; onSaved: (s: BackupSchedule) => void }) {
  const { id } = useProject();
  const [enabled, setEnabled] = createSignal(props.initial.enabled);
  const [cron, setCron] = createSignal(props.initial.schedule);
  const [timezone, setTimezone] = createSignal(props.initial.timezone);
  const [keepDaily, setKeepDaily] = createSignal(props.initial.keep_daily);
  const [keepWeekly, setKeepWeekly] = createSignal(props.initial.keep_weekly);
  // A daily schedule is edited as a time of day; any other cron expression as text.
  const daily = () => DAILY.exec(cron());
  const time = () => (daily() ? `${pad(daily()![2]!)}:${pad(daily()![1]!)}` : "");
  const setTime = (value: string) => {
    const [h, m] = value.split(":");
    if (h !== undefined && m !== undefined) setCron(`${Number(m)} ${Number(h)} * * *`);
  };
  const save = createSubmit(async () => {
    const saved = await api.backups.setSchedule(id(), { enabled: enabled(), schedule: cron(), timezone: timezone(), keep_daily: keepDaily(), keep_weekly: keepWeekly() });
    props.onSaved(saved);
    notify.success(saved.enabled ? "Backup schedule saved" : "Scheduled backups are off");
  });
  return (
    <form onSubmit={save.submit}>
      <FormError error={save.error()} />
      <label class="switch-row">
        <input type="checkbox" role="switch" checked={enabled()} onChange={(e) => setEnabled(e.currentTarget.checked)} />
        Back up on a schedule
      </label>
      <div class="form-cols">
        <Show
          when={daily()}
          fallback={
            <div class="field">
              <label for="schedule-cron">Schedule (cron)</label>
              <input id="schedule-cron" class="mono" type="text" value={cron()} onInput={(e) => setCron(e.currentTarget.value)} />
            </div>
          }
        >
          <div class="field">
            <label for="schedule-time">Daily at</label>
            <input id="schedule-time" type="time" value={time()} onInput={(e) => setTime(e.currentTarget.value)} />
          </div>
        </Show>
        <div class="field">
          <label for="schedule-tz">Timezone</label>
          <input id="schedule-tz" type="text" value={timezone()} onInput={(e) => setTimezone(e.currentTarget.value)} />
        </div>
      </div>
      <div class="form-cols">
        <div class="field">
          <label for="keep-daily">Keep daily</label>
          <input id="keep-daily" type="number" min="0" max="366" value={keepDaily()} onInput={(e) => setKeepDaily(e.currentTarget.valueAsNumber || 0)} aria-describedby="keep-hint" />
        </div>
        <div class="field">
          <label for="keep-weekly">Keep weekly</label>
          <input id="keep-weekly" type="number" min="0" max="520" value={keepWeekly()} onInput={(e) => setKeepWeekly(e.currentTarget.valueAsNumber || 0)} aria-describedby="keep-hint" />
        </div>
      </div>
      <p id="keep-hint" class="muted small-text">
        Scheduled backups kept: the newest of each of the last {keepDaily()} days and {keepWeekly()} weeks. Manual and uploaded backups are never pruned.
      </p>
      <div class="btn-row">
        <button type="submit" class="btn primary" disabled={save.busy()}>
          {save.busy() ? "Saving…" : "Save schedule"}
        </button>
        <span class="muted" data-testid="schedule-next">
          {props.initial.next_run ? `Next backup ${relTime(props.initial.next_run)} (${dateTime(props.initial.next_run)})` : "Scheduled backups are off."}
        </span>
      </div>
    </form>
  );
}

const RESTORE_TONE: Record<Restore["status"], "ok" | "bad" | "info" | ""> = {
  restoring: "info",
  swapping: "info",
  rolling_back: "info",
  finished: "ok",
  failed: "bad",
  rolled_back: "",
};

function RestoreHistory(props: { restores: Restore[] | undefined; error: unknown; retry: () => void; onRolledBack: () => void }) {
  const { id, project } = useProject();
  const [confirming, setConfirming] = createSignal(false);
  const rollbackPoint = () => props.restores?.find(canRollBack);
  return (
    <section class="panel flush" aria-labelledby="restores-title">
      <div class="panel-head" style={{ padding: "12px 14px 0" }}>
        <h2 id="restores-title">Restores</h2>
        <Show when={rollbackPoint()}>
          <button class="btn small danger" onClick={() => setConfirming(true)}>
            Roll back
          </button>
        </Show>
      </div>
      <ListTable
        items={props.restores}
        error={props.error}
        retry={props.retry}
        cols={4}
        loadingRows={2}
        labelledBy="restores-title"
        empty={<Empty title="No restores yet">Restores that replaced this project's database show here. A restore into a new project shows in that project.</Empty>}
        head={
          <tr>
            <th>Started</th>
            <th>Mode</th>
            <th>Status</th>
            <th class="hide-narrow">Rollback until</th>
          </tr>
        }
      >
        {(r) => (
          <tr data-restore={r.id}>
            <td class="nowrap" title={dateTime(r.created_at)}>
              {relTime(r.created_at)}
            </td>
            <td>{r.mode === "replace" ? "replaced" : r.source_project_id === r.project_id ? "new project" : "from another project"}</td>
            <td>
              <Badge tone={RESTORE_TONE[r.status]}>{r.status.replace("_", " ")}</Badge>
              <Show when={r.failure_reason}>
                <div class="error-text small-text">{r.failure_reason}</div>
              </Show>
            </td>
            <td class="hide-narrow nowrap">{r.rollback_until ? dateTime(r.rollback_until) : <span class="muted">—</span>}</td>
          </tr>
        )}
      </ListTable>
      <ConfirmDialog
        open={confirming()}
        onOpenChange={setConfirming}
        title="Roll back the restore"
        confirmLabel="Roll back"
        danger
        typeToConfirm={project()!.name}
        onConfirm={async () => {
          await api.backups.rollback(id());
          notify.success("Rolled back", "The database from before the restore is back.");
          props.onRolledBack();
        }}
      >
        <p>
          The database as it was before the restore of {dateTime(rollbackPoint()?.created_at)} is swapped back in and the restored one dropped. What was written
          since the restore is lost.
        </p>
      </ConfirmDialog>
    </section>
  );
}

function RestoreDialog(props: { backup: Backup | undefined; onClose: () => void; onStarted: () => void }) {
  const { id, project } = useProject();
  const [mode, setMode] = createSignal<RestoreMode>("new_project");
  const [name, setName] = createSignal("");
  const [typed, setTyped] = createSignal("");
  const [created, setCreated] = createSignal<Project & { credentials: Credentials }>();
  const newName = () => name() || `${project()!.name}-restored`.slice(0, 40);
  const nameValid = () => /^[a-z0-9_-]{3,40}$/.test(newName());
  const ready = () => typed() === project()!.name && (mode() === "replace" || nameValid());
  const restore = createSubmit(async () => {
    const confirm = typed();
    const started = await api.backups.restore(id(), props.backup!.id, mode() === "replace" ? { mode: "replace", confirm } : { mode: "new_project", confirm, name: newName() });
    props.onStarted();
    if (started.project) return setCreated(started.project);
    notify.success("Restore started", "The project is unavailable until its database is swapped.");
    close();
  });
  const close = () => {
    setTyped("");
    setName("");
    setCreated(undefined);
    restore.setError(undefined);
    props.onClose();
  };
  return (
    <Modal open={!!props.backup} onOpenChange={(open) => !open && close()} title={created() ? `Restoring into ${created()!.name}` : "Restore backup"} wide={!!created()}>
      <Show when={created()} fallback={
        <form onSubmit={(e) => (ready() ? restore.submit(e) : e.preventDefault())}>
          <FormError error={restore.error()} />
          <p>
            The backup of <strong>{dateTime(props.backup?.created_at)}</strong> ({bytes(props.backup?.bytes.total)}).
          </p>
          <fieldset class="field" style={{ border: 0, padding: 0, margin: "0 0 12px" }}>
            <legend class="label" style={{ padding: 0, "margin-bottom": "4px" }}>
              Restore into
            </legend>
            <label class="radio-option">
              <input type="radio" name="restore-mode" value="new_project" checked={mode() === "new_project"} onChange={() => setMode("new_project")} />
              <span>
                A new project <span class="muted">— this project stays as it is</span>
              </span>
            </label>
            <label class="radio-option">
              <input type="radio" name="restore-mode" value="replace" checked={mode() === "replace"} onChange={() => setMode("replace")} />
              <span>
                This project, replacing its database <span class="muted">— the current one is kept for a rollback</span>
              </span>
            </label>
          </fieldset>
          <Show when={mode() === "new_project"}>
            <div class="field">
              <label for="restore-name">New project's name</label>
              <input id="restore-name" type="text" autocomplete="off" spellcheck={false} value={newName()} onInput={(e) => setName(e.currentTarget.value.toLowerCase())} aria-invalid={!nameValid()} aria-describedby="restore-name-hint" />
              <span id="restore-name-hint" class={nameValid() ? "hint" : "error"}>
                3–40 characters: lowercase letters, digits, - and _.
              </span>
            </div>
          </Show>
          <Show when={mode() === "replace"}>
            <div class="alert warn">
              Everything written to <strong>{project()!.name}</strong> since this backup is replaced. Connections are cut while the databases are swapped.
            </div>
          </Show>
          <div class="field">
            <label for="restore-confirm">
              Type <code>{project()!.name}</code> to confirm
            </label>
            <input id="restore-confirm" type="text" autocomplete="off" spellcheck={false} value={typed()} onInput={(e) => setTyped(e.currentTarget.value)} />
          </div>
          <div class="btn-row end">
            <button type="button" class="btn" onClick={close}>
              Cancel
            </button>
            <button type="submit" class={mode() === "replace" ? "btn danger" : "btn primary"} disabled={!ready() || restore.busy()}>
              {restore.busy() ? "Starting…" : mode() === "replace" ? "Replace database" : "Restore into new project"}
            </button>
          </div>
        </form>
      }>
        {(p) => (
          <>
            <p>
              The backup is being restored into the new project <strong>{p().name}</strong>; it is ready when its status says so.
            </p>
            <ShownOnce
              items={[
                { label: "App connection string", value: p().credentials.app.connection_string, testId: "restored-conn-app" },
                { label: "Owner connection string", value: p().credentials.owner.connection_string },
                { label: "Read-only connection string", value: p().credentials.ro.connection_string },
              ]}
            />
            <div class="btn-row end">
              <A class="btn" href={`/projects/${p().id}`} onClick={close}>
                Open {p().name}
              </A>
              <button class="btn primary" onClick={close}>
                I have saved them
              </button>
            </div>
          </>
        )}
      </Show>
    </Modal>
  );
}
