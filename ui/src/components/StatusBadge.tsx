import type { ProjectStatus } from "../api";

const TONE: Record<ProjectStatus, string> = {
  ready: "ok",
  failed: "bad",
  deleted: "warn",
  purged: "",
  pending: "info",
  creating_roles: "info",
  creating_db: "info",
  configuring: "info",
  deleting: "info",
  restoring: "info",
  purging: "info",
};

export const isTransitional = (s: ProjectStatus) => TONE[s] === "info";

export function StatusBadge(props: { status: ProjectStatus }) {
  return <span class={`badge ${TONE[props.status]}`}>{props.status.replace("_", " ")}</span>;
}

export function Badge(props: { tone?: "ok" | "bad" | "warn" | "info" | ""; plain?: boolean; children: string }) {
  return <span class={`badge ${props.tone ?? ""} ${props.plain ? "plain" : ""}`}>{props.children}</span>;
}
