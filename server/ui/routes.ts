import type { MiddlewareHandler } from "hono";
import { uiFiles, type UiFiles } from "./files";

// Paths that belong to the APIs: an unknown one there is a JSON 404, never the UI's index.html.
const API_PREFIXES = ["/admin/api", "/v1", "/rest", "/health", "/provision", "/metrics"];

// What the UI's pages may do: its own scripts and styles (Solid and CodeMirror set inline styles),
// fetches to this origin, no framing, no plugins.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * GET and HEAD of the embedded admin UI: files by path; hashed assets (/assets/…) cached for a
 * year; any other path that is not an API's and does not name a file gets index.html (client-side
 * routes). Precompressed br/gzip variants when the client takes them.
 */
export const serveUi = (files: () => UiFiles = uiFiles): MiddlewareHandler =>
  async function serveUi(c, next) {
    const path = c.req.path;
    if (API_PREFIXES.some((p) => path === p || path.startsWith(p + "/"))) return next();
    const all = files();
    let file = all.get(path);
    if (!file) {
      // A missing script or image must not come back as HTML (a stale hashed name after an upgrade).
      if (path.startsWith("/assets/") || /\.[A-Za-z0-9]+$/.test(path)) return next();
      file = all.get("/index.html");
      if (!file) return next();
    }
    const immutable = path.startsWith("/assets/");
    const html = file.type.startsWith("text/html");
    const headers: Record<string, string> = {
      "Content-Type": file.type,
      "Cache-Control": immutable ? "public, max-age=31536000, immutable" : html ? "no-cache" : "public, max-age=300",
      ETag: file.etag,
    };
    if (html) headers["Content-Security-Policy"] = CSP;
    if (file.gzip || file.br) headers.Vary = "Accept-Encoding";
    if (matchesEtag(c.req.header("if-none-match"), file.etag)) return c.body(null, 304, headers);

    const accepted = c.req.header("accept-encoding") ?? "";
    let body = file.file;
    if (file.br && acceptsEncoding(accepted, "br")) {
      body = file.br;
      headers["Content-Encoding"] = "br";
    } else if (file.gzip && acceptsEncoding(accepted, "gzip")) {
      body = file.gzip;
      headers["Content-Encoding"] = "gzip";
    }
    const blob = Bun.file(body);
    // Said outright so that HEAD, which Hono answers without the body, carries it too.
    headers["Content-Length"] = String(blob.size);
    return new Response(blob, { headers });
  };

function matchesEtag(header: string | undefined, etag: string) {
  return !!header && (header.trim() === "*" || header.split(",").some((t) => t.trim().replace(/^W\//, "") === etag));
}

/** True when Accept-Encoding lists `name` without q=0. */
export function acceptsEncoding(header: string, name: string) {
  return header.split(",").some((part) => {
    const [token, ...params] = part.trim().split(";");
    if (token!.trim().toLowerCase() !== name) return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return !q || Number(q.slice(2)) > 0;
  });
}
