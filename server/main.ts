#!/usr/bin/env bun
import { z } from "zod";
import { ConfigError, loadConfig, settings, type Config } from "./config";
import type { PostgresEngine } from "./engines/postgres/engine";
import { log, setLogLevel, setLogSink } from "./platform/log";
import { emailSchema, passwordSchema, createAdmin } from "./admin/service";
import { recordAudit } from "./platform/audit";
import { openPlatform, startAtlasHub, VERSION } from "./serve";
import { projectFlags, projectUsage, runProjectCommand } from "./projects/cli";
import { runStorageCommand, storageFlags, storageUsage } from "./storage/cli";
import { jobsUsage, runJobsCommand } from "./jobs/cli";
import { backupFlags, backupUsage, runBackupCommand } from "./backups/cli";

const usage: Record<string, string> = {
  main: `atlashub ${VERSION}: self-hosted Postgres projects, REST API, storage and scheduler in one binary.

Usage: atlashub <command> [flags]

Commands:
  serve          run the server (admin UI and APIs), starting Postgres when the engine is native
  migrate        apply control-plane migrations and exit
  admin create   create an admin account: atlashub admin create --email you@example.com
  project        create, list, show, delete, restore or purge projects
  storage        list a project's buckets and objects, upload, download or delete objects
  jobs           list scheduled jobs or run one now
  backup         back up a project now (with progress), list, download or restore its backups
  version        print the version

Run 'atlashub <command> --help' for the flags of a command.`,
  serve: `Usage: atlashub serve [flags]\n\nRuns AtlasHub. Every flag has an environment variable twin:\n\n${settingsHelp()}`,
  migrate: `Usage: atlashub migrate [flags]\n\nApplies pending control-plane migrations (serve does this too) and exits. Uses a running serve's Postgres when there is one.\n\n${settingsHelp()}`,
  "admin create": `Usage: atlashub admin create --email EMAIL [flags]\n\nCreates an admin account. The password is read from standard input (first line) or prompted for on a terminal.\n\n${settingsHelp()}`,
  project: projectUsage,
  storage: storageUsage,
  jobs: jobsUsage,
  backup: backupUsage,
  version: "Usage: atlashub version\n\nPrints the version.",
};

function settingsHelp() {
  return Object.values(settings)
    .map((s) => `  ${s.flag.padEnd(18)} ${s.env.padEnd(24)} ${s.help}${s.fallback !== undefined ? ` (default ${s.fallback})` : ""}`)
    .join("\n");
}

async function main(argv: string[]) {
  const [first, second] = argv;
  const command = first === "admin" && second === "create" ? "admin create" : first ?? "help";
  const rest = argv.slice(command === "admin create" ? 2 : 1);
  if (command === "help" || command === "--help" || command === "-h") return print(usage.main!);
  if (!(command in usage)) return fail(`unknown command '${command}'\n\n${usage.main}`, 2);
  if (rest.includes("--help") || rest.includes("-h")) return print(usage[command]!);

  switch (command) {
    case "version":
      return print(VERSION);
    case "serve":
      return serve(configFrom(rest));
    case "migrate":
      await migrate(configFrom(rest));
      return process.exit(0);
    case "project": {
      const [sub = "", ...args] = rest;
      const arg = args[0] && !args[0].startsWith("--") ? args.shift() : undefined;
      const flags: Partial<Record<(typeof projectFlags)[number], string>> = {};
      let remaining = args;
      for (const name of projectFlags) {
        const taken = takeFlag(remaining, name);
        if (taken.value !== undefined) flags[name] = taken.value;
        remaining = taken.remaining;
      }
      const { ctx, close } = await openPlatform(configFrom(remaining), { serve: false });
      try {
        print(await runProjectCommand(ctx, sub, arg, flags));
      } finally {
        await close();
      }
      return process.exit(0);
    }
    case "storage": {
      const [sub = "", ...args] = rest;
      const flags: Partial<Record<(typeof storageFlags)[number], string>> = {};
      let remaining = args;
      for (const name of storageFlags) {
        const taken = takeFlag(remaining, name);
        if (taken.value !== undefined) flags[name] = taken.value;
        remaining = taken.remaining;
      }
      const { positional, settingFlags } = splitPositional(remaining);
      const { ctx, close } = await openPlatform(configFrom(settingFlags), { serve: false });
      try {
        print(await runStorageCommand(ctx, sub, positional, flags));
      } finally {
        await close();
      }
      return process.exit(0);
    }
    case "jobs": {
      // Standard output is the result (JSON of a run); the run's log lines go to standard error.
      setLogSink((line) => process.stderr.write(line + "\n"));
      const [sub = "", ...args] = rest;
      const { positional, settingFlags } = splitPositional(args);
      const { ctx, close } = await openPlatform(configFrom(settingFlags), { serve: false });
      let exitCode: number;
      try {
        const result = await runJobsCommand(ctx, sub, positional);
        print(result.output);
        exitCode = result.exitCode;
      } finally {
        await close();
      }
      return process.exit(exitCode);
    }
    case "backup": {
      // Standard output is the result (JSON); log lines and progress go to standard error.
      setLogSink((line) => process.stderr.write(line + "\n"));
      const [sub = "", ...args] = rest;
      const flags: Partial<Record<(typeof backupFlags)[number], string>> = {};
      let remaining = args;
      for (const name of backupFlags) {
        const taken = takeFlag(remaining, name);
        if (taken.value !== undefined) flags[name] = taken.value;
        remaining = taken.remaining;
      }
      const { positional, settingFlags } = splitPositional(remaining);
      const { ctx, close } = await openPlatform(configFrom(settingFlags), { serve: false });
      let exitCode: number;
      try {
        const result = await runBackupCommand(ctx, sub, positional, flags);
        print(result.output);
        exitCode = result.exitCode;
      } finally {
        await close();
      }
      return process.exit(exitCode);
    }
    case "admin create": {
      const { value: email, remaining } = takeFlag(rest, "--email");
      if (!email) return fail("admin create needs --email", 2);
      await adminCreate(configFrom(remaining), email);
      return process.exit(0);
    }
  }
}

function configFrom(flags: string[]): Config {
  const config = loadConfig(process.env, flags);
  setLogLevel(config.logLevel);
  return config;
}

async function serve(config: Config) {
  let engine: PostgresEngine | undefined;
  let running: Awaited<ReturnType<typeof startAtlasHub>> | undefined;
  let stopping = false;
  // Installed before start-up so that a signal while Postgres is starting still stops it cleanly.
  const shutdown = async (signal: string) => {
    if (stopping) process.exit(1); // a second signal means "now"
    stopping = true;
    log.info("shutting down", { signal });
    await (running ? running.stop() : engine?.stop());
    process.exit(0);
  };
  // SIGHUP too: a closed terminal must not kill atlashub and leave its Postgres running.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void shutdown(signal));
  try {
    running = await startAtlasHub(config, (e) => (engine = e));
  } catch (err) {
    if (stopping) return; // start-up was interrupted by the signal; shutdown() exits
    throw err;
  }
}

async function migrate(config: Config) {
  const { close } = await openPlatform(config, { serve: false });
  await close();
  print("control plane is up to date");
}

async function adminCreate(config: Config, rawEmail: string) {
  const email = emailSchema.safeParse(rawEmail);
  if (!email.success) return fail(`--email: not a valid email address`, 2);
  const password = passwordSchema.safeParse(await readPassword());
  if (!password.success) return fail(`password ${password.error.issues[0]!.message}`, 2);
  const { ctx, close } = await openPlatform(config, { serve: false });
  try {
    const user = await ctx.sql.begin(async (tx) => {
      const created = await createAdmin(tx, email.data, password.data);
      await recordAudit(tx, { actor: { type: "cli", label: "atlashub admin create" }, action: "admin.create", target: { type: "admin_user", id: created.id }, details: { email: created.email } });
      return created;
    });
    print(`created admin ${user.email}`);
  } finally {
    await close();
  }
}

/** First line of stdin when piped; on a terminal, a prompt with echo off, asked twice. */
async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const text = await Bun.stdin.text();
    return text.split(/\r?\n/)[0] ?? "";
  }
  const first = await promptHidden("Password: ");
  const again = await promptHidden("Repeat password: ");
  if (first !== again) fail("passwords do not match", 2);
  return first;
}

function promptHidden(label: string): Promise<string> {
  process.stdout.write(label);
  process.stdin.setRawMode(true);
  process.stdin.resume();
  return new Promise((resolve) => {
    let value = "";
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString("utf8")) {
        if (ch === "\r" || ch === "\n") {
          process.stdin.off("data", onData);
          process.stdin.setRawMode(false);
          process.stdin.pause();
          process.stdout.write("\n");
          return resolve(value);
        }
        if (ch === "\u0003") process.exit(130);
        value = ch === "\u007f" ? value.slice(0, -1) : value + ch;
      }
    };
    process.stdin.on("data", onData);
  });
}

/** Arguments that are not flags, and the settings flags (`--name value` or `--name=value`) among them. */
function splitPositional(args: string[]) {
  const positional: string[] = [];
  const settingFlags: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith("--")) positional.push(arg);
    else if (arg.includes("=")) settingFlags.push(arg);
    else settingFlags.push(arg, ...(i + 1 < args.length ? [args[++i]!] : []));
  }
  return { positional, settingFlags };
}

function takeFlag(args: string[], name: string) {
  const remaining: string[] = [];
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === name) value = args[++i];
    else if (arg.startsWith(name + "=")) value = arg.slice(name.length + 1);
    else remaining.push(arg);
  }
  return { value, remaining };
}

function print(text: string) {
  process.stdout.write(text + "\n");
}

function fail(message: string, code = 1): never {
  process.stderr.write(`atlashub: ${message}\n`);
  process.exit(code);
}

main(Bun.argv.slice(2)).catch((err) => {
  if (err instanceof z.ZodError) fail(err.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`).join("; "), 2);
  fail((err as Error).message, err instanceof ConfigError ? 2 : 1);
});
