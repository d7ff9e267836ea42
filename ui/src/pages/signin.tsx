import { useNavigate, useSearchParams } from "@solidjs/router";
import { createSignal, Match, onCleanup, onMount, Show, Switch } from "solid-js";
import { api, ApiError } from "../api";
import { CodeBlock } from "../components/CopyButton";

/** Only paths on this site: "//evil.example" or "https://…" are not followed after sign-in. */
function safeNext(next: string | undefined) {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/login") ? next : "/projects";
}

/** A 429's wait, counted down: the submit button stays disabled until it is over. */
function createRateLimitWait() {
  const [waitUntil, setWaitUntil] = createSignal(0);
  const [now, setNow] = createSignal(Date.now());
  const timer = setInterval(() => setNow(Date.now()), 500);
  onCleanup(() => clearInterval(timer));
  const secondsLeft = () => Math.max(0, Math.ceil((waitUntil() - now()) / 1000));
  const waitText = () => {
    const s = secondsLeft();
    return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  };
  const start = (err: ApiError) => setWaitUntil(Date.now() + (err.retryAfter ?? (Number(err.details?.retry_after) || 60)) * 1000);
  return { secondsLeft, waitText, start, clear: () => setWaitUntil(0) };
}

function Brand() {
  return (
    <div class="brand">
      <img src="/favicon.svg" alt="" width="22" height="22" />
      <span>AtlasHub</span>
    </div>
  );
}

export default function SignIn() {
  const navigate = useNavigate();
  const [params] = useSearchParams<{ next?: string }>();
  // undefined while asking the server; true shows the first-run setup screen instead of sign-in.
  const [setupNeeded, setSetupNeeded] = createSignal<boolean>();
  const [notice, setNotice] = createSignal<string>();
  const done = () => navigate(safeNext(params.next), { replace: true });

  // Already signed in: straight on. No admin yet: the setup screen.
  onMount(async () => {
    try {
      await api.me();
      return done();
    } catch {}
    try {
      setSetupNeeded((await api.setupStatus()).needed);
    } catch {
      setSetupNeeded(false);
    }
  });

  return (
    <div class="signin">
      <Switch>
        <Match when={setupNeeded() === true}>
          <FirstRunSetup
            onDone={done}
            onAlreadyDone={() => {
              setNotice("An admin already exists: sign in.");
              setSetupNeeded(false);
            }}
          />
        </Match>
        <Match when={setupNeeded() === false}>
          <SignInForm onDone={done} notice={notice()} />
        </Match>
      </Switch>
    </div>
  );
}

function SignInForm(props: { onDone: () => void; notice?: string }) {
  const [email, setEmail] = createSignal("");
  const [password, setPassword] = createSignal("");
  const [error, setError] = createSignal<string>();
  const [busy, setBusy] = createSignal(false);
  const wait = createRateLimitWait();

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy() || wait.secondsLeft() > 0) return;
    setBusy(true);
    setError(undefined);
    try {
      await api.login(email().trim(), password());
      props.onDone();
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) {
        wait.start(err);
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
    <form class="card" onSubmit={submit} aria-labelledby="signin-title">
      <Brand />
      <h1 id="signin-title" style={{ "margin-bottom": "14px" }}>
        Sign in
      </h1>
      <Show when={props.notice && !error()}>
        <div class="alert info" role="status">
          {props.notice}
        </div>
      </Show>
      <Show when={error()}>
        <div class={wait.secondsLeft() > 0 ? "alert warn" : "alert error"} role="alert">
          {error()}
          <Show when={wait.secondsLeft() > 0}> Try again in {wait.waitText()}.</Show>
        </div>
      </Show>
      <div class="field">
        <label for="email">Email</label>
        <input id="email" type="email" autocomplete="username" required autofocus value={email()} onInput={(e) => {
            setEmail(e.currentTarget.value);
            wait.clear();
          }}
        />
      </div>
      <div class="field">
        <label for="password">Password</label>
        <input id="password" type="password" autocomplete="current-password" required value={password()} onInput={(e) => setPassword(e.currentTarget.value)} />
      </div>
      <button type="submit" class="btn primary" disabled={busy() || wait.secondsLeft() > 0}>
        {busy() ? "Signing in…" : wait.secondsLeft() > 0 ? `Wait ${wait.waitText()}` : "Sign in"}
      </button>
      <div class="setup-hint">
        <p>No admin account yet? Create one on the server:</p>
        <CodeBlock text="atlashub admin create --email you@example.com" label="command" />
      </div>
    </form>
  );
}

/**
 * First run: the server has no admin. Creating one needs the one-time token `atlashub serve` printed
 * in its log, so only whoever can read that log (the operator) gets in — never an open door.
 */
function FirstRunSetup(props: { onDone: () => void; onAlreadyDone: () => void }) {
  const [token, setToken] = createSignal("");
  const [email, setEmail] = createSignal("");
  const [password, setPassword] = createSignal("");
  const [repeat, setRepeat] = createSignal("");
  const [error, setError] = createSignal<string>();
  const [fieldErrors, setFieldErrors] = createSignal<Record<string, string>>({});
  const [busy, setBusy] = createSignal(false);
  const wait = createRateLimitWait();

  const check = () => {
    const problems: Record<string, string> = {};
    if (!token().trim().startsWith("ah_setup_")) problems.token = 'The setup token starts with "ah_setup_".';
    if (password().length < 10) problems.password = "Use at least 10 characters.";
    else if (password() !== repeat()) problems.repeat = "The two passwords differ.";
    setFieldErrors(problems);
    return Object.keys(problems).length === 0;
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy() || wait.secondsLeft() > 0) return;
    setError(undefined);
    if (!check()) return;
    setBusy(true);
    try {
      await api.setup({ token: token().trim(), email: email().trim(), password: password() });
      props.onDone();
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) {
        wait.start(err);
        setError("Too many setup attempts.");
      } else if (err instanceof ApiError && err.code === "invalid_setup_token") {
        setError("That setup token is wrong or no longer valid. Each start of the server prints a new one: use the latest.");
      } else if (err instanceof ApiError && err.code === "setup_done") {
        props.onAlreadyDone();
      } else if (err instanceof ApiError && err.code === "validation_failed") {
        const issues = (err.details?.issues ?? []) as { path: string; message: string }[];
        setFieldErrors(Object.fromEntries(issues.map((i) => [i.path, i.message])));
        setError("Check the fields marked below.");
      } else {
        setError(err instanceof Error ? err.message : String(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const fieldError = (name: string) => (
    <Show when={fieldErrors()[name]}>
      <span class="error" id={`${name}-error`}>
        {fieldErrors()[name]}
      </span>
    </Show>
  );

  return (
    <form class="card setup" onSubmit={submit} aria-labelledby="setup-title" novalidate>
      <Brand />
      <h1 id="setup-title" style={{ "margin-bottom": "8px" }}>
        Create the first admin
      </h1>
      <p class="muted setup-intro">
        This server has no admin yet. To prove you run it, paste the one-time setup token it printed in its log, in the
        line saying <q>first-run setup</q>:
      </p>
      <CodeBlock text="journalctl -u atlashub | grep 'first-run setup'" label="command" />
      <p class="muted setup-intro">(or the terminal or <code>docker logs</code> of <code>atlashub serve</code>). Each start prints a new token.</p>
      <Show when={error()}>
        <div class={wait.secondsLeft() > 0 ? "alert warn" : "alert error"} role="alert">
          {error()}
          <Show when={wait.secondsLeft() > 0}> Try again in {wait.waitText()}.</Show>
        </div>
      </Show>
      <div class="field">
        <label for="setup-token">Setup token</label>
        <input id="setup-token" class="mono" type="text" autocomplete="off" spellcheck={false} required autofocus placeholder="ah_setup_…"
          aria-invalid={!!fieldErrors().token} aria-describedby={fieldErrors().token ? "token-error" : undefined}
          value={token()} onInput={(e) => {
            setToken(e.currentTarget.value);
            wait.clear();
          }}
        />
        {fieldError("token")}
      </div>
      <div class="field">
        <label for="setup-email">Email</label>
        <input id="setup-email" type="email" autocomplete="username" required value={email()} onInput={(e) => setEmail(e.currentTarget.value)}
          aria-invalid={!!fieldErrors().email} aria-describedby={fieldErrors().email ? "email-error" : undefined} />
        {fieldError("email")}
      </div>
      <div class="field">
        <label for="setup-password">Password</label>
        <input id="setup-password" type="password" autocomplete="new-password" required minLength={10} value={password()} onInput={(e) => setPassword(e.currentTarget.value)}
          aria-invalid={!!fieldErrors().password} aria-describedby={fieldErrors().password ? "password-error" : "password-hint"} />
        <Show when={!fieldErrors().password}>
          <span class="hint" id="password-hint">
            At least 10 characters.
          </span>
        </Show>
        {fieldError("password")}
      </div>
      <div class="field">
        <label for="setup-repeat">Repeat password</label>
        <input id="setup-repeat" type="password" autocomplete="new-password" required value={repeat()} onInput={(e) => setRepeat(e.currentTarget.value)}
          aria-invalid={!!fieldErrors().repeat} aria-describedby={fieldErrors().repeat ? "repeat-error" : undefined} />
        {fieldError("repeat")}
      </div>
      <button type="submit" class="btn primary" disabled={busy() || wait.secondsLeft() > 0}>
        {busy() ? "Creating…" : wait.secondsLeft() > 0 ? `Wait ${wait.waitText()}` : "Create admin and sign in"}
      </button>
      <div class="setup-hint">
        <p>Or create the admin on the server instead, then reload this page:</p>
        <CodeBlock text="atlashub admin create --email you@example.com" label="command" />
      </div>
    </form>
  );
}
