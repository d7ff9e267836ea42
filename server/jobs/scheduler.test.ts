import { describe, expect, it } from "bun:test";
import { ManualClock } from "../test/clock";
import { nextRuns, parseSchedule, ScheduleError, Scheduler, type ScheduledJob } from "./scheduler";

const MINUTE = 60_000;
const START = Date.parse("2024-05-01T00:00:00.000Z");

/** What the control plane does for the app: one claim per (job, occurrence), whoever asks first. */
function claimStore() {
  const claims = new Map<string, { instance: string; skipped?: string }>();
  let attempts = 0;
  return {
    claims,
    attempts: () => attempts,
    claimAs(instance: string) {
      return async (job: ScheduledJob, at: Date, skipped?: string) => {
        attempts++;
        const key = `${job.id}@${at.toISOString()}`;
        if (claims.has(key)) return undefined;
        claims.set(key, { instance, skipped });
        return key;
      };
    },
    /** The latest occurrence claimed for a job: what the app passes as `since` after a restart. */
    lastClaimed(jobId: string) {
      const times = [...claims.keys()].filter((k) => k.startsWith(jobId + "@")).map((k) => Date.parse(k.slice(jobId.length + 1)));
      return times.length ? new Date(Math.max(...times)) : undefined;
    },
  };
}

function perMinute(overrides: Partial<ScheduledJob> = {}): ScheduledJob {
  return { id: "j1", schedule: "* * * * *", timezone: "UTC", missed: "skip", concurrency: "forbid", since: new Date(START), ...overrides };
}

function instance(clock: ManualClock, store: ReturnType<typeof claimStore>, name: string, jobs: () => ScheduledJob[], run: (key: string) => unknown = () => {}) {
  const runs: string[] = [];
  const errors: unknown[] = [];
  const scheduler = new Scheduler<string>(
    {
      loadJobs: async () => jobs(),
      claim: store.claimAs(name),
      run: async (_job, key) => {
        runs.push(key);
        await run(key);
      },
      onError: (err) => errors.push(err),
    },
    { clock },
  );
  return { scheduler, runs, errors };
}

describe("Scheduler", () => {
  it("runs a per-minute job exactly 1,440 times over a simulated day", async () => {
    const clock = new ManualClock(START);
    const store = claimStore();
    const a = instance(clock, store, "a", () => [perMinute()]);
    a.scheduler.start();
    await clock.advanceTo(START + 24 * 60 * MINUTE);
    await a.scheduler.stop();
    expect(a.runs).toHaveLength(1440);
    expect(new Set(a.runs).size).toBe(1440);
    expect(a.runs[0]).toBe("j1@2024-05-01T00:01:00.000Z");
    expect(a.runs.at(-1)).toBe("j1@2024-05-02T00:00:00.000Z");
    expect(a.errors).toEqual([]);
  });

  it("runs each occurrence once with two instances sharing one claim store", async () => {
    const clock = new ManualClock(START);
    const store = claimStore();
    const a = instance(clock, store, "a", () => [perMinute()]);
    const b = instance(clock, store, "b", () => [perMinute()]);
    b.scheduler.start();
    a.scheduler.start();
    await clock.advanceTo(START + 24 * 60 * MINUTE);
    await Promise.all([a.scheduler.stop(), b.scheduler.stop()]);
    const all = [...a.runs, ...b.runs];
    expect(all).toHaveLength(1440);
    expect(new Set(all).size).toBe(1440);
    expect(store.claims.size).toBe(1440);
    // Both tried every occurrence; one claim each.
    expect(store.attempts()).toBe(2880);
  });

  for (const [policy, expected] of [
    ["skip", []],
    ["run_once", ["j1@2024-05-01T00:20:00.000Z"]],
  ] as const) {
    it(`after 10 simulated minutes down, policy ${policy} runs ${expected.length} of the missed occurrences`, async () => {
      const clock = new ManualClock(START);
      const store = claimStore();
      const job = perMinute({ missed: policy });
      const before = instance(clock, store, "a", () => [job]);
      before.scheduler.start();
      await clock.advanceTo(START + 10 * MINUTE + 30_000);
      await before.scheduler.stop();
      expect(before.runs).toHaveLength(10);

      await clock.advanceTo(START + 20 * MINUTE + 30_000);
      const after = instance(clock, store, "a", () => [{ ...job, since: store.lastClaimed(job.id) }]);
      after.scheduler.start();
      await clock.advanceTo(START + 30 * MINUTE);
      await after.scheduler.stop();

      const missed = after.runs.filter((k) => k <= "j1@2024-05-01T00:20:00.000Z");
      expect(missed).toEqual([...expected]);
      expect(after.runs.filter((k) => k > "j1@2024-05-01T00:20:00.000Z")).toHaveLength(10);
      // A skip is on record, so the next start does not count the same gap again.
      if (policy === "skip") expect(store.claims.get("j1@2024-05-01T00:20:00.000Z")?.skipped).toMatch(/^missed/);
    });
  }

  it("still runs an occurrence found a few seconds late (a restart between two minutes)", async () => {
    const clock = new ManualClock(START);
    const store = claimStore();
    const job = perMinute({ missed: "skip" });
    const before = instance(clock, store, "a", () => [job]);
    before.scheduler.start();
    await clock.advanceTo(START + 5 * MINUTE + 59_000);
    await before.scheduler.stop();
    await clock.advanceTo(START + 6 * MINUTE + 5_000);
    const after = instance(clock, store, "a", () => [{ ...job, since: store.lastClaimed(job.id) }]);
    after.scheduler.start();
    await clock.advanceTo(START + 7 * MINUTE);
    await after.scheduler.stop();
    expect(after.runs).toEqual(["j1@2024-05-01T00:06:00.000Z", "j1@2024-05-01T00:07:00.000Z"]);
  });

  it("with concurrency forbid skips an occurrence while the previous run is in progress; allow overlaps", async () => {
    for (const concurrency of ["forbid", "allow"] as const) {
      const clock = new ManualClock(START);
      const store = claimStore();
      let release = () => {};
      const slow = new Promise<void>((resolve) => (release = resolve));
      const a = instance(clock, store, "a", () => [perMinute({ concurrency })], (key) => (key.endsWith("00:01:00.000Z") ? slow : undefined));
      a.scheduler.start();
      await clock.advanceTo(START + 3 * MINUTE);
      expect(a.scheduler.runningCount("j1")).toBe(1);
      release();
      await clock.advanceTo(START + 4 * MINUTE);
      await a.scheduler.stop();
      if (concurrency === "forbid") {
        expect(a.runs).toEqual(["j1@2024-05-01T00:01:00.000Z", "j1@2024-05-01T00:04:00.000Z"]);
        expect(store.claims.get("j1@2024-05-01T00:02:00.000Z")?.skipped).toMatch(/still in progress/);
      } else {
        expect(a.runs).toHaveLength(4);
      }
    }
  });

  it("asks isBusy for runs in progress on other instances", async () => {
    const clock = new ManualClock(START);
    const store = claimStore();
    const runs: string[] = [];
    const scheduler = new Scheduler<string>(
      { loadJobs: async () => [perMinute()], claim: store.claimAs("a"), run: async (_j, key) => runs.push(key), isBusy: async () => clock.now() < START + 2 * MINUTE + 1 },
      { clock },
    );
    scheduler.start();
    await clock.advanceTo(START + 3 * MINUTE);
    await scheduler.stop();
    expect(runs).toEqual(["j1@2024-05-01T00:03:00.000Z"]);
  });

  it("follows the timezone across a daylight-saving change", async () => {
    const from = Date.parse("2024-03-29T00:00:00Z");
    const clock = new ManualClock(from);
    const store = claimStore();
    const a = instance(clock, store, "a", () => [perMinute({ schedule: "0 9 * * *", timezone: "Europe/Berlin", since: new Date(from) })]);
    a.scheduler.start();
    await clock.advanceTo(Date.parse("2024-04-02T00:00:00Z"));
    await a.scheduler.stop();
    expect(a.runs).toEqual(["j1@2024-03-29T08:00:00.000Z", "j1@2024-03-30T08:00:00.000Z", "j1@2024-03-31T07:00:00.000Z", "j1@2024-04-01T07:00:00.000Z"]);
  });

  it("picks up added, changed and removed jobs at the next wake-up", async () => {
    const clock = new ManualClock(START);
    const store = claimStore();
    let jobs = [perMinute()];
    const a = instance(clock, store, "a", () => jobs);
    a.scheduler.start();
    await clock.advanceTo(START + 2 * MINUTE);
    jobs = [perMinute({ schedule: "*/5 * * * *" }), perMinute({ id: "j2", since: new Date(clock.now()) })];
    a.scheduler.wake();
    await clock.advanceTo(START + 10 * MINUTE);
    jobs = [];
    await clock.advanceTo(START + 20 * MINUTE);
    await a.scheduler.stop();
    expect(a.runs.filter((k) => k.startsWith("j1@"))).toEqual(["j1@2024-05-01T00:01:00.000Z", "j1@2024-05-01T00:02:00.000Z", "j1@2024-05-01T00:05:00.000Z", "j1@2024-05-01T00:10:00.000Z"]);
    expect(a.runs.filter((k) => k.startsWith("j2@"))).toHaveLength(8);
  });

  it("aborts runs in progress when stopped and waits for them", async () => {
    const clock = new ManualClock(START);
    let aborted = false;
    const scheduler = new Scheduler<string>(
      {
        loadJobs: async () => [perMinute()],
        claim: claimStore().claimAs("a"),
        run: (_j, _k, signal) => new Promise<void>((resolve) => signal.addEventListener("abort", () => ((aborted = true), resolve()))),
      },
      { clock },
    );
    scheduler.start();
    await clock.advanceTo(START + MINUTE);
    expect(scheduler.runningCount("j1")).toBe(1);
    await scheduler.stop();
    expect(aborted).toBe(true);
    expect(scheduler.runningCount("j1")).toBe(0);
  });

  it("keeps going when loading or claiming fails", async () => {
    const clock = new ManualClock(START);
    const errors: unknown[] = [];
    let calls = 0;
    const runs: string[] = [];
    const store = claimStore();
    const scheduler = new Scheduler<string>(
      {
        loadJobs: async () => {
          if (++calls === 2) throw new Error("control plane away");
          return [perMinute()];
        },
        claim: async (job, at, skipped) => {
          if (at.getTime() === START + 2 * MINUTE) throw new Error("claim failed");
          return store.claimAs("a")(job, at, skipped);
        },
        run: async (_j, key) => runs.push(key),
        onError: (err) => errors.push(err),
      },
      { clock },
    );
    scheduler.start();
    await clock.advanceTo(START + 4 * MINUTE);
    await scheduler.stop();
    expect(runs).toEqual(["j1@2024-05-01T00:01:00.000Z", "j1@2024-05-01T00:03:00.000Z", "j1@2024-05-01T00:04:00.000Z"]);
    expect(errors.map((e) => (e as Error).message)).toEqual(["control plane away", "claim failed"]);
  });
});

describe("parseSchedule", () => {
  it("explains what is wrong with an expression or timezone", () => {
    const message = (schedule: string, tz = "UTC") => {
      try {
        parseSchedule(schedule, tz);
      } catch (err) {
        expect(err).toBeInstanceOf(ScheduleError);
        return (err as Error).message;
      }
    };
    expect(message("61 * * * *")).toMatch(/minute/);
    expect(message("* * * * * *")).toMatch(/5 parts/);
    expect(message("every day")).toMatch(/parts/);
    expect(message("0 0 30 2 *")).toBe('"0 0 30 2 *" never runs');
    expect(message("* * * * *", "Mars/Olympus")).toMatch(/unknown timezone "Mars\/Olympus"/);
    expect(message("@hourly")).toBeUndefined();
  });

  it("lists the next runs in the job's timezone", () => {
    expect(nextRuns("30 8 * * 1-5", "America/New_York", 3, new Date("2024-05-03T00:00:00Z")).map((d) => d.toISOString())).toEqual([
      "2024-05-03T12:30:00.000Z",
      "2024-05-06T12:30:00.000Z",
      "2024-05-07T12:30:00.000Z",
    ]);
  });
});
