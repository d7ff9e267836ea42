import { createSignal, Show, type JSX } from "solid-js";
import { Modal } from "./Modal";
import { notify } from "./toast";

/**
 * Asks before doing something that cannot be taken back. With `typeToConfirm` the button stays
 * disabled until that exact text is typed (a project's name before deleting it).
 */
export function ConfirmDialog(props: {
  open: boolean;
  onOpenChange: (open: boolean) => void;
  title: string;
  confirmLabel: string;
  danger?: boolean;
  typeToConfirm?: string;
  onConfirm: () => Promise<unknown>;
  children: JSX.Element;
}) {
  const [typed, setTyped] = createSignal("");
  const [busy, setBusy] = createSignal(false);
  const ready = () => !busy() && (!props.typeToConfirm || typed() === props.typeToConfirm);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!ready()) return;
    setBusy(true);
    try {
      await props.onConfirm();
      props.onOpenChange(false);
      setTyped("");
    } catch (err) {
      notify.error(`${props.title} failed`, err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal
      open={props.open}
      onOpenChange={(open) => {
        if (!open) setTyped("");
        props.onOpenChange(open);
      }}
      title={props.title}
    >
      <form onSubmit={submit}>
        <div style={{ "margin-bottom": "12px" }}>{props.children}</div>
        <Show when={props.typeToConfirm}>
          <div class="field">
            <label for="confirm-text">
              Type <code>{props.typeToConfirm}</code> to confirm
            </label>
            <input id="confirm-text" type="text" autocomplete="off" spellcheck={false} value={typed()} onInput={(e) => setTyped(e.currentTarget.value)} />
          </div>
        </Show>
        <div class="btn-row end">
          <button type="button" class="btn" onClick={() => props.onOpenChange(false)}>
            Cancel
          </button>
          <button type="submit" class={props.danger ? "btn danger" : "btn primary"} disabled={!ready()}>
            {busy() ? "Working…" : props.confirmLabel}
          </button>
        </div>
      </form>
    </Modal>
  );
}
