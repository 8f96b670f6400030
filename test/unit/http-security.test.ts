/**
 * The dashboard's security rules on a real port over a real SQLite store: the login form's
 * token becomes an HttpOnly SameSite=Strict cookie that authorises state changes; a foreign
 * Origin and a Host that is not this server are refused before anything changes;
 * `readOnly` refuses every state change; each action leaves an audit line; bulk retry
 * counts before it acts; the live stream reads the status once per tick for all clients.
 */
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { pino } from "pino";
import { storeSnapshot } from "../../src/health/snapshot.js";
import { startHttpServer, type HttpServerHandle, type HttpServerOptions } from "../../src/http/server.js";
import { killJobs, tempStore, type TempStore } from "./ops-fixtures.js";

const TOKEN = "a-test-token-of-sufficient-length-123";

function call(
  h: HttpServerHandle,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined>; json: () => any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: h.host, port: h.port, method, path, headers }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode!, text, headers: res.headers, json: () => JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("dashboard security", () => {
  let t: TempStore;
  let h: HttpServerHandle;
  let lines: string[];
  const start = async (extra: Partial<HttpServerOptions> = {}): Promise<void> => {
    t = await tempStore();
    lines = [];
    // A real pino logger; the audit lines are its info records.
    const logger = pino({ level: "info" }, {
      write: (line: string) => {
        const rec = JSON.parse(line) as { level: number; msg?: string };
        if (rec.level === 30) lines.push(rec.msg ?? "");
      },
    });
    h = await startHttpServer({ port: 0, token: TOKEN, store: t.store, logger, restartService: async () => {}, ...extra });
  };
  afterEach(async () => {
    await h?.close();
    await t?.cleanup();
  });

  const login = async (token: string) =>
    call(h, "POST", "/login", { "content-type": "application/x-www-form-urlencoded" }, new URLSearchParams({ token }).toString());

  it("turns the token into an HttpOnly SameSite=Strict cookie that authorises a retry", async () => {
    await start();
    const [id] = (await killJobs(t.store, "q", 1)) as [number];
    const wrong = await login("not-the-token-at-all-0000000");
    expect(wrong.status).toBe(401);
    expect(wrong.headers["set-cookie"]).toBeUndefined();

    const ok = await login(TOKEN);
    expect(ok.status).toBe(200);
    const cookie = String(ok.headers["set-cookie"]);
    expect(cookie).toMatch(/^vigil_session=[A-Za-z0-9_-]+;/);
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    expect(cookie).not.toContain(TOKEN);
    const pair = cookie.split(";")[0]!;

    expect((await call(h, "GET", "/api/session")).json()).toMatchObject({ authenticated: false, readOnly: false });
    expect((await call(h, "GET", "/api/session", { cookie: pair })).json()).toMatchObject({ authenticated: true });
    expect((await call(h, "POST", `/api/jobs/${id}/retry`, { cookie: "vigil_session=forged" })).status).toBe(401);
    expect((await t.store.get(id))!.state).toBe("dead");
    const res = await call(h, "POST", `/api/jobs/${id}/retry`, { cookie: pair, origin: `http://127.0.0.1:${h.port}` });
    expect(res.status).toBe(200);
    expect((await t.store.get(id))!.state).toBe("waiting");
    expect(lines.some((l) => l.includes(`audit: 127.0.0.1 retry ${id}: ok`))).toBe(true);
    expect(lines.some((l) => l.includes("audit: 127.0.0.1 login dashboard: refused 401"))).toBe(true);
  });

  it("pauses and resumes a queue with the session cookie, each with its own audit line", async () => {
    await start();
    await t.store.enqueue("q", {});
    const pair = String((await login(TOKEN)).headers["set-cookie"]).split(";")[0]!;
    const headers = { cookie: pair, origin: `http://127.0.0.1:${h.port}` };
    expect((await call(h, "POST", "/api/queues/q/pause", headers)).status).toBe(200);
    expect((await t.store.queueStates()).find((s) => s.name === "q")?.paused).toBe(true);
    expect((await call(h, "POST", "/api/queues/q/resume", headers)).status).toBe(200);
    expect((await t.store.queueStates()).find((s) => s.name === "q")?.paused).toBe(false);
    expect((await call(h, "POST", "/api/queues/q/pause", { cookie: "vigil_session=forged" })).status).toBe(401);
    expect(lines).toContain("audit: 127.0.0.1 queue-pause q: ok");
    expect(lines).toContain("audit: 127.0.0.1 queue-resume q: ok");
    expect(lines).toContain("audit: 127.0.0.1 queue-pause q: refused 401");
  });

  it("refuses a state change from a foreign Origin, even with the token", async () => {
    await start();
    const [id] = (await killJobs(t.store, "q", 1)) as [number];
    const pair = String((await login(TOKEN)).headers["set-cookie"]).split(";")[0]!;
    for (const headers of [
      { cookie: pair, origin: "http://evil.example" },
      { authorization: `Bearer ${TOKEN}`, origin: "http://evil.example" },
      { authorization: `Bearer ${TOKEN}`, origin: `http://127.0.0.1:${h.port + 1}` },
      { authorization: `Bearer ${TOKEN}`, origin: "null" },
    ]) {
      const res = await call(h, "POST", `/api/jobs/${id}/retry`, headers);
      expect(res.status).toBe(403);
      expect(res.json().error).toContain("Origin");
    }
    // A foreign page cannot log in either.
    const res = await call(h, "POST", "/login", { origin: "http://evil.example", "content-type": "application/x-www-form-urlencoded" }, `token=${TOKEN}`);
    expect(res.status).toBe(403);
    expect(res.headers["set-cookie"]).toBeUndefined();
    expect((await t.store.get(id))!.state).toBe("dead");
    expect(lines.filter((l) => l.includes("refused 403")).length).toBeGreaterThanOrEqual(5);
  });

  it("refuses a state change naming a Host this server is not (DNS rebinding), on a non-loopback-name bind too", async () => {
    // 127.0.0.2 is not one of the loopback names, so reads answer any Host; state changes must not.
    await start({ host: "127.0.0.2" });
    const [id] = (await killJobs(t.store, "q", 1)) as [number];
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await call(h, "GET", "/api/status", { host: `rebind.example:${h.port}` })).status).toBe(200);
    const res = await call(h, "POST", `/api/jobs/${id}/retry`, { ...auth, host: `rebind.example:${h.port}` });
    expect(res.status).toBe(403);
    expect(res.json().error).toContain("Host");
    expect((await t.store.get(id))!.state).toBe("dead");
    expect((await call(h, "POST", `/api/jobs/${id}/retry`, { ...auth, host: `127.0.0.2:${h.port}` })).status).toBe(200);
    expect((await t.store.get(id))!.state).toBe("waiting");
  });

  it("refuses every state change when read-only, and says so to the page", async () => {
    await start({ readOnly: true });
    const [id] = (await killJobs(t.store, "q", 1)) as [number];
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await call(h, "GET", "/api/session", auth)).json()).toMatchObject({ readOnly: true });
    for (const path of [`/api/jobs/${id}/retry`, `/api/jobs/${id}/cancel`, "/api/services/workers/restart", "/api/jobs/retry"]) {
      const res = await call(h, "POST", path, { ...auth, "content-type": "application/json" }, JSON.stringify({ confirm: true }));
      expect(res.status, path).toBe(403);
      expect(res.json().error).toContain("read-only");
    }
    expect((await t.store.get(id))!.state).toBe("dead");
  });

  it("bulk retry counts the matching jobs, and changes them only with confirm", async () => {
    await start();
    const dead = await killJobs(t.store, "q", 3);
    const [other] = (await killJobs(t.store, "other", 1)) as [number];
    const post = (body: unknown) =>
      call(h, "POST", "/api/jobs/retry", { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, JSON.stringify(body));
    expect((await call(h, "POST", "/api/jobs/retry", { "content-type": "application/json" }, "{}")).status).toBe(401);
    expect((await post({ queue: "q", state: "waiting" })).status).toBe(400);
    expect((await post({ queue: "q", state: "dead" })).json()).toEqual({ count: 3, dryRun: true });
    for (const id of dead) expect((await t.store.get(id))!.state).toBe("dead");
    expect((await post({ queue: "q", state: "dead", confirm: true })).json()).toMatchObject({ count: 3, dryRun: false });
    for (const id of dead) expect((await t.store.get(id))!.state).toBe("waiting");
    expect((await t.store.get(other))!.state).toBe("dead");
    expect(lines).toContain('audit: 127.0.0.1 bulk-retry /api/jobs/retry {"queue":"q","state":"dead","confirm":true}: ok');
    expect((await post({ queue: "q", state: "dead" })).json()).toEqual({ count: 0, dryRun: true });
  });

  it("reads each trigger's cursor from the store", async () => {
    t = await tempStore();
    const store = t.store;
    await store.commitTrigger({ trigger: "ideas", expectVersion: 0, cursor: { offset: 7 }, jobs: [] });
    h = await startHttpServer({
      port: 0,
      token: TOKEN,
      store,
      snapshot: async () => {
        const snap = await storeSnapshot(store);
        const base = { kind: "tail" as const, queue: "q", lastPollAt: null, lag: null, seen: 0, rejected: 0, error: null };
        return { ...snap, triggers: [{ ...base, name: "ideas" }, { ...base, name: "never-polled" }] };
      },
    });
    const res = await call(h, "GET", "/api/triggers/cursors");
    expect(res.json()).toEqual({ ideas: { cursor: { offset: 7 }, version: 1 }, "never-polled": null });
  });

  it("serves one live stream: every client gets the same events from one status read per tick", async () => {
    let reads = 0;
    t = await tempStore();
    const store = t.store;
    h = await startHttpServer({
      port: 0,
      token: TOKEN,
      store,
      snapshot: async () => {
        reads++;
        return storeSnapshot(store);
      },
    });
    const clients = [0, 1, 2].map(() => sseEvents(h));
    const counts = await Promise.all(clients.map((c) => c.waitFor(3)));
    for (const c of clients) c.close();
    // Three clients, each with at least three events: a read per client per tick would be ≥ 9.
    expect(reads).toBeLessThanOrEqual(Math.max(...counts) + 2);
    expect(reads).toBeLessThan(9);
  }, 60_000);
});

function sseEvents(h: HttpServerHandle): { waitFor(n: number): Promise<number>; close(): void } {
  let n = 0;
  const waiters: (() => void)[] = [];
  const req = request({ host: h.host, port: h.port, path: "/api/events" }, (res) => {
    expect(res.headers["content-type"]).toContain("text/event-stream");
    res.on("data", (d: Buffer) => {
      n += (d.toString().match(/^event: status$/gm) ?? []).length;
      for (const w of waiters.splice(0)) w();
    });
  });
  req.on("error", () => {});
  req.end();
  return {
    waitFor: async (want) => {
      while (n < want) await new Promise<void>((r) => waiters.push(r));
      return n;
    },
    close: () => req.destroy(),
  };
}
