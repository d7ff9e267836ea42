// Which project ids, bucket names and object keys the object stores accept. No app imports: the
// stores, the signer's callers and the HTTP schemas all check against these same rules.

export const MAX_KEY_BYTES = 1024;
/** NAME_MAX of Linux file systems: a longer segment could not be a file name under the fs driver. */
export const MAX_SEGMENT_BYTES = 255;
/** File names the fs driver keeps for itself (temp files of uploads in flight); no key segment may start so. */
export const RESERVED_PREFIX = ".ah-";

const PROJECT_ID = /^[a-z0-9]{10}$/;
// Lowercase, digits, - and _; 3–63 characters like an S3 bucket, so a bucket maps onto S3 either way.
const BUCKET_NAME = /^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$/;

export const isProjectId = (id: string) => PROJECT_ID.test(id);
export const isBucketName = (name: string) => BUCKET_NAME.test(name);

// C0 and C1 controls and DEL; the bidirectional overrides and isolates, which make a name display
// as something else ("gpj.exe" shown as "exe.jpg").
const FORBIDDEN_CHARS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/**
 * Why `key` is not an acceptable object key, or undefined when it is. A key is a "/"-separated path
 * of non-empty segments. Rejected: absolute paths, empty segments, "." and "..", backslashes, control
 * characters, ill-formed UTF-16, more than 1024 bytes of UTF-8 (255 per segment), and segments that
 * become ".", ".." or contain "/" or "\" under Unicode NFKC normalisation ("．．", "‥", "／"): the fs
 * driver would not be fooled by them, but an S3 console, a zip tool or a client that normalises
 * names could turn them into a traversal.
 */
export function objectKeyProblem(key: string): string | undefined {
  if (key.length === 0) return "must not be empty";
  if (!key.isWellFormed()) return "must be valid Unicode";
  if (Buffer.byteLength(key, "utf8") > MAX_KEY_BYTES) return `must be at most ${MAX_KEY_BYTES} bytes of UTF-8`;
  if (FORBIDDEN_CHARS.test(key)) return "must not contain control or bidirectional-override characters";
  if (key.includes("\\")) return "must not contain backslashes";
  if (key.startsWith("/")) return "must not start with / (keys are relative)";
  for (const segment of key.split("/")) {
    if (segment === "") return "must not contain empty segments (// or a trailing /)";
    if (segment === "." || segment === "..") return "must not contain . or .. segments";
    if (Buffer.byteLength(segment, "utf8") > MAX_SEGMENT_BYTES) return `must not have a segment longer than ${MAX_SEGMENT_BYTES} bytes`;
    if (segment.startsWith(RESERVED_PREFIX)) return `must not have a segment starting with ${RESERVED_PREFIX} (reserved)`;
    const folded = segment.normalize("NFKC");
    if (folded === "." || folded === ".." || /[/\\]/.test(folded)) return "must not contain characters that normalise to ., .., / or \\";
  }
  return undefined;
}

export const isObjectKey = (key: string) => objectKeyProblem(key) === undefined;
