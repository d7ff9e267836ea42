import { Navigate, Route, Router, useLocation, useNavigate, type RouteSectionProps } from "@solidjs/router";
import { lazy, onMount } from "solid-js";
import { setUnauthorizedHandler } from "./api";
import { Shell, useCrumbs } from "./components/Shell";
import { Empty } from "./components/States";
import { ToastRegion } from "./components/toast";
import Audit from "./pages/audit";
import Jobs from "./pages/jobs";
import Keys from "./pages/keys";
import Overview from "./pages/overview";
import { ProjectLayout } from "./pages/project";
import Projects from "./pages/projects";
import SignIn from "./pages/signin";
import Storage from "./pages/storage";
import Users from "./pages/users";

// CodeMirror is big: the SQL editor and the table browser load on first visit.
const Sql = lazy(() => import("./pages/sql"));
const Tables = lazy(() => import("./pages/tables"));
const Database = lazy(() => import("./pages/database"));

function Root(props: RouteSectionProps) {
  const navigate = useNavigate();
  const location = useLocation();
  onMount(() =>
    setUnauthorizedHandler(() => {
      if (!location.pathname.startsWith("/login")) navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
    }),
  );
  return (
    <>
      <a href="#main" class="sr-only">
        Skip to content
      </a>
      {props.children}
      <ToastRegion />
    </>
  );
}

function NotFound() {
  useCrumbs(() => [{ label: "Not found" }]);
  return (
    <Empty title="No such page" action={<a class="btn" href="/projects">Go to projects</a>}>
      Nothing lives at {useLocation().pathname}.
    </Empty>
  );
}

export function App() {
  return (
    <Router root={Root}>
      <Route path="/login" component={SignIn} />
      <Route path="/" component={Shell}>
        <Route path="/" component={() => <Navigate href="/projects" />} />
        <Route path="/projects" component={Projects} />
        <Route path="/projects/:id" component={ProjectLayout}>
          <Route path="/" component={Overview} />
          <Route path="/users" component={Users} />
          <Route path="/keys" component={Keys} />
          <Route path="/storage" component={Storage} />
          <Route path="/tables" component={Tables} />
          <Route path="/sql" component={Sql} />
          <Route path="/database" component={Database} />
        </Route>
        <Route path="/jobs" component={Jobs} />
        <Route path="/audit" component={Audit} />
        <Route path="*404" component={NotFound} />
      </Route>
    </Router>
  );
}
