import { Toast, toaster } from "@kobalte/core/toast";
import { Portal } from "solid-js/web";
import { ApiError } from "../api";

type Tone = "error" | "success" | "info";

function show(tone: Tone, title: string, description?: string) {
  toaster.show((props) => (
    <Toast toastId={props.toastId} class={`toast ${tone}`} duration={tone === "error" ? 8000 : 4000}>
      <div class="body">
        <Toast.Title class="title">{title}</Toast.Title>
        {description && <Toast.Description class="desc">{description}</Toast.Description>}
      </div>
      <Toast.CloseButton class="btn ghost small icon" aria-label="Dismiss">
        ✕
      </Toast.CloseButton>
    </Toast>
  ));
}

/** Toasts: errors say what failed and why (the server's message), successes say what happened. */
export const notify = {
  success: (title: string, description?: string) => show("success", title, description),
  info: (title: string, description?: string) => show("info", title, description),
  error(title: string, err?: unknown) {
    const message = err instanceof ApiError ? err.message : err instanceof Error ? err.message : err ? String(err) : undefined;
    show("error", title, message);
  },
};

export function ToastRegion() {
  return (
    <Portal>
      <Toast.Region aria-label="Notifications">
        <Toast.List class="toast-list" />
      </Toast.Region>
    </Portal>
  );
}
