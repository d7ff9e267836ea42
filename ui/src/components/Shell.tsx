import { A, useLocation, useNavigate } from "@solidjs/router";
import { createEffect, createResource, createSignal, For, Match, onCleanup, onMount, Show, Switch, type JSX } from "solid-js";
import { api, ApiError, type Me, type Project } from "../api";
import { cycleTheme, themePref } from "../theme";
import { safe, SkeletonBlock } from "./States";
import { notify } from "./toast";

export interface Crumb {
  label: string;
  href?: string;
}

const [crumbs, setCrumbs] = createSignal<Crumb[]>([]);
/** Sets the breadcrumbs of the page (after "AtlasHub"); follows the signals `make` reads. */
export function useCrumbs(make: () => Crumb[]) {
  createEffect(() => setCrumbs(make()));
}

// The project the current page belongs to, for the sidebar (set by ProjectLayout).
const [currentProject, setCurrentProject] = createSignal<Project | undefined>();
export { setCurrentProject };

const [me, setMe] = createSignal<Me | undefined>();
export { me };

/**
 * "/" focuses the page's search or filter field (the element marked data-search), unless the
 * user is typing somewhere already.
 */
function useSlashToSearch() {
  const onKey = (e: KeyboardEvent) => {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target as HTMLElement | null;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const field = document.querySelector<HTMLElement>("[data-search]");
    if (field) {
      e.preventDefault();
      field.focus();
    }
  };
  onMount(() => document.addEventListener("keydown", onKey));
  onCleanup(() => document.removeEventListener("keydown", onKey));
}

function ThemeToggle() {
  const label = () => ({ dark: "Dark", light: "Light", system: "System" })[themePref()];
  return (
    <button type="button" class="btn ghost small" onClick={cycleTheme} title="Theme: dark, light or the system's" aria-label={`Theme: ${label()}. Change theme`}>
      <span aria-hidden="true">{themePref() === "dark" ? "☾" : themePref() === "light" ? "☀" : "◐"}</span>
      <span class="hide-narrow">{label()}</span>
    </button>
  );
}

function Sidebar() {
  const location = useLocation();
  const projectId = () => /^\/projects\/([a-z0-9]{10})(\/|$)/.exec(location.pathname)?.[1];
  const base = () => `/projects/${projectId()}`;
  const name = () => {
    const p = currentProject();
    return p && p.id === projectId() ? p.name : projectId();
  };
  return (
    <nav class="sidebar" aria-label="Main">
      <div class="section">Console</div>
      <A href="/projects" end={!!projectId()}>
        Projects
      </A>
      <A href="/jobs">Jobs</A>
      <A href="/audit">Audit log</A>
      <Show when={projectId()}>
        <div class="section" title={name()}>
          {name()}
        </div>
        <A href={base()} end>
          Overview
        </A>
        <A href={`${base()}/tables`}>Tables</A>
        <A href={`${base()}/sql`}>SQL editor</A>
        <A href={`${base()}/database`}>Database tools</A>
        <A href={`${base()}/users`}>Database users</A>
        <A href={`${base()}/keys`}>API keys</A>
        <A href={`${base()}/storage`}>Storage</A>
      </Show>
    </nav>
  );
}

/** Everything behind sign-in: the session check, top bar, breadcrumbs and sidebar. */
export function Shell(props: { children?: JSX.Element }) {
  const navigate = useNavigate();
  const location = useLocation();
  const [sessionRes] = createResource(async () => {
    try {
      const user = await api.me();
      setMe(user);
      return user;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
        return undefined;
      }
      throw err;
    }
  });
  const session = safe(sessionRes);
  useSlashToSearch();
  createEffect(() => {
    const last = crumbs().at(-1)?.label;
    document.title = last ? `${last} · AtlasHub` : "AtlasHub";
  });

  const signOut = async () => {
    try {
      await api.logout();
    } catch (err) {
      notify.error("Sign-out failed", err);
    }
    setMe(undefined);
    navigate("/login", { replace: true });
  };

  return (
    <div class="shell">
      <header class="topbar">
        <A href="/projects" class="brand" aria-label="AtlasHub home">
          <img src="/favicon.svg" alt="" />
          <span>AtlasHub</span>
        </A>
        <nav class="crumbs" aria-label="Breadcrumb">
          <ol>
            <For each={crumbs()}>
              {(c, i) => (
                <li>
                  <Show when={c.href && i() < crumbs().length - 1} fallback={<span aria-current={i() === crumbs().length - 1 ? "page" : undefined}>{c.label}</span>}>
                    <A href={c.href!} end>
                      {c.label}
                    </A>
                  </Show>
                </li>
              )}
            </For>
          </ol>
        </nav>
        <div class="topbar-actions">
          <ThemeToggle />
          <Show when={me()}>
            <span class="user-email" title={me()!.email}>
              {me()!.email}
            </span>
            <button type="button" class="btn small" onClick={signOut}>
              Sign out
            </button>
          </Show>
        </div>
      </header>
      <Sidebar />
      <main class="main" id="main">
        <Switch>
          <Match when={sessionRes.error}>
            <div class="alert error" role="alert">
              {(sessionRes.error as Error).message}
            </div>
          </Match>
          <Match when={!session()}>
            <SkeletonBlock />
          </Match>
          <Match when={session()}>{props.children}</Match>
        </Switch>
      </main>
    </div>
  );
}
