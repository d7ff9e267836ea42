import { A, useSearchParams } from "@solidjs/router";
import { createEffect, createMemo, createResource, createSignal, For, Match, Show, Switch } from "solid-js";
import { api, uploadObject, type Bucket, type StoredObject } from "../api";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { bytes, dateTime, relTime } from "../components/format";
import { Modal } from "../components/Modal";
import { Empty, LoadError, SkeletonBlock, SkeletonRows, safe } from "../components/States";
import { Badge } from "../components/StatusBadge";
import { notify } from "../components/toast";
import { useProject, useProjectCrumbs } from "./project";
import { createSubmit, FormError } from "../components/Submit";

interface Upload {
  name: string;
  key: string;
  size: number;
  sent: number;
  state: "uploading" | "done" | "failed";
  error?: string;
}

export default function Storage() {
  useProjectCrumbs("Storage");
  const { id } = useProject();
  const [params, setParams] = useSearchParams<{ bucket?: string; prefix?: string; q?: string }>();
  const [bucketsRes, { refetch: refetchBuckets }] = createResource(id, (pid) => api.storage.buckets(pid).then((r) => r.items));
  const buckets = safe(bucketsRes);
  const bucket = () => params.bucket ?? buckets()?.[0]?.name;
  const prefix = () => params.prefix ?? "";
  const [creatingBucket, setCreatingBucket] = createSignal(false);
  const [deletingBucket, setDeletingBucket] = createSignal<Bucket>();

  // The listing of the bucket under the prefix, page by page (1000 keys a page).
  const [extra, setExtra] = createSignal<StoredObject[]>([]);
  const [cursor, setCursor] = createSignal<string | null>(null);
  const [listingRes, { refetch: refetchObjects }] = createResource(
    () => (bucket() ? { pid: id(), bucket: bucket()!, prefix: prefix() } : undefined),
    async (k) => {
      const page = await api.storage.objects(k.pid, k.bucket, { prefix: k.prefix || undefined, limit: 1000 });
      setExtra([]);
      setCursor(page.next_cursor);
      return page.items;
    },
  );
  const listing = safe(listingRes);
  const loadMore = async () => {
    try {
      const page = await api.storage.objects(id(), bucket()!, { prefix: prefix() || undefined, cursor: cursor()!, limit: 1000 });
      setExtra((e) => [...e, ...page.items]);
      setCursor(page.next_cursor);
    } catch (err) {
      notify.error("Could not list more objects", err);
    }
  };

  // Keys under the prefix, grouped into the next folder level and the files at this level.
  const entries = createMemo(() => {
    const q = (params.q ?? "").toLowerCase();
    const folders = new Map<string, { count: number; size: number }>();
    const files: (StoredObject & { name: string })[] = [];
    for (const o of [...(listing() ?? []), ...extra()]) {
      const rest = o.key.slice(prefix().length);
      const slash = rest.indexOf("/");
      if (slash >= 0) {
        const name = rest.slice(0, slash);
        if (q && !name.toLowerCase().includes(q)) continue;
        const f = folders.get(name) ?? { count: 0, size: 0 };
        f.count++;
        f.size += o.size;
        folders.set(name, f);
      } else if (!q || rest.toLowerCase().includes(q)) {
        files.push({ ...o, name: rest });
      }
    }
    return { folders: [...folders.entries()], files };
  });

  const go = (next: { bucket?: string; prefix?: string }) => setParams({ bucket: next.bucket ?? bucket(), prefix: next.prefix || undefined, q: undefined });
  const crumbs = () => {
    const parts = prefix().split("/").filter(Boolean);
    return parts.map((name, i) => ({ name, prefix: parts.slice(0, i + 1).join("/") + "/" }));
  };
  const currentBucket = () => buckets()?.find((b) => b.name === bucket());

  // Uploads: one at a time, each with its progress bar.
  const [uploads, setUploads] = createSignal<Upload[]>([]);
  const [dragging, setDragging] = createSignal(false);
  let fileInput!: HTMLInputElement;
  const update = (key: string, patch: Partial<Upload>) => setUploads((list) => list.map((u) => (u.key === key ? { ...u, ...patch } : u)));
  const upload = async (files: FileList | File[]) => {
    const b = bucket();
    if (!b) return;
    const queue = [...files].map((f) => ({ file: f, key: prefix() + f.name }));
    setUploads((list) => [...list.filter((u) => u.state === "uploading"), ...queue.map((q) => ({ name: q.file.name, key: q.key, size: q.file.size, sent: 0, state: "uploading" as const }))]);
    for (const q of queue) {
      try {
        await uploadObject(id(), b, q.key, q.file, (sent) => update(q.key, { sent }));
        update(q.key, { sent: q.file.size, state: "done" });
      } catch (err) {
        update(q.key, { state: "failed", error: (err as Error).message });
        notify.error(`Upload of ${q.file.name} failed`, err);
      }
    }
    refetchObjects();
    refetchBuckets();
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    if (e.dataTransfer?.files.length) upload(e.dataTransfer.files);
  };

  const [toDelete, setToDelete] = createSignal<StoredObject>();
  const togglePublic = async (b: Bucket) => {
    try {
      await api.storage.updateBucket(id(), b.name, { public: !b.public });
      refetchBuckets();
    } catch (err) {
      notify.error("Could not change the bucket", err);
    }
  };

  createEffect(() => {
    // A bucket in the URL that does not exist (deleted meanwhile): back to the first one.
    if (buckets() && params.bucket && !buckets()!.some((b) => b.name === params.bucket)) setParams({ bucket: undefined, prefix: undefined });
  });

  return (
    <>
      <div class="page-head">
        <h1>Storage</h1>
        <span class="sub">Files in buckets; apps reach them through signed URLs.</span>
        <div class="spacer" />
        <button class="btn" onClick={() => setCreatingBucket(true)}>
          New bucket
        </button>
      </div>
      <Switch>
        <Match when={bucketsRes.error}>
          <LoadError error={bucketsRes.error} retry={refetchBuckets} />
        </Match>
        <Match when={!buckets()}>
          <SkeletonBlock />
        </Match>
        <Match when={buckets()!.length === 0}>
          <div class="panel">
            <Empty title="No buckets" action={<button class="btn primary" onClick={() => setCreatingBucket(true)}>Create a bucket</button>}>
              Buckets hold files. Make one public to serve its files without a signature.
            </Empty>
          </div>
        </Match>
        <Match when={true}>
          <div class="storage">
            <nav class="panel flush" aria-label="Buckets">
              <ul class="bucket-list">
                <For each={buckets()}>
                  {(b) => (
                    <li>
                      <A href={`/projects/${id()}/storage?bucket=${encodeURIComponent(b.name)}`} classList={{ current: b.name === bucket() }}>
                        <span>{b.name}</span>
                        <Show when={b.public}>
                          <Badge tone="warn" plain>
                            public
                          </Badge>
                        </Show>
                        <span class="count">{b.objects}</span>
                      </A>
                    </li>
                  )}
                </For>
              </ul>
            </nav>

            <section
              class="panel flush"
              aria-label={`Objects in ${bucket()}`}
              onDragOver={(e) => {
                e.preventDefault();
                setDragging(true);
              }}
              onDragLeave={() => setDragging(false)}
              onDrop={onDrop}
            >
              <div class="path-bar">
                <button class="btn ghost small" onClick={() => go({ prefix: "" })}>
                  {bucket()}
                </button>
                <For each={crumbs()}>
                  {(c) => (
                    <>
                      <span class="sep">/</span>
                      <button class="btn ghost small" onClick={() => go({ prefix: c.prefix })}>
                        {c.name}
                      </button>
                    </>
                  )}
                </For>
                <div style={{ flex: 1 }} />
                <Show when={currentBucket()}>
                  {(b) => (
                    <>
                      <span class="muted hide-narrow">{bytes(b().bytes)}</span>
                      <button class="btn small" onClick={() => togglePublic(b())} title={b().public ? "Files need a signed URL" : "Anyone with a link can read files"}>
                        Make {b().public ? "private" : "public"}
                      </button>
                      <button class="btn small" onClick={() => setDeletingBucket(b())}>
                        Delete bucket
                      </button>
                    </>
                  )}
                </Show>
              </div>
              <div class="path-bar">
                <div class="search">
                  <label for="object-filter" class="sr-only">
                    Filter this folder
                  </label>
                  <input
                    id="object-filter"
                    type="search"
                    data-search
                    placeholder="Filter this folder"
                    value={params.q ?? ""}
                    onInput={(e) => setParams({ q: e.currentTarget.value || undefined }, { replace: true })}
                  />
                </div>
                <div style={{ flex: 1 }} />
                <input ref={fileInput} type="file" multiple class="sr-only" id="upload-input" tabIndex={-1} onChange={(e) => e.currentTarget.files && upload(e.currentTarget.files)} />
                <button class="btn primary small" onClick={() => fileInput.click()}>
                  Upload files
                </button>
              </div>
              <div class={dragging() ? "dropzone over" : "dropzone"}>
                Drop files here to upload to <span class="mono">{bucket()}/{prefix()}</span>
              </div>
              <Show when={uploads().length}>
                <div class="uploads" aria-live="polite">
                  <For each={uploads()}>
                    {(u) => (
                      <div class="upload-row">
                        <span class="name">{u.name}</span>
                        <span class={u.state === "failed" ? "danger-text" : "muted"} style={{ "text-align": "right" }}>
                          {u.state === "failed" ? "failed" : u.state === "done" ? "done" : `${Math.floor((u.sent / Math.max(1, u.size)) * 100)}%`}
                        </span>
                        <div
                          class="progress"
                          role="progressbar"
                          aria-label={`Upload of ${u.name}`}
                          aria-valuemin="0"
                          aria-valuemax="100"
                          aria-valuenow={Math.floor((u.sent / Math.max(1, u.size)) * 100)}
                          style={{ "grid-column": "1 / -1" }}
                        >
                          <div style={{ width: `${(u.sent / Math.max(1, u.size)) * 100}%` }} />
                        </div>
                      </div>
                    )}
                  </For>
                </div>
              </Show>
              <Switch>
                <Match when={listingRes.error}>
                  <LoadError error={listingRes.error} retry={refetchObjects} />
                </Match>
                <Match when={listing() && entries().folders.length === 0 && entries().files.length === 0}>
                  <Empty title={params.q ? "Nothing matches" : "This folder is empty"}>
                    {params.q ? `No file or folder here matches “${params.q}”.` : "Upload files with the button above or drop them here."}
                  </Empty>
                </Match>
                <Match when={true}>
                  <div class="table-wrap">
                    <table class="data">
                      <thead>
                        <tr>
                          <th>Name</th>
                          <th>Size</th>
                          <th class="hide-narrow">Type</th>
                          <th class="hide-narrow">Updated</th>
                          <th>
                            <span class="sr-only">Actions</span>
                          </th>
                        </tr>
                      </thead>
                      <tbody>
                        <Show when={listing()} fallback={<SkeletonRows cols={5} rows={3} />}>
                          <For each={entries().folders}>
                            {([name, f]) => (
                              <tr>
                                <td>
                                  <button class="btn ghost small folder-link" onClick={() => go({ prefix: prefix() + name + "/" })}>
                                    <span aria-hidden="true">▸</span> {name}/
                                  </button>
                                </td>
                                <td class="muted">{bytes(f.size)}</td>
                                <td class="hide-narrow muted">{f.count} files</td>
                                <td class="hide-narrow" />
                                <td />
                              </tr>
                            )}
                          </For>
                          <For each={entries().files}>
                            {(o) => (
                              <tr data-object={o.key}>
                                <td class="mono" style={{ "overflow-wrap": "anywhere" }}>
                                  {o.name}
                                </td>
                                <td class="nowrap">{bytes(o.size)}</td>
                                <td class="hide-narrow muted">{o.content_type}</td>
                                <td class="hide-narrow nowrap" title={dateTime(o.updated_at)}>
                                  {relTime(o.updated_at)}
                                </td>
                                <td class="actions">
                                  <div class="btn-row end">
                                    <a class="btn small" href={api.storage.objectUrl(id(), bucket()!, o.key)} download={o.name} aria-label={`Download ${o.name}`}>
                                      Download
                                    </a>
                                    <button class="btn small" onClick={() => setToDelete(o)} aria-label={`Delete ${o.name}`}>
                                      Delete
                                    </button>
                                  </div>
                                </td>
                              </tr>
                            )}
                          </For>
                        </Show>
                      </tbody>
                    </table>
                  </div>
                  <Show when={cursor()}>
                    <div class="pager">
                      <button class="btn small" onClick={loadMore}>
                        Load more
                      </button>
                    </div>
                  </Show>
                </Match>
              </Switch>
            </section>
          </div>
        </Match>
      </Switch>

      <CreateBucket
        open={creatingBucket()}
        onOpenChange={setCreatingBucket}
        onCreated={(b) => {
          setCreatingBucket(false);
          refetchBuckets();
          go({ bucket: b.name, prefix: "" });
        }}
      />

      <ConfirmDialog
        open={!!toDelete()}
        onOpenChange={(open) => !open && setToDelete(undefined)}
        title="Delete file"
        confirmLabel="Delete"
        danger
        onConfirm={async () => {
          await api.storage.deleteObject(id(), bucket()!, toDelete()!.key);
          notify.success("Deleted", toDelete()!.key);
          refetchObjects();
          refetchBuckets();
        }}
      >
        <p>
          <code style={{ "overflow-wrap": "anywhere" }}>{toDelete()?.key}</code> is deleted for good.
        </p>
      </ConfirmDialog>

      <ConfirmDialog
        open={!!deletingBucket()}
        onOpenChange={(open) => !open && setDeletingBucket(undefined)}
        title="Delete bucket"
        confirmLabel="Delete bucket"
        danger
        typeToConfirm={deletingBucket()?.name}
        onConfirm={async () => {
          await api.storage.deleteBucket(id(), deletingBucket()!.name);
          notify.success(`Deleted bucket ${deletingBucket()!.name}`);
          setParams({ bucket: undefined, prefix: undefined });
          refetchBuckets();
        }}
      >
        <p>
          The bucket and its {deletingBucket()?.objects ?? 0} files ({bytes(deletingBucket()?.bytes ?? 0)}) are deleted for good.
        </p>
      </ConfirmDialog>
    </>
  );
}

function CreateBucket(props: { open: boolean; onOpenChange: (open: boolean) => void; onCreated: (b: Bucket) => void }) {
  const { id } = useProject();
  const [name, setName] = createSignal("");
  const [isPublic, setPublic] = createSignal(false);
  const valid = () => /^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$/.test(name());
  const { busy, error, submit } = createSubmit(async () => {
    if (!valid()) return;
    props.onCreated(await api.storage.createBucket(id(), { name: name(), public: isPublic() }));
    setName("");
    setPublic(false);
  });
  return (
    <Modal open={props.open} onOpenChange={props.onOpenChange} title="New bucket">
      <form onSubmit={submit}>
        <FormError error={error()} />
        <div class="field">
          <label for="bucket-name">Name</label>
          <input id="bucket-name" type="text" autocomplete="off" spellcheck={false} value={name()} onInput={(e) => setName(e.currentTarget.value.toLowerCase())} aria-describedby="bucket-hint" />
          <span id="bucket-hint" class={name() && !valid() ? "error" : "hint"}>
            3–63 characters of a–z, 0–9, - and _, starting and ending with a letter or digit.
          </span>
        </div>
        <label style={{ display: "flex", gap: "6px", "align-items": "center", "margin-bottom": "12px" }}>
          <input type="checkbox" checked={isPublic()} onChange={(e) => setPublic(e.currentTarget.checked)} />
          Public: anyone with a link can read its files
        </label>
        <div class="btn-row end">
          <button type="button" class="btn" onClick={() => props.onOpenChange(false)}>
            Cancel
          </button>
          <button type="submit" class="btn primary" disabled={!valid() || busy()}>
            Create bucket
          </button>
        </div>
      </form>
    </Modal>
  );
}
