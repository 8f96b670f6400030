/**
 * Shared by the dashboard's browser tests over a bare store: a temporary SQLite store, the
 * real HTTP server over it and one real Chromium, made before a file's tests and closed
 * after them; a status snapshot that names no running worker; the header's login.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import type { Clock } from "../../src/core/clock.js";
import type { StatusSnapshot } from "../../src/core/status.js";
import { startHttpServer, type HttpServerHandle, type HttpServerOptions } from "../../src/http/server.js";
import type { Store } from "../../src/store/store.js";
import { launchBrowser } from "./browser.js";
import { tempStore, type TempStore } from "../unit/ops-fixtures.js";

export interface DashboardSuite {
  t: TempStore;
  h: HttpServerHandle;
  browser: Browser;
}

/**
 * Registers the file's beforeAll / afterAll: the store (filled by `fill`), the server
 * (with `server`'s options) and the browser. The returned object's fields are set once
 * beforeAll has run.
 */
export function dashboardSuite(opts: {
  token: string;
  clock?: Clock;
  fill?: (t: TempStore) => Promise<void>;
  server?: (t: TempStore) => Partial<HttpServerOptions>;
  timeoutMs?: number;
}): DashboardSuite {
  const s = {} as DashboardSuite;
  beforeAll(async () => {
    s.t = await tempStore(opts.clock);
    await opts.fill?.(s.t);
    s.h = await startHttpServer({ port: 0, token: opts.token, store: s.t.store, ...opts.server?.(s.t) });
    s.browser = await launchBrowser();
  }, opts.timeoutMs ?? 120_000);
  afterAll(async () => {
    await s.browser?.close();
    await s.h?.close();
    await s.t?.cleanup();
  });
  return s;
}

/** The live status of a supervisor running no worker, with the store's queue counts. */
export function noWorkerSnapshot(store: Store): () => Promise<StatusSnapshot> {
  return async () => ({ at: Date.now(), supervisor: null, services: [], queues: await store.stats(), triggers: [], incidents: [], source: "supervisor" });
}

/** Logs the page in through the header's form with `token`. */
export async function logIn(page: Page, token: string): Promise<void> {
  await page.locator("#login").click();
  await page.fill("#login-token", token);
  await page.click("#login-submit");
  await page.locator("#logout").waitFor({ timeout: 10_000 });
}
