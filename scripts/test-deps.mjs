#!/usr/bin/env node
// Brings the system tools the test suite drives for real and npm cannot install: Debian's
// `logrotate` (the tail trigger's rotation tests). Runs before `npm test`; installs with
// apt-get when missing and running as root, and otherwise says what to install.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

const TOOLS = [{ bin: "logrotate", paths: ["/usr/sbin/logrotate", "/usr/bin/logrotate"], pkg: "logrotate" }];

const missing = TOOLS.filter((t) => !t.paths.some((p) => existsSync(p)));
if (missing.length === 0) process.exit(0);

const pkgs = missing.map((t) => t.pkg);
if (process.getuid?.() !== 0) {
  process.stderr.write(`The tests need ${pkgs.join(", ")} (Debian packages). Install them: sudo apt-get install -y ${pkgs.join(" ")}\n`);
  process.exit(1);
}
process.stderr.write(`Installing ${pkgs.join(", ")} for the tests (apt-get)\n`);
const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
execFileSync("apt-get", ["update", "-q"], { stdio: ["ignore", "ignore", "inherit"], env });
execFileSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...pkgs], { stdio: ["ignore", "ignore", "inherit"], env });
