import { useNavigate, useSearchParams } from "@solidjs/router";
import { createSignal, onCleanup, onMount, Show } from "solid-js";
import { api, ApiError } from "../api";
import { CodeBlock } from "../components/CopyButton";

/** Only paths on this site: "//evil.example" or "https://…" are not followed after sign-in. */
function safeNext(next: string | undefined) {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/login") ? next : "/projects";
}

export default function SignIn() {
  const navigate = useNavigate();
  const [params] = useSearchParams<{ next?: string }>();
  const [email, setEmail] = createSignal("");
  const [password, setPassword] = createSignal("");
  const [error, setError] = createSignal<string>();
  const [busy, setBusy] = createSignal(false);
  const [waitUntil, setWaitUntil] = createSignal(0);
  const [now, setNow] = createSignal(Date.now());
  const timer = setInterval(() => setNow(Date.now()), 500);
  onCleanup(() => clearInterval(timer));
  const secondsLeft = () => Math.max(0, Math.ceil((waitUntil() - now()) / 1000));
  const waitText = () => {
    const s = secondsLeft();
    return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  };

  // Already signed in: straight on.
  onMount(async () => {
    try {
      await api.me();
      navigate(safeNext(params.next), { replace: true });
    } catch {}
  });

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy() || secondsLeft() > 0) return;
    setBusy(true);
    setError(undefined);
    try {
      await api.login(email().trim(), password());
      navigate(safeNext(params.next), { replace: true });
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) {
        const retry = err.retryAfter ?? (Number(err.details?.retry_after) || 60);
        setWaitUntil(Date.now() + retry * 1000);
        setError("Too many sign-in attempts.");
      } else if (err instanceof ApiError && err.code === "invalid_credentials") {
        setError("Wrong email or password.");
      } else {
        setError(err instanceof Error ? err.message : String(err));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="signin">
      <form class="card" onSubmit={submit} aria-labelledby="signin-title">
        <div class="brand">
          <img src="/favicon.svg" alt="" width="22" height="22" />
          <span>AtlasHub</span>
        </div>
        <h1 id="signin-title" style={{ "margin-bottom": "14px" }}>
          Sign in
        </h1>
        <Show when={error()}>
          <div class={secondsLeft() > 0 ? "alert warn" : "alert error"} role="alert">
            {error()}
            <Show when={secondsLeft() > 0}> Try again in {waitText()}.</Show>
          </div>
        </Show>
        <div class="field">
          <label for="email">Email</label>
          <input id="email" type="email" autocomplete="username" required autofocus value={email()} onInput={(e) => {
              setEmail(e.currentTarget.value);
              setWaitUntil(0);
            }}
          />
        </div>
        <div class="field">
          <label for="password">Password</label>
          <input id="password" type="password" autocomplete="current-password" required value={password()} onInput={(e) => setPassword(e.currentTarget.value)} />
        </div>
        <button type="submit" class="btn primary" disabled={busy() || secondsLeft() > 0}>
          {busy() ? "Signing in…" : secondsLeft() > 0 ? `Wait ${waitText()}` : "Sign in"}
        </button>
        <div class="setup-hint">
          <p>No admin account yet? Create the first one on the server:</p>
          <CodeBlock text="atlashub admin create --email you@example.com" label="command" />
        </div>
      </form>
    </div>
  );
}
