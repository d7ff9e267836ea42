// A real HTTP server on 127.0.0.1 for jobs and webhooks to call: records every request and answers by path.
//   /ok               200 "pong"
//   /status/:code     that status
//   /fail/:n/:key     500 for the first n requests with that key, then 200
//   /hang             never answers
//   /big              200 with 10 KB
//   /redirect?to=URL  302 to URL
export interface ReceivedRequest {
  path: string;
  method: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

export function startHttpTarget() {
  const received: ReceivedRequest[] = [];
  const failures = new Map<string, number>();
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      received.push({ path: url.pathname, method: req.method, headers: Object.fromEntries(req.headers), body: await req.text(), at: Date.now() });
      const [, first, a, b] = url.pathname.split("/");
      if (first === "ok") return new Response("pong");
      if (first === "status") return new Response(`status ${a}`, { status: Number(a) });
      if (first === "fail") {
        const seen = failures.get(b!) ?? 0;
        failures.set(b!, seen + 1);
        return seen < Number(a) ? new Response("not yet", { status: 500 }) : new Response("finally");
      }
      if (first === "hang") return new Promise<Response>(() => {});
      if (first === "big") return new Response("x".repeat(10_240));
      if (first === "redirect") return new Response(null, { status: 302, headers: { location: url.searchParams.get("to")! } });
      return new Response("no such path", { status: 404 });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port!,
    received,
    hits: (path: string) => received.filter((r) => r.path === path),
    stop: () => server.stop(true),
  };
}
