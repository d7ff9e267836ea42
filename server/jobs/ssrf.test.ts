import { afterAll, describe, expect, it } from "bun:test";
import { blockedReason, checkTarget, guardedFetch, parseAllowList, SsrfBlockedError, type ResolvedAddress, type Transport } from "./ssrf";

// No traffic leaves 127.0.0.1: names resolve through this table only, and every connection goes
// through a transport that counts it.
const dns: Record<string, string[]> = {
  "internal.test": ["10.1.2.3"],
  "metadata.test": ["169.254.169.254"],
  "cgnat.test": ["100.100.100.100"],
  "ula.test": ["fd00::5"],
  "linklocal6.test": ["fe80::1"],
  "mapped.test": ["::ffff:127.0.0.1"],
  "nat64.test": ["64:ff9b::a00:1"],
  "mixed.test": ["93.184.216.34", "127.0.0.1"],
  "multicast.test": ["239.1.1.1"],
  "127.0.0.1.nip.io": ["127.0.0.1"],
  "empty.test": [],
  "public.test": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
  "hook.test": ["127.0.0.1"],
  "other.test": ["127.0.0.1"],
};

function harness() {
  const lookups: string[] = [];
  const connects: string[] = [];
  const resolve = async (host: string): Promise<ResolvedAddress[]> => {
    lookups.push(host);
    const found = dns[host];
    if (!found) throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
    return found.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  const transport: Transport = (url, init) => {
    connects.push(url);
    if (new URL(url).hostname !== "127.0.0.1") throw new Error(`test tried to connect to ${url}`);
    return fetch(url, init);
  };
  return { lookups, connects, resolve, transport };
}

describe("checkTarget", () => {
  // [target, what it is]. Every one is refused before any connection; IP literals without a lookup.
  const hostile: [string, string][] = [
    ["http://127.0.0.1/", "loopback"],
    ["http://127.1/", "loopback, dotted-short"],
    ["http://2130706433/", "loopback, decimal"],
    ["http://0x7f000001/", "loopback, hex"],
    ["http://0177.0.0.1/", "loopback, octal"],
    ["http://017700000001/", "loopback, octal as one number"],
    ["http://0x7f.0x0.0x0.0x1/", "loopback, dotted hex"],
    ["http://127.255.255.254:8080/", "loopback, top of the range"],
    ["http://１２７。０。０。１/", "loopback, full-width digits and dots"],
    ["http://user:pw@127.0.0.1/", "loopback with credentials"],
    ["http://[::1]/", "IPv6 loopback"],
    ["http://[0:0:0:0:0:0:0:1]/", "IPv6 loopback, long form"],
    ["http://[::ffff:127.0.0.1]/", "IPv4-mapped loopback"],
    ["http://[::ffff:7f00:1]/", "IPv4-mapped loopback, hex"],
    ["http://[::127.0.0.1]/", "IPv4-compatible loopback"],
    ["http://[::ffff:0:7f00:1]/", "IPv4-translated loopback"],
    ["http://[64:ff9b::7f00:1]/", "NAT64 loopback"],
    ["http://[2002:7f00:1::]/", "6to4 loopback"],
    ["http://localhost/", "localhost"],
    ["http://localhost./", "localhost with a trailing dot"],
    ["http://LOCALHOST:8080/", "localhost in capitals"],
    ["http://api.localhost/", "a .localhost name"],
    ["http://0.0.0.0/", "unspecified"],
    ["http://0/", "unspecified, one number"],
    ["http://[::]/", "IPv6 unspecified"],
    ["http://10.0.0.1/", "private 10/8"],
    ["http://167772161/", "private 10/8, decimal"],
    ["http://012.1/", "private 10/8, octal dotted-short"],
    ["http://0xa.0.0.1/", "private 10/8, hex first byte"],
    ["http://172.16.0.1/", "private 172.16/12"],
    ["http://172.31.255.255/", "private 172.16/12, top"],
    ["http://0xac100001/", "private 172.16/12, hex"],
    ["http://192.168.1.1/", "private 192.168/16"],
    ["http://0300.0250.1.1/", "private 192.168/16, octal"],
    ["http://3232235777/", "private 192.168/16, decimal"],
    ["http://[::ffff:192.168.1.1]/", "IPv4-mapped private"],
    ["http://[::ffff:a00:1]/", "IPv4-mapped 10.0.0.1, hex"],
    ["http://169.254.169.254/latest/meta-data/", "link-local metadata"],
    ["http://2852039166/", "link-local metadata, decimal"],
    ["http://[::ffff:169.254.169.254]/", "IPv4-mapped link-local"],
    ["http://[64:ff9b::a9fe:a9fe]/", "NAT64 link-local"],
    ["http://[fe80::1]/", "IPv6 link-local"],
    ["http://[febf::1]/", "IPv6 link-local, top of fe80::/10"],
    ["http://100.64.0.1/", "CGNAT"],
    ["http://100.127.255.254/", "CGNAT, top"],
    ["http://[::ffff:100.64.0.1]/", "IPv4-mapped CGNAT"],
    ["http://[fc00::1]/", "unique-local"],
    ["http://[fd12:3456:789a::1]/", "unique-local fd"],
    ["http://224.0.0.1/", "multicast"],
    ["http://239.255.255.250:1900/", "multicast SSDP"],
    ["http://[ff02::1]/", "IPv6 multicast"],
    ["http://255.255.255.255/", "broadcast"],
    ["http://4294967295/", "broadcast, decimal"],
    ["http://240.0.0.1/", "reserved"],
    ["file:///etc/passwd", "file scheme"],
    ["ftp://public.test/", "ftp scheme"],
    ["gopher://127.0.0.1:70/", "gopher scheme"],
    ["data:text/plain,hello", "data scheme"],
    ["not a url", "not a URL"],
    ["http://internal.test/", "a name resolving to 10/8"],
    ["http://metadata.test/", "a name resolving to the metadata address"],
    ["http://cgnat.test/", "a name resolving to CGNAT"],
    ["http://ula.test/", "a name resolving to unique-local"],
    ["http://linklocal6.test/", "a name resolving to IPv6 link-local"],
    ["http://mapped.test/", "a name resolving to IPv4-mapped loopback"],
    ["http://nat64.test/", "a name resolving to NAT64 of 10.0.0.1"],
    ["http://mixed.test/", "a name with one public and one loopback address"],
    ["http://multicast.test/", "a name resolving to multicast"],
    ["http://127.0.0.1.nip.io/", "a wildcard-DNS name of 127.0.0.1"],
    ["http://empty.test/", "a name without addresses"],
    ["http://nxdomain.test/", "a name that does not resolve"],
  ];
  expect(hostile.length).toBeGreaterThanOrEqual(40);

  for (const [target, what] of hostile) {
    it(`refuses ${what} (${target}) without connecting`, async () => {
      const h = harness();
      const error = await guardedFetch(target, { method: "GET" }, h).catch((e) => e);
      expect(error).toBeInstanceOf(SsrfBlockedError);
      expect(h.connects).toEqual([]);
      const literal = !/\.test\/|nip\.io|localhost|^ftp:/i.test(target);
      if (literal) expect(h.lookups).toEqual([]);
    });
  }

  it("explains the refusal", async () => {
    const h = harness();
    expect((await checkTarget("http://0x7f000001/", h).catch((e) => e)).message).toBe("http://127.0.0.1/ is not allowed: 127.0.0.1 is loopback (127.0.0.0/8)");
    expect((await checkTarget("http://[::ffff:a00:1]/", h).catch((e) => e)).reason).toBe("::ffff:a00:1 is private (10.0.0.0/8), embedded in an IPv6 address");
    expect((await checkTarget("http://internal.test/", h).catch((e) => e)).reason).toBe("internal.test resolves to 10.1.2.3, private (10.0.0.0/8)");
  });

  it("accepts a public name and returns the address it checked, looked up once", async () => {
    const h = harness();
    const checked = await checkTarget("https://public.test/hook?x=1", h);
    expect(checked).toMatchObject({ address: "93.184.216.34", family: 4 });
    expect(checked.url.href).toBe("https://public.test/hook?x=1");
    expect(h.lookups).toEqual(["public.test"]);
  });

  it("accepts public addresses, also inside IPv6 forms", () => {
    for (const a of ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "172.32.0.1", "100.128.0.1", "192.169.0.1"]) {
      expect([a, blockedReason(a)]).toEqual([a, undefined]);
    }
  });

  it("lets the allowlist permit a name (whatever it resolves to) or a range (whatever the name)", async () => {
    const h = harness();
    const byName = parseAllowList(["hook.test"]);
    expect((await checkTarget("http://hook.test:9/", { ...h, allow: byName })).address).toBe("127.0.0.1");
    expect(await checkTarget("http://127.0.0.1:9/", { ...h, allow: byName }).catch((e) => e)).toBeInstanceOf(SsrfBlockedError);
    const byRange = parseAllowList(["10.0.0.0/8", "::1"]);
    expect((await checkTarget("http://internal.test/", { ...h, allow: byRange })).address).toBe("10.1.2.3");
    expect((await checkTarget("http://[::1]/", { ...h, allow: byRange })).address).toBe("::1");
    expect(await checkTarget("http://metadata.test/", { ...h, allow: byRange }).catch((e) => e)).toBeInstanceOf(SsrfBlockedError);
    expect(await checkTarget("gopher://hook.test/", { ...h, allow: byName }).catch((e) => e)).toBeInstanceOf(SsrfBlockedError);
  });

  it("rejects malformed allowlist entries", () => {
    for (const bad of ["10.0.0.0/33", "host name", "a/b", "http://x"]) expect(() => parseAllowList([bad])).toThrow();
    expect(parseAllowList([" Hook.Test. ", "", "[::1]"]).names.has("hook.test")).toBe(true);
  });
});

describe("guardedFetch", () => {
  const hits: Record<string, { host: string | null; authorization: string | null; token: string | null; method: string }[]> = {};
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      (hits[url.pathname] ??= []).push({ host: req.headers.get("host"), authorization: req.headers.get("authorization"), token: req.headers.get("x-token"), method: req.method });
      if (url.pathname === "/to-loopback") return Response.redirect(`http://127.0.0.1:${server.port}/secret`, 302);
      if (url.pathname === "/to-ipv6-loopback") return Response.redirect(`http://[::1]:${server.port}/secret`, 302);
      if (url.pathname === "/to-same") return Response.redirect(`/ok`, 307);
      if (url.pathname === "/to-other") return Response.redirect(`http://other.test:${server.port}/ok`, 303);
      return new Response("hello");
    },
  });
  afterAll(() => server.stop(true));
  const base = `http://hook.test:${server.port}`;
  const allow = parseAllowList(["hook.test", "other.test"]);

  it("connects to the checked address with the original Host header (no second lookup)", async () => {
    const h = harness();
    const { response, address } = await guardedFetch(`${base}/plain`, { method: "GET" }, { ...h, allow });
    expect(await response.text()).toBe("hello");
    expect(address).toBe("127.0.0.1");
    expect(hits["/plain"]!.at(-1)!.host).toBe(`hook.test:${server.port}`);
    expect(h.lookups).toEqual(["hook.test"]);
    expect(h.connects).toEqual([`http://127.0.0.1:${server.port}/plain`]);
  });

  it("connects directly even when a proxy is configured (a proxy would resolve the name again)", async () => {
    const proxied: string[] = [];
    const proxy = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (proxied.push(req.url), new Response("proxy")) });
    const saved = process.env.HTTP_PROXY;
    process.env.HTTP_PROXY = `http://127.0.0.1:${proxy.port}`;
    try {
      const { response } = await guardedFetch(`${base}/direct`, { method: "GET" }, { ...harness(), allow });
      expect(await response.text()).toBe("hello");
      expect(proxied).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.HTTP_PROXY;
      else process.env.HTTP_PROXY = saved;
      proxy.stop(true);
    }
  });

  it("refuses a redirect to 127.0.0.1 without connecting to it", async () => {
    for (const path of ["/to-loopback", "/to-ipv6-loopback"]) {
      const h = harness();
      const error = await guardedFetch(`${base}${path}`, { method: "GET", maxRedirects: 5 }, { ...h, allow }).catch((e) => e);
      expect(error).toBeInstanceOf(SsrfBlockedError);
      expect(h.connects).toHaveLength(1);
    }
    expect(hits["/secret"]).toBeUndefined();
  });

  it("returns the 3xx itself when redirects are not followed", async () => {
    const h = harness();
    const { response } = await guardedFetch(`${base}/to-loopback`, { method: "GET" }, { ...h, allow });
    expect(response.status).toBe(302);
    expect(h.connects).toHaveLength(1);
  });

  it("follows a redirect whose target passes again; drops credentials across origins", async () => {
    const h = harness();
    const same = await guardedFetch(`${base}/to-same`, { method: "POST", body: "x", headers: { authorization: "Bearer a" }, maxRedirects: 2 }, { ...h, allow });
    expect(await same.response.text()).toBe("hello");
    expect(hits["/ok"]!.at(-1)).toEqual({ host: `hook.test:${server.port}`, authorization: "Bearer a", token: null, method: "POST" });

    const other = await guardedFetch(`${base}/to-other`, { method: "POST", body: "x", headers: { authorization: "Bearer a", "x-token": "t" }, maxRedirects: 2, sensitiveHeaders: ["X-Token"] }, { ...h, allow });
    expect(other.url.host).toBe(`other.test:${server.port}`);
    expect(hits["/ok"]!.at(-1)).toEqual({ host: `other.test:${server.port}`, authorization: null, token: null, method: "GET" });
  });
});
