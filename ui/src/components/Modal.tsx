import { Dialog } from "@kobalte/core/dialog";
import type { JSX } from "solid-js";

/** A dialog (Kobalte: focus trapped, Escape closes, labelled by its title). */
export function Modal(props: { open: boolean; onOpenChange: (open: boolean) => void; title: string; wide?: boolean; children: JSX.Element }) {
  return (
    <Dialog open={props.open} onOpenChange={props.onOpenChange}>
      <Dialog.Portal>
        <Dialog.Overlay class="overlay" />
        <div class="dialog-positioner">
          <Dialog.Content class={props.wide ? "dialog wide" : "dialog"}>
            <div class="dialog-head">
              <Dialog.Title as="h2">{props.title}</Dialog.Title>
              <Dialog.CloseButton class="btn ghost icon" aria-label="Close">
                ✕
              </Dialog.CloseButton>
            </div>
            {props.children}
          </Dialog.Content>
        </div>
      </Dialog.Portal>
    </Dialog>
  );
}
