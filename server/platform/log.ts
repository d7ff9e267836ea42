// JSON-lines logger. Fields are chosen by callers; as a second line of defence, any field whose
// name looks like it carries a secret is replaced before the line is written.

type Level = "debug" | "info" | "warn" | "error";
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const secretField = /pass(word)?|secret|token|api_?key|master|authorization|cookie/i;

let minLevel: Level = "info";
let sink: (line: string) => void = (line) => process.stdout.write(line + "\n");

export function setLogLevel(level: Level) {
  minLevel = level;
}

/** Tests send every line of the suite to one file so a final check can scan it for secrets. */
export function setLogSink(write: (line: string) => void) {
  sink = write;
}

// Field names repeat (one access-log line per request), so each is tested against the pattern once.
const secretNames = new Map<string, boolean>();
function isSecretName(name: string) {
  let secret = secretNames.get(name);
  if (secret === undefined && secretNames.size < 10_000) secretNames.set(name, (secret = secretField.test(name)));
  return secret ?? secretField.test(name);
}

// Under load many lines share a millisecond: its ISO text is made once.
let stampedAt = 0;
let stamp = "";
function timestamp() {
  const now = Date.now();
  if (now !== stampedAt) {
    stampedAt = now;
    stamp = new Date(now).toISOString();
  }
  return stamp;
}

function write(level: Level, msg: string, fields: Record<string, unknown> = {}) {
  if (order[level] < order[minLevel]) return;
  const line: Record<string, unknown> = { time: timestamp(), level, msg };
  for (const k in fields) line[k] = isSecretName(k) ? "[redacted]" : fields[k];
  sink(JSON.stringify(line));
}

export const log = {
  debug: (msg: string, fields?: Record<string, unknown>) => write("debug", msg, fields),
  info: (msg: string, fields?: Record<string, unknown>) => write("info", msg, fields),
  warn: (msg: string, fields?: Record<string, unknown>) => write("warn", msg, fields),
  error: (msg: string, fields?: Record<string, unknown>) => write("error", msg, fields),
};
