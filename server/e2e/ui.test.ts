// The admin UI embedded in the compiled binary, driven in headless Debian Chromium (playwright-core):
// set up the first admin with the token from the binary's log, sign in, create a project and copy its connection string, create a key and a database user,
// upload and download a file, look at the audit log, delete and restore the project. Screenshots of
// every page in both themes (and a phone width) go to test-results/ui/ for a person to look at.
// Needs /usr/bin/chromium (build/setup-chromium.sh) and a build (npm run build).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import type postgres from "postgres";
import { registerSecret, tempDir } from "../test/harness";
import { spawnAtlasHub, stopAtlasHubsAfterTests, type AtlasHubProcess } from "../test/binary";
import { binaryTestSetup } from "../test/binaryProject";

stopAtlasHubsAfterTests();

const CHROMIUM = "/usr/bin/chromium";
const repoRoot = resolve(import.meta.dir, "../..");
const shots = join(repoRoot, "test-results/ui");
const setup = binaryTestSetup("ui");
const email = "ui-admin@example.com";
const password = randomBytes(12).toString("base64url");
registerSecret(password);

let hub: AtlasHubProcess;
let control: postgres.Sql;
let browser: BrowserContext;
let page: Page;
const base = () => setup.url("");
const seen: string[] = []; // pages visited, for the screenshot tour at the end
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run build/setup-chromium.sh (as root)`);
  hub = spawnAtlasHub({ dataDir: setup.dataDir, env: setup.env, lifetime: "file" });
  await hub.waitHealthy(200, 30_000);
  control = setup.controlPlane();
  mkdirSync(shots, { recursive: true });
  // Chromium must not reach out: only 127.0.0.1 exists for it here.
  browser = await chromium.launchPersistentContext(tempDir("chromium-profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
  });
  await browser.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base() });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(10_000);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  // The CSP must not be getting in the way (Chromium reports what it refuses on the console).
  page.on("console", (m) => m.type() === "error" && /Refused to/.test(m.text()) && pageErrors.push(m.text()));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await control?.end();
});

async function shot(name: string) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}
async function visit(path: string) {
  await page.goto(base() + path);
  if (!seen.includes(path)) seen.push(path);
}
/**
 * The SQL endpoint (server/sql/) is built beside the UI; until a binary has it, the SQL editor and
 * table browser steps are skipped, saying so.
 */
async function hasSqlEndpoint(projectId: string) {
  const status = await page.evaluate(async (id) => {
    const res = await fetch(`/admin/api/projects/${id}/sql`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: "select 1" }) });
    return res.status;
  }, projectId);
  if (status === 404) console.log("ui.test: this binary has no POST /admin/api/projects/:id/sql: SQL editor and table browser steps skipped");
  return status !== 404;
}

/** Rows of a query run as the project's owner through the admin SQL endpoint (with the page's session). */
async function sqlRows(projectId: string, query: string): Promise<unknown[][]> {
  return page.evaluate(
    async ([id, query]) => {
      const res = await fetch(`/admin/api/projects/${id}/sql`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query }) });
      const body = (await res.json()) as { rows?: unknown[][]; error?: unknown };
      if (!body.rows) throw new Error(`SQL ${res.status}: ${JSON.stringify(body)}`);
      return body.rows;
    },
    [projectId, query] as const,
  );
}

/** Every form control on the page has an accessible name (a label, aria-label or aria-labelledby). */
async function unlabelledControls() {
  return page.evaluate(() =>
    [...document.querySelectorAll<HTMLInputElement>("input, select, textarea")]
      .filter((el) => el.type !== "hidden" && el.type !== "file")
      .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")))
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}

describe("the admin UI in the compiled binary", () => {
  let projectId = "";

  it("keeps the first load small: initial JS ≤ 250 KB gzipped, CodeMirror only on the SQL page", () => {
    const dist = join(repoRoot, "ui/dist");
    const html = readFileSync(join(dist, "index.html"), "utf8");
    const initial = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]!);
    expect(initial.length).toBeGreaterThan(0);
    const gz = initial.reduce((sum, f) => sum + gzipSync(readFileSync(join(dist, f))).length, 0);
    console.log(`ui.test: initial JS ${initial.join(", ")}: ${(gz / 1024).toFixed(1)} KB gzipped`);
    expect(gz).toBeLessThanOrEqual(250 * 1024);
    for (const f of initial) expect(readFileSync(join(dist, f), "utf8")).not.toContain("cm-editor");
    const all = readdirSync(join(dist, "assets")).filter((f) => f.endsWith(".js"));
    expect(all.some((f) => readFileSync(join(dist, "assets", f), "utf8").includes("cm-editor"))).toBe(true);
  });

  it("serves the UI from the binary: client routes get index.html, assets a long cache, APIs stay JSON", async () => {
    const res = await hub.fetch("/projects/abcdefghij/storage");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(await res.text())![1]!;
    const js = await hub.fetch(script, { headers: { "accept-encoding": "br" } });
    expect(js.status).toBe(200);
    expect(js.headers.get("content-encoding")).toBe("br");
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    const api = await hub.fetch("/v1/nothing-here");
    expect(api.status).toBe(404);
    expect(await api.json()).toMatchObject({ error: { code: "route_not_found" } });
  });

  it("shows a fresh server's setup screen and creates the first admin with the one-time token from the log", async () => {
    // The token is printed once, in the "first-run setup" line, and in no other line.
    const token = /ah_setup_[A-Za-z0-9_-]{43}\b/.exec(hub.lines().find((l) => l.includes("first-run setup")) ?? "")?.[0];
    expect(token).toBeDefined();
    expect(hub.lines().filter((l) => l.includes(token!))).toHaveLength(1);
    await page.goto(base() + "/login");
    await page.getByRole("heading", { name: "Create the first admin" }).waitFor();
    expect(await unlabelledControls()).toEqual([]);
    await shot("setup-dark");
    await page.evaluate(() => localStorage.setItem("atlashub.theme", "light"));
    await page.reload();
    await page.getByRole("heading", { name: "Create the first admin" }).waitFor();
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe("light");
    await shot("setup-light");
    await page.evaluate(() => localStorage.setItem("atlashub.theme", "dark"));
    await page.reload();
    const fill = async (tokenValue: string, repeat = password) => {
      await page.getByLabel("Setup token").fill(tokenValue);
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password", { exact: true }).fill(password);
      await page.getByLabel("Repeat password").fill(repeat);
      await page.getByRole("button", { name: "Create admin and sign in" }).click();
    };
    await fill(token!, password + "x");
    await page.getByText("The two passwords differ.").waitFor();
    await fill("ah_setup_" + "A".repeat(43));
    await page.getByRole("alert").filter({ hasText: "That setup token is wrong or no longer valid." }).waitFor();
    await shot("setup-error-dark");
    expect(Number((await control`select count(*)::int as n from admin_users`)[0]!.n)).toBe(0);
    await fill(token!);
    await page.waitForURL(/\/projects$/);
    await page.getByText("No projects yet").waitFor();
    // Used: the API refuses it now, and a visitor gets the sign-in form.
    const again = await hub.fetch("/admin/api/setup", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token, email: "x@example.com", password }) });
    expect(again.status).toBe(409);
    expect((await again.json()).error.code).toBe("setup_done");
    await browser.clearCookies();
  });

  it("sends a visitor to sign-in, refuses a wrong password, signs in", async () => {
    await visit("/projects");
    await page.waitForURL(/\/login\?next=%2Fprojects/);
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill("not-the-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "Wrong email or password." }).waitFor();
    await shot("login-error-dark");
    expect(await unlabelledControls()).toEqual([]);
    // Failed attempts at one account from this address back off (1 s, 2 s, 4 s …): once the next wait
    // is 8 s, the 429 is shown with the wait, and the button waits too.
    for (;;) {
      const res = await hub.fetch("/admin/api/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "locked@example.com", password: "wrong-password" }) });
      await res.text();
      if (res.status !== 429) continue;
      const retryAfter = Number(res.headers.get("retry-after"));
      if (retryAfter >= 8) break;
      await Bun.sleep(retryAfter * 1000);
    }
    await page.getByLabel("Email").fill("locked@example.com");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: /Too many sign-in attempts\. Try again in \d+ s\./ }).waitFor();
    expect(await page.getByRole("button", { name: /^Wait \d+ s/ }).isDisabled()).toBe(true);
    await shot("login-rate-limited-dark");
    await page.reload();
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(/\/projects$/);
    await page.getByText("No projects yet").waitFor();
  });

  it("creates a project, shows its credentials once, and copies the connection string", async () => {
    await page.keyboard.press("/");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("project-search");
    await page.getByRole("button", { name: "New project" }).click();
    await page.getByLabel("Name").fill("shop");
    await page.getByLabel("Description (optional)").fill("The web shop");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.getByRole("heading", { name: "Project shop is ready" }).waitFor({ timeout: 30_000 });
    await page.getByText("you will not see them again").waitFor();
    const conn = (await page.getByTestId("conn-app").textContent())!;
    const appPassword = (await page.getByTestId("password-app").textContent())!;
    registerSecret(appPassword, new URL(conn).password, decodeURIComponent(new URL(conn).password));
    for (const id of ["conn-owner", "conn-ro"]) registerSecret(decodeURIComponent(new URL((await page.getByTestId(id).textContent())!).password));
    expect(conn).toMatch(/^postgresql:\/\/p_[a-z0-9]{10}_app:.+@.+:\d+\/p_[a-z0-9]{10}\?sslmode=/);
    await shot("project-created-dark");
    await page.getByRole("button", { name: "Copy App connection string (read and write; use this in your app)" }).click();
    await page.getByRole("button", { name: /Copy App connection string/ }).getByText("Copied").waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(conn);
    await page.getByRole("button", { name: "I have saved them" }).click();
    const row = page.locator('tr[data-project="shop"]');
    await row.getByText("ready").waitFor();
    projectId = /p_([a-z0-9]{10})_app/.exec(conn)![1]!;
  });

  it("shows the overview and reveals the credentials on request", async () => {
    await page.locator('tr[data-project="shop"]').getByRole("link", { name: "shop" }).click();
    await page.waitForURL(new RegExp(`/projects/${projectId}$`));
    await page.getByRole("heading", { name: "Connection" }).waitFor();
    if (!seen.includes(`/projects/${projectId}`)) seen.push(`/projects/${projectId}`);
    expect(await page.locator(".crumbs").textContent()).toContain("Projects");
    await page.getByRole("button", { name: "Reveal credentials" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Reveal" }).click();
    await page.getByTestId("revealed-app").filter({ hasText: `p_${projectId}_app:` }).waitFor();
    expect(await page.locator("pre").filter({ hasText: "DATABASE_URL" }).textContent()).toContain(`p_${projectId}_app:`);
    await page.getByRole("button", { name: "Hide" }).click();
  });

  it("creates an API key, shown once", async () => {
    await visit(`/projects/${projectId}/keys`);
    await page.getByText("No API keys yet").waitFor();
    await page.getByRole("button", { name: "New key" }).click();
    await page.getByLabel("Name").fill("web");
    await page.getByRole("button", { name: "Create key" }).click();
    const key = (await page.getByTestId("new-key").textContent())!;
    registerSecret(key);
    expect(key).toMatch(/^ah_pk_/);
    await page.getByRole("button", { name: "I have saved it" }).click();
    await page.locator('tr[data-key="web"]').getByText("active").waitFor();
    // The key works against the public API.
    const res = await hub.fetch("/v1/db/tables", { headers: { "x-api-key": key } });
    expect(res.status).toBe(200);
  });

  it("creates a table and rows in the SQL editor (Ctrl+Enter), shows results, marks errors, downloads CSV", async () => {
    await visit(`/projects/${projectId}/sql`);
    if (!(await hasSqlEndpoint(projectId))) return;
    const run = async (query: string) => {
      await page.locator(".cm-content").click();
      await page.keyboard.press("Control+A");
      await page.keyboard.insertText(query);
      await page.keyboard.press("Control+Enter");
    };
    await run("create table items (id serial primary key, name text not null, price numeric(10,2), note text)");
    await page.getByTestId("sql-summary").filter({ hasText: "CREATE TABLE" }).waitFor();
    await run(
      "insert into items (name, price, note) select 'item ' || g, g * 1.5, case when g % 10 = 0 then null else repeat('a long note ', 30) end from generate_series(1, 250) g",
    );
    await page.getByTestId("sql-summary").filter({ hasText: "INSERT 250" }).waitFor();
    await run("select id, name, price, note from items order by id");
    await page.getByTestId("sql-summary").filter({ hasText: "250 rows" }).waitFor();
    await page.getByRole("columnheader", { name: /price\s*numeric/ }).waitFor();
    const [csv] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download CSV" }).click()]);
    const lines = readFileSync((await csv.path())!, "utf8").split("\r\n");
    expect(lines[0]).toBe("id,name,price,note");
    expect(lines[1]).toStartWith("1,item 1,1.50,a long note");
    expect(lines[10]).toBe("10,item 10,15.00,");
    await shot("sql-results-dark");
    // Keyboard: a cell, the arrow down to the next row, Enter shows the value in full, Escape goes back.
    const focusIsOn = (r: number, c: number) =>
      page.waitForFunction(([r, c]) => document.activeElement?.getAttribute("data-r") === String(r) && document.activeElement?.getAttribute("data-c") === String(c), [r, c]);
    await page.locator('table.grid td[data-r="0"][data-c="1"]').click();
    await page.keyboard.press("Escape");
    await focusIsOn(0, 1); // the closing popover hands focus back on the next frame
    await page.keyboard.press("ArrowDown");
    await focusIsOn(1, 1);
    await page.keyboard.press("Enter");
    await page.locator(".cell-popover pre").filter({ hasText: /^item 2$/ }).waitFor();
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => document.activeElement?.getAttribute("data-r") === "1" && document.activeElement?.getAttribute("data-c") === "1");
    await run("select nme from items");
    await page.getByRole("alert").filter({ hasText: 'column "nme" does not exist' }).waitFor();
    await page.locator(".cm-lintRange-error").waitFor();
    expect(await page.locator(".cm-lintRange-error").textContent()).toBe("nme");
    await shot("sql-error-dark");
    // History keeps what ran, newest first, in this browser.
    expect(await page.locator(".history li").count()).toBe(4);
  });

  it("browses the table: 100 rows a page, sorted and filtered on the server, NULL apart, insert and delete", async () => {
    await visit(`/projects/${projectId}/tables`);
    if (!(await hasSqlEndpoint(projectId))) return;
    await page.getByRole("link", { name: "items" }).click();
    const pager = page.getByTestId("table-pager");
    await pager.filter({ hasText: "Rows 1–100 of 250" }).waitFor();
    await page.getByRole("button", { name: "Next" }).click();
    await pager.filter({ hasText: "Rows 101–200 of 250" }).waitFor();
    await page.getByRole("button", { name: "Next" }).click();
    await pager.filter({ hasText: "Rows 201–250 of 250" }).waitFor();
    expect(await page.getByRole("button", { name: "Next" }).isDisabled()).toBe(true);
    // Sort by price, descending (second click), back on page 1.
    await page.getByRole("button", { name: /^Sort by price/ }).click();
    await page.getByRole("button", { name: /^Sort by price/ }).click();
    await pager.filter({ hasText: "Rows 1–100 of 250" }).waitFor();
    await page.locator("table.grid tbody td.cell", { hasText: "item 250" }).first().waitFor();
    // Filters with the /v1/db operators.
    await page.getByLabel("Column", { exact: true }).selectOption("id");
    await page.getByLabel("Operator").selectOption("lte");
    await page.getByLabel("Value", { exact: true }).fill("10");
    await page.getByRole("button", { name: "Add filter" }).click();
    await pager.filter({ hasText: "Rows 1–10 of 10" }).waitFor();
    expect(await page.locator("table.grid td.null").count()).toBe(1);
    await shot("tables-filtered-dark");
    // A long value opens in full, with a copy button.
    await page.locator("table.grid td.cell", { hasText: "a long note" }).first().click();
    await page.locator(".cell-popover pre").filter({ hasText: "a long note a long note" }).waitFor();
    await page.keyboard.press("Escape");
    // Insert a row, then delete it.
    await page.getByRole("button", { name: "Remove filter on id" }).click();
    await page.getByRole("button", { name: "Insert row" }).click();
    await page.getByLabel(/^name/).fill("inserted by the browser");
    await page.getByRole("dialog").getByRole("button", { name: "Insert" }).click();
    await pager.filter({ hasText: "of 251" }).waitFor();
    await page.getByLabel("Column", { exact: true }).selectOption("name");
    await page.getByLabel("Operator").selectOption("eq");
    await page.getByLabel("Value", { exact: true }).fill("inserted by the browser");
    await page.getByRole("button", { name: "Add filter" }).click();
    await pager.filter({ hasText: "Rows 1–1 of 1" }).waitFor();
    await page.locator("table.grid").getByRole("button", { name: "Delete" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete row" }).click();
    await pager.filter({ hasText: "0 rows" }).waitFor();
    seen.push(`/projects/${projectId}/tables?table=items`);
  });

  it("backs up the project from Database tools: the backup is listed running, then verified, with its size", async () => {
    await visit(`/projects/${projectId}/database`);
    await page.getByRole("link", { name: "Database tools" }).waitFor();
    await page.getByText("No backups yet").waitFor();
    expect(await unlabelledControls()).toEqual([]);
    await page.getByRole("button", { name: "Back up now" }).first().click();
    await page.getByText("Backup started").waitFor();
    // The list looks again while the backup runs and while it is verified.
    const verified = page.locator('tr[data-backup][data-status="verified"]');
    await verified.waitFor({ timeout: 60_000 });
    expect(await verified.getByText("verified", { exact: true }).count()).toBeGreaterThanOrEqual(1);
    expect(await verified.getByTestId("backup-size").textContent()).toMatch(/\d+(\.\d)? (B|KB|MB)/);
    const [row] = await control`select status, verified_at from backups where project_id = ${projectId}`;
    expect(row!.status).toBe("verified");
    await shot("database-backups-dark");
  }, 90_000);

  it("saves the backup schedule: daily at a time, retention of N daily and M weekly", async () => {
    await page.getByRole("switch", { name: "Back up on a schedule" }).check();
    await page.getByLabel("Daily at").fill("04:30");
    await page.getByLabel("Timezone").fill("Europe/Paris");
    await page.getByLabel("Keep daily").fill("5");
    await page.getByLabel("Keep weekly").fill("2");
    await page.getByRole("button", { name: "Save schedule" }).click();
    await page.getByText("Backup schedule saved").waitFor();
    await page.getByTestId("schedule-next").filter({ hasText: /^Next backup/ }).waitFor();
    const [s] = await control`select enabled, schedule, timezone, keep_daily, keep_weekly from backup_schedules where project_id = ${projectId}`;
    expect(s).toEqual({ enabled: true, schedule: "30 4 * * *", timezone: "Europe/Paris", keep_daily: 5, keep_weekly: 2 });
    // A wrong timezone is the server's 400, shown on the form.
    await page.getByLabel("Timezone").fill("Mars/Olympus");
    await page.getByRole("button", { name: "Save schedule" }).click();
    await page.locator('form:has(#schedule-tz) [role="alert"]').waitFor();
    await page.getByLabel("Timezone").fill("Europe/Paris");
  });

  it("restores a backup only once the project's name is typed: into a new project, shown with its credentials", async () => {
    await page.locator('tr[data-status="verified"]').getByRole("button", { name: /^Restore backup of/ }).click();
    const dialog = page.getByRole("dialog");
    const start = dialog.getByRole("button", { name: "Restore into new project" });
    await dialog.getByLabel("New project's name").fill("copy-of-shop");
    expect(await start.isDisabled()).toBe(true);
    await dialog.getByLabel(/Type shop to confirm/).fill("sho");
    expect(await start.isDisabled()).toBe(true);
    // Replacing this project's database says what is lost and asks the same.
    await dialog.getByLabel(/This project, replacing its database/).check();
    await dialog.getByText(/since this backup is replaced/).waitFor();
    expect(await dialog.getByRole("button", { name: "Replace database" }).isDisabled()).toBe(true);
    await dialog.getByLabel(/A new project/).check();
    await dialog.getByLabel(/Type shop to confirm/).fill("shop");
    expect(await start.isDisabled()).toBe(false);
    await shot("database-restore-dark");
    await start.click();
    await page.getByRole("heading", { name: "Restoring into copy-of-shop" }).waitFor({ timeout: 20_000 });
    const conn = (await page.getByTestId("restored-conn-app").textContent())!;
    registerSecret(decodeURIComponent(new URL(conn).password));
    for (const c of await page.locator(".secret-list code, .secret-list pre").allTextContents()) {
      const m = /^postgres(?:ql)?:\/\/[^:]+:([^@]+)@/.exec(c);
      if (m) registerSecret(decodeURIComponent(m[1]!));
    }
    await page.getByRole("button", { name: "I have saved them" }).click();
    // The new project comes up with the backup's rows.
    const finished = async () => (await control`select r.status from restores r join projects p on p.id = r.project_id where p.name = 'copy-of-shop'`)[0]?.status;
    for (const until = Date.now() + 60_000; (await finished()) === "restoring" && Date.now() < until; ) await Bun.sleep(250);
    expect(await finished()).toBe("finished");
    const [copy] = await control`select id, status from projects where name = 'copy-of-shop'`;
    expect(copy!.status).toBe("ready");
    expect(await sqlRows(copy!.id, "select count(*)::int from items")).toEqual([[250]]);
  }, 90_000);

  it("imports a CSV with the wizard: mapping preview, a dry run that names the bad row's line, then the import", async () => {
    await visit(`/projects/${projectId}/database`);
    await page.getByLabel("Table", { exact: true }).selectOption("items");
    const bad = "name,price,comment\nwidget,2.50,imported\nbroken,not-a-number,imported\ngadget,3,imported\n";
    await page.locator("#import-file").setInputFiles({ name: "items.csv", mimeType: "text/csv", buffer: Buffer.from(bad) });
    const mapping = page.getByTestId("import-mapping");
    await mapping.getByText("widget · broken · gadget").waitFor();
    expect(await page.getByLabel("Table column for name").inputValue()).toBe("name");
    expect(await page.getByLabel("Table column for price").inputValue()).toBe("price");
    expect(await page.getByLabel("Table column for comment").inputValue()).toBe("");
    await page.getByLabel("Table column for comment").selectOption("note");
    expect(await unlabelledControls()).toEqual([]);
    await page.getByRole("button", { name: "Dry run" }).click();
    const errorsTable = page.getByTestId("import-errors");
    await errorsTable.locator('tr[data-line="3"]').filter({ hasText: "not-a-number" }).waitFor();
    expect(await page.getByRole("button", { name: "Import", exact: true }).isDisabled()).toBe(true);
    await shot("database-import-errors-dark");
    // The fixed file: the dry run passes, and the import writes its rows.
    const good = bad.replace("not-a-number", "4.75");
    await page.locator("#import-file").setInputFiles({ name: "items-fixed.csv", mimeType: "text/csv", buffer: Buffer.from(good) });
    await mapping.getByText("widget · broken · gadget").waitFor();
    await page.getByLabel("Table column for comment").selectOption("note");
    await page.getByRole("button", { name: "Dry run" }).click();
    await page.getByTestId("import-result").getByText("Dry run passed: 3 rows in the file: 3 would be inserted").waitFor();
    expect(await sqlRows(projectId, "select count(*)::int from items where note = 'imported'")).toEqual([[0]]);
    await page.getByRole("button", { name: "Import", exact: true }).click();
    await page.getByTestId("import-result").getByText(/^Imported into items\. 3 rows/).waitFor();
    expect(await sqlRows(projectId, "select name, price::text from items where note = 'imported' order by id")).toEqual([
      ["widget", "2.50"],
      ["broken", "4.75"],
      ["gadget", "3.00"],
    ]);
    await shot("database-import-done-dark");
  });

  it("exports the table browser's rows, with its filters, as CSV, JSON and NDJSON", async () => {
    const path = `/projects/${projectId}/tables?table=items&filter=note.eq.imported`;
    await visit(path);
    await page.getByTestId("table-pager").filter({ hasText: "Rows 1–3 of 3" }).waitFor();
    const [csv] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export CSV" }).click()]);
    expect(csv.suggestedFilename()).toBe("items.csv");
    const lines = readFileSync((await csv.path())!, "utf8").trim().split(/\r?\n/);
    expect(lines[0]).toBe("id,name,price,note");
    expect(lines.slice(1).map((l) => l.split(",").slice(1).join(","))).toEqual(["widget,2.50,imported", "broken,4.75,imported", "gadget,3.00,imported"]);
    const [ndjson] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Export NDJSON" }).click()]);
    const docs = readFileSync((await ndjson.path())!, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(docs.map((d) => d.name)).toEqual(["widget", "broken", "gadget"]);
    seen.push(path);
  });

  it("downloads a backup through its signed URL and uploads that dump back as a backup of its own", async () => {
    await visit(`/projects/${projectId}/database`);
    const manual = page.locator('tr[data-trigger="manual"][data-status="verified"]');
    const [dump] = await Promise.all([page.waitForEvent("download"), manual.getByRole("button", { name: /^Download backup of/ }).click()]);
    expect(dump.suggestedFilename()).toMatch(/^shop-.+\.dump$/);
    const bytes = readFileSync((await dump.path())!);
    expect(bytes.subarray(0, 5).toString()).toBe("PGDMP");
    await page.locator("#dump-input").setInputFiles({ name: "shop.dump", mimeType: "application/octet-stream", buffer: bytes });
    await page.getByText("Uploaded shop.dump").waitFor({ timeout: 30_000 });
    await page.locator('tr[data-trigger="upload"]').waitFor();
  }, 60_000);

  it("replaces the database from a backup, lists the restore, and rolls it back once the name is typed", async () => {
    const count = async () => (await sqlRows(projectId, "select count(*)::int from items"))[0]![0];
    expect(await count()).toBe(253);
    await page.locator('tr[data-trigger="manual"][data-status="verified"]').getByRole("button", { name: /^Restore backup of/ }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel(/This project, replacing its database/).check();
    await dialog.getByLabel(/Type shop to confirm/).fill("shop");
    await dialog.getByRole("button", { name: "Replace database" }).click();
    await page.getByText("Restore started").waitFor();
    const restore = page.locator("tr[data-restore]").first();
    await restore.getByText("finished").waitFor({ timeout: 60_000 });
    expect(await count()).toBe(250);
    await page.getByRole("button", { name: "Roll back" }).click();
    const confirm = page.getByRole("dialog");
    expect(await confirm.getByRole("button", { name: "Roll back" }).isDisabled()).toBe(true);
    await confirm.getByLabel(/Type shop to confirm/).fill("shop");
    await confirm.getByRole("button", { name: "Roll back" }).click();
    await restore.getByText("rolled back").waitFor({ timeout: 30_000 });
    expect(await count()).toBe(253);
    expect(await page.getByRole("button", { name: "Roll back" }).count()).toBe(0);
    await shot("database-rolled-back-dark");
  }, 120_000);

  it("creates a database user, password shown once", async () => {
    await visit(`/projects/${projectId}/users`);
    await page.getByRole("button", { name: "New user" }).click();
    await page.getByLabel("Username").fill("analyst");
    await page.getByRole("button", { name: "Create user" }).click();
    const conn = (await page.getByTestId("user-conn").textContent())!;
    registerSecret(decodeURIComponent(new URL(conn).password));
    expect(conn).toContain(`p_${projectId}_u_analyst`);
    await page.getByRole("button", { name: "I have saved it" }).click();
    await page.getByRole("cell", { name: "analyst", exact: true }).waitFor();
  });

  it("uploads a file with progress, lists it and downloads the same bytes", async () => {
    await visit(`/projects/${projectId}/storage`);
    await page.getByRole("link", { name: /uploads/ }).click();
    await page.getByText("This folder is empty").waitFor();
    const body = Buffer.from("id,name\n1,hello from the browser test\n");
    await page.locator("#upload-input").setInputFiles({ name: "report.csv", mimeType: "text/csv", buffer: body });
    await page.locator('tr[data-object="report.csv"]').waitFor();
    await page.locator('[role=progressbar][aria-label="Upload of report.csv"][aria-valuenow="100"]').waitFor();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download report.csv" }).click()]);
    expect(download.suggestedFilename()).toBe("report.csv");
    expect(readFileSync((await download.path())!)).toEqual(body);
    // A file in a folder: the folder is listed and opens.
    await page.locator("#upload-input").setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hi") });
    await page.locator('tr[data-object="notes.txt"]').waitFor();
    // Dropped on the object list: uploaded too.
    await page.evaluate(() => {
      const files = new DataTransfer();
      files.items.add(new File(["dropped on the list"], "dropped.txt", { type: "text/plain" }));
      document.querySelector('section[aria-label^="Objects in"]')!.dispatchEvent(new DragEvent("drop", { dataTransfer: files, bubbles: true, cancelable: true }));
    });
    await page.locator('tr[data-object="dropped.txt"]').waitFor();
    seen.push(`/projects/${projectId}/storage?bucket=uploads`);
  });

  it("records it all in the audit log, filterable by action", async () => {
    await visit("/audit");
    await page.getByRole("button", { name: "project.create" }).first().waitFor();
    await page.getByLabel("Filter by action").selectOption("project.key.create");
    await page.waitForFunction(() => document.querySelectorAll("tbody tr").length === 1 && !document.querySelector(".skeleton"));
    expect(await page.locator("tbody tr").textContent()).toContain("project.key.create");
    expect(await unlabelledControls()).toEqual([]);
  });

  it("lists the jobs: live cron preview, an SSRF target refused on the URL field, a platform job disabled, enabled and run now", async () => {
    await visit("/jobs");
    const platformRow = page.locator('tr[data-job="platform/clean_expired_sessions"]');
    await platformRow.waitFor();
    await page.locator('tr[data-job="platform/purge_deleted_projects"]').waitFor();
    // Platform jobs cannot be deleted: no Delete button for them.
    expect(await page.getByRole("button", { name: /^Delete platform\// }).count()).toBe(0);
    await page.getByRole("button", { name: "New job" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Name").fill("ping-local");
    await dialog.getByLabel("Schedule").fill("61 * * * *");
    await dialog.getByTestId("cron-preview").filter({ hasText: "The schedule is not valid" }).waitFor();
    await dialog.getByLabel("Schedule").fill("*/15 * * * *");
    await dialog.getByTestId("cron-preview").locator("li").nth(4).waitFor();
    await dialog.getByLabel("URL").fill("http://127.0.0.1:1/");
    await dialog.getByRole("button", { name: "Add header" }).click();
    await dialog.getByLabel("Header 1 name").fill("x-from");
    await dialog.getByLabel("Header 1 value").fill("atlashub");
    expect(await unlabelledControls()).toEqual([]);
    await dialog.getByRole("button", { name: "Create job" }).click();
    await dialog.locator("#job-url-error").filter({ hasText: "The job's target is not allowed" }).waitFor();
    expect(await dialog.getByLabel("URL").getAttribute("aria-invalid")).toBe("true");
    await shot("jobs-ssrf-dark");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    expect(Number((await control`select count(*)::int as n from jobs where name = 'ping-local'`)[0]!.n)).toBe(0);
    // Disable and enable a platform job.
    const enabledOf = async () => (await control`select enabled from jobs where name = 'platform/clean_expired_sessions'`)[0]!.enabled;
    await platformRow.getByRole("switch").uncheck();
    await page.getByText("Disabled platform/clean_expired_sessions").waitFor();
    expect(await enabledOf()).toBe(false);
    await platformRow.getByRole("switch").check();
    await page.getByText("Enabled platform/clean_expired_sessions").waitFor();
    expect(await enabledOf()).toBe(true);
    // Run it now: the run shows in its history, with its counts as the response excerpt.
    await platformRow.getByRole("button", { name: "Run platform/clean_expired_sessions now" }).click();
    const history = page.getByRole("region", { name: "Run history of platform/clean_expired_sessions" });
    await history.locator("tr[data-run]").filter({ hasText: "succeeded" }).locator("pre").filter({ hasText: '"deleted"' }).waitFor({ timeout: 15_000 });
    await platformRow.getByText("succeeded").waitFor();
    await shot("jobs-history-dark");
  });

  it("deletes the project after its name is typed, and restores it", async () => {
    await visit("/projects");
    await page.getByRole("button", { name: "Delete shop" }).click();
    const dialog = page.getByRole("dialog");
    expect(await dialog.getByRole("button", { name: "Delete project" }).isDisabled()).toBe(true);
    await dialog.getByLabel(/Type shop to confirm/).fill("shop");
    await shot("project-delete-dark");
    await dialog.getByRole("button", { name: "Delete project" }).click();
    await page.getByLabel("Show").selectOption("deleted");
    await page.locator('tr[data-project="shop"]').getByText("deleted", { exact: true }).waitFor({ timeout: 15_000 });
    await shot("projects-deleted-dark");
    await page.getByRole("button", { name: "Restore shop" }).click();
    await page.getByLabel("Show").selectOption("active");
    await page.locator('tr[data-project="shop"]').getByText("ready").waitFor({ timeout: 15_000 });
  });

  it("renders every page without errors in dark and light, at 1280×800 and on a 390-px phone", async () => {
    const tour = [...seen];
    for (const [theme, width, height] of [
      ["dark", 1280, 800],
      ["light", 1280, 800],
      ["dark", 390, 844],
      ["light", 390, 844],
    ] as const) {
      await page.setViewportSize({ width, height });
      await page.evaluate((t) => localStorage.setItem("atlashub.theme", t), theme);
      for (const path of tour) {
        await page.goto(base() + path);
        await page.waitForLoadState("networkidle");
        expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe(theme);
        expect({ path, skeletons: await page.locator(".skeleton").count() }).toEqual({ path, skeletons: 0 });
        const name = (path.replace(new RegExp(projectId, "g"), "id").replace(/[^a-z0-9]+/gi, "-").replace(/^-|-$/g, "") || "root") + `-${theme}${width < 500 ? "-phone" : ""}`;
        await shot(name);
        if (width < 500) {
          // Nothing sticks out sideways on a phone but tables, which scroll inside their panel.
          expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(width);
        }
      }
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.evaluate(() => localStorage.setItem("atlashub.theme", "light"));
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it("signs out", async () => {
    await visit("/projects");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/login/);
    await shot("login-light");
    await visit("/projects");
    await page.waitForURL(/\/login/);
  });
});
