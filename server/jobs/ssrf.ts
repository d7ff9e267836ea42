// SSRF guard for outgoing requests made on behalf of users (HTTP jobs, notification webhooks).
// Standalone: no imports from the app. The URL is parsed with WHATWG rules, so every spelling of an
// IPv4 address (decimal, octal, hex, dotted-short, full-width digits) arrives here as a dotted quad;
// names are resolved once, every address checked, and the request then connects to the checked
// address with the original Host header and TLS server name: no second lookup, so no DNS rebinding.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to all its addresses (the default asks the system resolver). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** What actually opens the connection; tests wrap fetch to count connection attempts. */
export type Transport = (url: string, init: BunFetchRequestInit) => Promise<Response>;

export interface GuardOptions {
  /** Hosts, addresses and CIDR ranges that may be reached even though they are internal. */
  allow?: AllowList;
  resolve?: Resolver;
}

export interface CheckedTarget {
  url: URL;
  /** The address to connect to: already checked, never to be looked up again. */
  address: string;
  family: 4 | 6;
}

export class SsrfBlockedError extends Error {
  constructor(
    readonly target: string,
    readonly reason: string,
  ) {
    super(`${target} is not allowed: ${reason}`);
  }
}

export const systemResolver: Resolver = async (hostname) => {
  const found = await lookup(hostname, { all: true, verbatim: true });
  return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

// ---- addresses ------------------------------------------------------------------------------

type Bytes = Uint8Array;

function parseIPv4(text: string): Bytes | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^\d{1,3}$/.test(parts[i]!)) return undefined;
    const n = Number(parts[i]);
    if (n > 255) return undefined;
    bytes[i] = n;
  }
  return bytes;
}

function parseIPv6(text: string): Bytes | undefined {
  if (text.includes("%")) return undefined; // zone ids only make sense for link-local, which is refused anyway
  let head = text;
  let tail4: Bytes | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    tail4 = parseIPv4(text.slice(lastColon + 1));
    if (!tail4) return undefined;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...left, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...right];
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-f]{1,4}$/i.test(all[i]!)) return undefined;
    const n = parseInt(all[i]!, 16);
    bytes[2 * i] = n >> 8;
    bytes[2 * i + 1] = n & 0xff;
  }
  if (tail4) bytes.set(tail4, 12);
  return bytes;
}

/** 4 or 16 bytes for an IP literal, undefined for anything else. */
export function parseIp(text: string): Bytes | undefined {
  const kind = isIP(text);
  return kind === 4 ? parseIPv4(text) : kind === 6 ? parseIPv6(text) : undefined;
}

interface Range {
  bytes: Bytes;
  prefix: number;
}

function cidr(text: string): Range {
  const [ip, len] = text.split("/");
  const bytes = parseIp(ip!);
  if (!bytes) throw new Error(`bad range ${text}`);
  return { bytes, prefix: len === undefined ? bytes.length * 8 : Number(len) };
}

function inRange(addr: Bytes, range: Range) {
  if (addr.length !== range.bytes.length) return false;
  for (let bit = 0; bit < range.prefix; bit += 8) {
    const take = Math.min(8, range.prefix - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    if ((addr[bit / 8]! & mask) !== (range.bytes[bit / 8]! & mask)) return false;
  }
  return true;
}

const V4_BLOCKED: [string, string][] = [
  ["0.0.0.0/8", "unspecified"],
  ["10.0.0.0/8", "private"],
  ["100.64.0.0/10", "carrier-grade NAT"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local"],
  ["172.16.0.0/12", "private"],
  ["192.0.0.0/24", "IETF protocol assignments"],
  ["192.0.2.0/24", "documentation"],
  ["192.88.99.0/24", "6to4 relay"],
  ["192.168.0.0/16", "private"],
  ["198.18.0.0/15", "benchmarking"],
  ["198.51.100.0/24", "documentation"],
  ["203.0.113.0/24", "documentation"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved or broadcast"],
];

const V6_BLOCKED: [string, string][] = [
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["64:ff9b:1::/48", "local-use NAT64"],
  ["100::/64", "discard-only"],
  ["2001::/32", "Teredo tunnel"],
  ["2001:db8::/32", "documentation"],
  ["fc00::/7", "unique-local"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "site-local"],
  ["ff00::/8", "multicast"],
];

// IPv6 forms that carry an IPv4 address in their last 32 bits (6to4 carries it in bits 16–48):
// each is judged by the IPv4 address inside, so ::ffff:127.0.0.1 is loopback.
const V6_EMBEDDING: [Range, number][] = [
  [cidr("::ffff:0:0/96"), 12], // IPv4-mapped
  [cidr("::ffff:0:0:0/96"), 12], // IPv4-translated (SIIT)
  [cidr("64:ff9b::/96"), 12], // NAT64 well-known prefix
  [cidr("::/96"), 12], // IPv4-compatible (deprecated)
  [cidr("2002::/16"), 2], // 6to4
];

const ipv4Compatible = cidr("::/96");
const blockedV4 = V4_BLOCKED.map(([r, why]) => ({ range: cidr(r), why, text: r }));
const blockedV6 = V6_BLOCKED.map(([r, why]) => ({ range: cidr(r), why, text: r }));

/** Why an address must not be reached ("loopback (127.0.0.0/8)"), or undefined when it is public. */
export function blockedReason(address: string): string | undefined {
  const bytes = parseIp(address);
  if (!bytes) return "not an IP address";
  return reasonFor(bytes);
}

function reasonFor(bytes: Bytes): string | undefined {
  if (bytes.length === 4) {
    const hit = blockedV4.find((b) => inRange(bytes, b.range));
    return hit && `${hit.why} (${hit.text})`;
  }
  const hit = blockedV6.find((b) => inRange(bytes, b.range));
  if (hit) return `${hit.why} (${hit.text})`;
  for (const [range, at] of V6_EMBEDDING) {
    if (inRange(bytes, range)) {
      const inner = reasonFor(bytes.slice(at, at + 4));
      if (inner) return `${inner}, embedded in an IPv6 address`;
    }
  }
  return inRange(bytes, ipv4Compatible) ? "IPv4-compatible, deprecated (::/96)" : undefined;
}

// ---- allowlist ------------------------------------------------------------------------------

export interface AllowList {
  names: Set<string>;
  ranges: Range[];
}

/**
 * Entries of ATLASHUB_JOB_ALLOW_HOSTS: a host name (matches that name only, whatever it resolves
 * to), an IP address or a CIDR range (matches the resolved address, whatever the name).
 */
export function parseAllowList(entries: string[]): AllowList {
  const list: AllowList = { names: new Set(), ranges: [] };
  for (const raw of entries) {
    const entry = raw.trim().toLowerCase().replace(/^\[|\]$/g, "");
    if (!entry) continue;
    const [ip, len] = entry.split("/");
    const bytes = parseIp(ip!);
    if (bytes) {
      const prefix = len === undefined ? bytes.length * 8 : Number(len);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > bytes.length * 8) throw new Error(`invalid range ${raw}`);
      list.ranges.push({ bytes, prefix });
    } else if (len === undefined && /^[a-z0-9.-]+$/.test(entry)) {
      list.names.add(normaliseName(entry));
    } else {
      throw new Error(`invalid host, address or range ${raw}`);
    }
  }
  return list;
}

function normaliseName(name: string) {
  return name.toLowerCase().replace(/\.+$/, "");
}

// ---- the check ------------------------------------------------------------------------------

function parseTarget(target: string | URL): URL {
  let url: URL;
  try {
    url = typeof target === "string" ? new URL(target) : target;
  } catch {
    throw new SsrfBlockedError(String(target), "not a valid URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new SsrfBlockedError(url.href, `the scheme ${url.protocol} is not http or https`);
  if (!url.hostname) throw new SsrfBlockedError(url.href, "no host");
  return url;
}

/**
 * Parses and checks a target. Resolves a name once (IP literals are not looked up), refuses when any
 * of its addresses is internal, and returns the address to connect to.
 */
export async function checkTarget(target: string | URL, options: GuardOptions = {}): Promise<CheckedTarget> {
  const url = parseTarget(target);
  const allow = options.allow ?? { names: new Set(), ranges: [] };
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const name = normaliseName(host);
  const literal = parseIp(host);
  const nameAllowed = !literal && allow.names.has(name);
  const isAllowed = (bytes: Bytes) => nameAllowed || allow.ranges.some((r) => inRange(bytes, r));

  if (literal) {
    const why = isAllowed(literal) ? undefined : reasonFor(literal);
    if (why) throw new SsrfBlockedError(url.href, `${host} is ${why}`);
    return { url, address: host, family: literal.length === 4 ? 4 : 6 };
  }
  // RFC 6761: these names are loopback wherever they are resolved; refuse them without asking DNS.
  if (!nameAllowed && (name === "localhost" || name.endsWith(".localhost"))) throw new SsrfBlockedError(url.href, `${host} is a loopback name`);

  let addresses: ResolvedAddress[];
  try {
    addresses = await (options.resolve ?? systemResolver)(host);
  } catch (err) {
    throw new SsrfBlockedError(url.href, `${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (addresses.length === 0) throw new SsrfBlockedError(url.href, `${host} does not resolve`);
  for (const a of addresses) {
    const bytes = parseIp(a.address);
    if (!bytes) throw new SsrfBlockedError(url.href, `${host} resolves to something that is not an IP address`);
    const why = isAllowed(bytes) ? undefined : reasonFor(bytes);
    if (why) throw new SsrfBlockedError(url.href, `${host} resolves to ${a.address}, ${why}`);
  }
  const first = addresses[0]!;
  return { url, address: first.address, family: isIP(first.address) === 6 ? 6 : 4 };
}

// ---- the request ----------------------------------------------------------------------------

export interface GuardedRequest {
  method: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** Redirects followed when their target passes the check again (default 0: a 3xx is the answer). */
  maxRedirects?: number;
  /** Header names (lowercase) not sent on after a redirect to another origin; authorization and cookie always. */
  sensitiveHeaders?: string[];
}

export interface GuardedResponse {
  response: Response;
  /** Where the final response came from. */
  url: URL;
  address: string;
}

/**
 * fetch() through the guard: checks the target, connects to the checked address (Host header and
 * TLS server name stay the original host), and follows a redirect only when its target passes too.
 */
export async function guardedFetch(target: string | URL, request: GuardedRequest, options: GuardOptions & { transport?: Transport } = {}): Promise<GuardedResponse> {
  const transport = options.transport ?? ((url, init) => fetch(url, init));
  let checked = await checkTarget(target, options);
  let { method, body } = request;
  let headers = { ...request.headers };
  for (let redirects = 0; ; redirects++) {
    const response = await transport(pinnedUrl(checked), {
      method,
      headers: { ...headers, host: checked.url.host },
      body,
      signal: request.signal,
      redirect: "manual",
      proxy: false, // a proxy would do its own lookup
      tls: isIP(checked.url.hostname) ? undefined : { serverName: checked.url.hostname },
    } as BunFetchRequestInit);
    const location = response.headers.get("location");
    if (response.status < 300 || response.status > 399 || !location || redirects >= (request.maxRedirects ?? 0)) {
      return { response, url: checked.url, address: checked.address };
    }
    await response.body?.cancel();
    let nextUrl: URL;
    try {
      nextUrl = new URL(location, checked.url);
    } catch {
      throw new SsrfBlockedError(location, "a redirect to an invalid URL");
    }
    const next = await checkTarget(nextUrl, options);
    if (next.url.origin !== checked.url.origin) headers = withoutSensitive(headers, request.sensitiveHeaders ?? []);
    // As browsers do: 303 (and 301/302 after a POST) continue as a GET without a body.
    if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === "POST")) {
      method = "GET";
      body = undefined;
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== "content-type"));
    }
    checked = next;
  }
}

function pinnedUrl(checked: CheckedTarget) {
  const url = new URL(checked.url);
  url.hostname = checked.family === 6 ? `[${checked.address}]` : checked.address;
  return url.href;
}

function withoutSensitive(headers: Record<string, string>, sensitive: string[]) {
  const drop = new Set(["authorization", "proxy-authorization", "cookie", ...sensitive.map((s) => s.toLowerCase())]);
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !drop.has(k.toLowerCase())));
}
