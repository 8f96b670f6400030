/**
 * The alert sink against a real webhook receiver on 127.0.0.1 and real notifier commands:
 * one crash-loop alert and one recovery for thirty crashes; a receiver that is down or
 * hangs never blocks `emit()` and never stops other channels.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createAlertSink, type AlertMessage, type OpsAlertSink } from "../../src/health/alerts.js";
import type { AlertEvent } from "../../src/core/status.js";
import { waitFor } from "../e2e/supervisor-helpers.js";

interface Receiver {
  url: string;
  got: AlertMessage[];
  close(): Promise<void>;
}

async function receiver(handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<Receiver> {
  const got: AlertMessage[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      if (handler) return handler(req, res);
      got.push(JSON.parse(body) as AlertMessage);
      res.writeHead(204).end();
    });
  });
  server.on("error", () => {});
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const ev = (kind: AlertEvent["kind"], subject: string, detail?: Record<string, unknown>): AlertEvent => ({
  kind,
  subject,
  host: "test",
  at: Date.now(),
  message: `${subject}: ${kind}`,
  ...(detail ? { detail } : {}),
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function track<T extends { close(): Promise<void> }>(x: T): T {
  cleanups.push(() => x.close());
  return x;
}

describe("alert sink", () => {
  it("sends one crash, one crash-loop and one recovery for a service that crashed 30 times", async () => {
    const rx = track(await receiver());
    const sink: OpsAlertSink = track(
      createAlertSink([{ webhook: rx.url, timeout: 2000 }], { recoveryHoldMs: 300 }),
    );
    for (let i = 1; i <= 30; i++) {
      sink.emit(ev("crash", "workers:1", { restarts: i }));
      if (i === 11) sink.emit(ev("crash-loop", "workers:1"));
      // Each restart comes up for a moment before crashing again: flapping, not recovery.
      sink.emit(ev("recovered", "workers:1", { kind: "crash" }));
    }
    await waitFor("the recovery alert", () => rx.got.some((m) => m.kind === "recovered"), 20_000);
    await sink.flush();
    const kinds = rx.got.map((m) => m.kind);
    expect(kinds.filter((k) => k === "crash-loop")).toHaveLength(1);
    expect(kinds.filter((k) => k === "recovered")).toHaveLength(1);
    expect(kinds).toEqual(["crash", "crash-loop", "recovered"]);
    const recovered = rx.got.find((m) => m.kind === "recovered")!;
    expect(recovered.suppressed).toBe(29);
    expect(recovered.detail?.["kinds"]).toEqual(["crash", "crash-loop"]);
    expect(sink.stats()).toMatchObject({ emitted: 61, sent: 3, suppressed: 29, delivered: 3, failed: 0 });
  });

  it("escalates health from degraded to unhealthy, and drops a recovery nobody was told about", async () => {
    const rx = track(await receiver());
    const sink = track(createAlertSink([{ webhook: rx.url, timeout: 2000 }], { recoveryHoldMs: 50 }));
    sink.emit(ev("recovered", "api"));
    sink.emit(ev("health", "health", { status: "degraded" }));
    sink.emit(ev("health", "health", { status: "degraded" }));
    sink.emit(ev("health", "health", { status: "unhealthy" }));
    for (let i = 0; i < 5; i++) sink.emit(ev("job-dead", "outline"));
    await waitFor("three messages", () => rx.got.length >= 3, 20_000);
    await sink.flush();
    expect(rx.got.map((m) => `${m.kind}:${m.subject}:${String(m.detail?.["status"] ?? "")}`)).toEqual([
      "health:health:degraded",
      "health:health:unhealthy",
      "job-dead:outline:",
    ]);
  });

  it("never blocks emit and keeps the other channel working while the receiver is down", async () => {
    const down = await receiver();
    const deadUrl = down.url;
    await down.close(); // nothing listens on this port any more
    const dir = mkdtempSync(join(tmpdir(), "vigil-alert-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, "alerts.jsonl");
    const script = "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>require('fs').appendFileSync(process.argv[1],s))";
    const sink = track(
      createAlertSink(
        [
          { webhook: deadUrl, timeout: 500 },
          { command: [process.execPath, "-e", script, out], timeout: 10_000 },
        ],
        { attempts: 3, retry: { baseMs: 20, maxMs: 50 } },
      ),
    );
    const returned = sink.emit(ev("stall", "workers:2"));
    expect(returned).toBeUndefined();
    await waitFor("the command channel to deliver", () => {
      try {
        return readFileSync(out, "utf8").includes('"kind":"stall"');
      } catch {
        return false;
      }
    }, 20_000);
    await waitFor("the webhook to give up", () => sink.stats().failed === 1, 20_000);
    // The notifier wrote its file before exiting; its delivery counts once it has exited 0.
    await waitFor("the command delivery to count", () => sink.stats().delivered === 1, 20_000);
    const line = JSON.parse(readFileSync(out, "utf8").trim()) as AlertMessage;
    expect(line).toMatchObject({ kind: "stall", subject: "workers:2", host: "test", suppressed: 0 });
    expect(sink.stats()).toMatchObject({ sent: 1, delivered: 1, failed: 1 });
  });

  it("bounds its queue and closes on time when the receiver hangs", async () => {
    const hung: ServerResponse[] = [];
    const rx = track(await receiver((_req, res) => hung.push(res))); // accepts, never answers
    const sink = createAlertSink([{ webhook: rx.url, timeout: 300 }], {
      maxQueue: 5,
      attempts: 2,
      retry: { baseMs: 10, maxMs: 20 },
    });
    for (let i = 0; i < 50; i++) sink.emit(ev("crash", `svc-${i}`));
    const s = sink.stats();
    expect(s.sent).toBe(50);
    expect(s.dropped).toBe(44); // one in flight, five queued
    await waitFor("a timed-out delivery", () => sink.stats().failed >= 1, 20_000);
    await sink.close(500);
    expect(hung.length).toBeGreaterThanOrEqual(1);
    sink.emit(ev("crash", "after-close"));
    expect(sink.stats().emitted).toBe(50);
  });

  it("kills a notifier command that hangs, and retries one that fails", async () => {
    const sink = track(
      createAlertSink([{ command: [process.execPath, "-e", "setInterval(() => {}, 1000)"], timeout: 300 }], {
        attempts: 2,
        retry: { baseMs: 10, maxMs: 20 },
      }),
    );
    sink.emit(ev("memory", "workers:1"));
    await waitFor("the command to be given up", () => sink.stats().failed === 1, 20_000);
    expect(sink.stats().delivered).toBe(0);
  });
});
