import { useParams } from "@solidjs/router";
import { createContext, createEffect, createResource, Match, onCleanup, Switch, useContext, type JSX } from "solid-js";
import { api, type Project } from "../api";
import { setCurrentProject, useCrumbs } from "../components/Shell";
import { LoadError, safe, SkeletonBlock } from "../components/States";
import { isTransitional } from "../components/StatusBadge";

interface ProjectContextValue {
  /** The project; pages inside the layout are shown only once it is loaded. */
  project: () => Project | undefined;
  refetch: () => void;
  id: () => string;
}
const ProjectContext = createContext<ProjectContextValue>();

/** The project of the current page (inside ProjectLayout). */
export function useProject() {
  const ctx = useContext(ProjectContext);
  if (!ctx) throw new Error("useProject outside ProjectLayout");
  return ctx;
}

/** Sets the breadcrumbs Projects / <name> / <page>. */
export function useProjectCrumbs(page?: string) {
  const { project, id } = useProject();
  useCrumbs(() => [
    { label: "Projects", href: "/projects" },
    { label: project()?.name ?? id(), href: `/projects/${id()}` },
    ...(page ? [{ label: page }] : []),
  ]);
}

/** Loads the project once for all its pages; polls while an operation on it is under way. */
export function ProjectLayout(props: { children?: JSX.Element }) {
  const params = useParams<{ id: string }>();
  const [projectRes, { refetch }] = createResource(() => params.id, (id) => api.projects.get(id));
  const project = safe(projectRes);
  createEffect(() => project() && setCurrentProject(project()));
  const timer = setInterval(() => {
    const p = project();
    if (p && isTransitional(p.status)) refetch();
  }, 1500);
  onCleanup(() => clearInterval(timer));
  return (
    <ProjectContext.Provider value={{ project, refetch, id: () => params.id }}>
      <Switch>
        <Match when={projectRes.error}>
          <LoadError error={projectRes.error} retry={refetch} />
        </Match>
        <Match when={!project()}>
          <SkeletonBlock lines={6} />
        </Match>
        <Match when={project()}>{props.children}</Match>
      </Switch>
    </ProjectContext.Provider>
  );
}
