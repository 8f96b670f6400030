/**
 * A real Chromium for the browser tests, brought by `npm install` (the @sparticuz/chromium
 * package ships a compressed build and unpacks it into the temp folder on first use), so
 * `npm install && npm test` needs no browser installed on the machine.
 */
import packaged from "@sparticuz/chromium";
import { chromium, type Browser } from "playwright-core";

/** Flags for a headless run on a machine with no network but loopback. */
const ARGS = [
  "--headless=shell",
  "--no-sandbox",
  "--no-zygote",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export async function launchBrowser(): Promise<Browser> {
  const executablePath = await packaged.executablePath();
  return chromium.launch({ executablePath, args: ARGS });
}
