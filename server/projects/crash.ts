// Test hook for crash safety: with ATLASHUB_TEST_CRASH_AT=<point> the process kills itself with
// SIGKILL the moment it reaches that point, as a power cut would. Points are "after:<status>" (the
// step's work is done, the row does not say so yet), "during:<status>" (part of a step's work is done)
// and "created" (the project row exists, nothing else).
export function crashPoint(point: string) {
  if (process.env.ATLASHUB_TEST_CRASH_AT === point) process.kill(process.pid, "SIGKILL");
}
