import { createSignal, Show } from "solid-js";

/** The text to show for a failed call: the server's message (ApiError) or the error's own. */
export const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * A form's call to the API: `submit` runs it once at a time (a second submit while busy is ignored)
 * and keeps what went wrong in `error` for <FormError>. `run` may throw to show its message.
 */
export function createSubmit(run: () => Promise<unknown>) {
  const [busy, setBusy] = createSignal(false);
  const [error, setError] = createSignal<string>();
  const submit = async (e?: Event) => {
    e?.preventDefault();
    if (busy()) return;
    setBusy(true);
    setError(undefined);
    try {
      await run();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, submit };
}

/** The error of a form, above its fields. */
export function FormError(props: { error: string | undefined }) {
  return (
    <Show when={props.error}>
      <div class="alert error" role="alert">
        {props.error}
      </div>
    </Show>
  );
}
