// Run notifications: one POST to the job's webhook (Discord, or any URL taking JSON) through the SSRF
// guard. A notification that fails is logged and otherwise ignored: it never changes the run.
import { log } from "../platform/log";
import { guardedFetch, SsrfBlockedError, type GuardOptions } from "./ssrf";
import type { JobRow } from "./service";

const TIMEOUT_MS = 10_000;

export interface RunReport {
  job: Pick<JobRow, "id" | "name" | "project_id">;
  runId: string;
  attempt: number;
  status: string;
  responseStatus?: number;
  error?: string;
}

function isDiscord(url: URL) {
  return /^((canary|ptb)\.)?discord(app)?\.com$/.test(url.hostname) && url.pathname.startsWith("/api/webhooks/");
}

function summary(r: RunReport) {
  const detail = [`attempt ${r.attempt}`, r.responseStatus !== undefined ? `HTTP ${r.responseStatus}` : undefined].filter(Boolean).join(", ");
  return `AtlasHub job "${r.job.name}" ${r.status} (${detail})${r.error ? `: ${r.error}` : ""}`;
}

/** Discord wants `content` (2,000 characters at most); anything else gets the run as JSON, with a Slack-style `text`. */
export function notificationBody(webhook: string, r: RunReport) {
  const text = summary(r);
  if (isDiscord(new URL(webhook))) return { content: text.slice(0, 2000) };
  return {
    event: "job.run.finished",
    text,
    job: { id: r.job.id, name: r.job.name, project_id: r.job.project_id },
    run: { id: r.runId, status: r.status, attempt: r.attempt, response_status: r.responseStatus ?? null, error: r.error ?? null },
  };
}

export async function notify(webhook: string, report: RunReport, guard: GuardOptions, signal: AbortSignal) {
  // The URL carries the webhook's token: it is never logged, only the job and run ids are.
  const context = { job: report.job.id, run: report.runId };
  try {
    const { response } = await guardedFetch(
      webhook,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(notificationBody(webhook, report)),
        signal: AbortSignal.any([signal, AbortSignal.timeout(TIMEOUT_MS)]),
      },
      guard,
    );
    await response.body?.cancel();
    if (response.status < 200 || response.status > 299) log.warn("job notification refused", { ...context, status: response.status });
  } catch (err) {
    const reason = err instanceof SsrfBlockedError ? `ssrf_blocked: ${err.reason}` : ((err as { code?: string }).code ?? (err as Error).name);
    log.warn("job notification failed", { ...context, reason });
  }
}
