// The admin UI's files (Vite's ui/dist): registered by the generated module that the compiled binary
// is built from (build/embed-ui.ts writes server/ui/embedded.gen.ts), or, when running from source,
// read from ui/dist on disk.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, resolve } from "node:path";

export interface UiFile {
  /** Where the bytes are: a /$bunfs/… path inside the binary, or a file on disk. */
  file: string;
  type: string;
  /** Strong ETag: a hash of the content (quoted). */
  etag: string;
  /** Precompressed variants, when they are smaller. */
  gzip?: string;
  br?: string;
}
export type UiFiles = Map<string, UiFile>;

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".webmanifest": "application/manifest+json",
};
export const contentTypeOf = (path: string) => TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";
/** Worth compressing: text formats. */
export const compressible = (path: string) => /\.(html|m?js|css|json|map|svg|txt|webmanifest)$/i.test(path);

let registered: UiFiles | undefined;

/** Called by the generated module of the compiled binary, before the server starts. */
export function registerUiFiles(files: Record<string, UiFile>) {
  registered = new Map(Object.entries(files));
}

let fromDisk: UiFiles | undefined;
export const defaultDistDir = resolve(import.meta.dir, "../../ui/dist");

/** The UI's files by URL path ("/index.html", "/assets/index-abc.js"); empty when the UI is not built. */
export function uiFiles(): UiFiles {
  if (registered) return registered;
  // Inside a compiled binary import.meta.dir is in /$bunfs and there is no ui/dist beside it.
  fromDisk ??= existsSync(join(defaultDistDir, "index.html")) ? scanDist(defaultDistDir) : new Map();
  return fromDisk;
}

/**
 * Every file of a Vite build by URL path, with its type, content hash and precompressed siblings
 * (`x.js.gz`, `x.js.br`, written by build/embed-ui.ts), which are not files of their own.
 */
export function scanDist(dir: string): UiFiles {
  const files: UiFiles = new Map();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (!/\.(gz|br)$/.test(name)) {
        const hash = new Bun.CryptoHasher("sha256").update(readFileSync(full)).digest("base64url").slice(0, 22);
        files.set("/" + relative(dir, full).split("\\").join("/"), {
          file: full,
          type: contentTypeOf(name),
          etag: `"${hash}"`,
          gzip: existsSync(full + ".gz") ? full + ".gz" : undefined,
          br: existsSync(full + ".br") ? full + ".br" : undefined,
        });
      }
    }
  };
  walk(dir);
  return files;
}
