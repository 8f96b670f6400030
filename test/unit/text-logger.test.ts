/** The supervisor's readable log lines (core/log.ts textLogger): message, fields, and an error's message, code and stack. */
import { describe, expect, it } from "vitest";
import { textLogger } from "../../src/core/log.js";

describe("textLogger", () => {
  it("writes one readable line per record, with the error's message and code, and its stack at error level", () => {
    const lines: string[] = [];
    const log = textLogger((l) => void lines.push(l), "info");
    log.info("supervising 2 process(es)");
    const err = Object.assign(new Error("disk full"), { code: "ENOSPC" });
    log.warn({ err }, "could not write status.json");
    log.info({ jobs: 3, service: "workers:1" }, "freed");
    log.error({ err }, "control socket");
    log.debug("not shown at info");

    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z vigil: supervising 2 process\(es\)\n$/);
    expect(lines[1]).toMatch(/vigil: could not write status\.json: disk full \[ENOSPC\]\n$/);
    expect(lines[1]).not.toContain("    at ");
    expect(lines[2]).toMatch(/vigil: freed \(jobs=3, service=workers:1\)\n$/);
    expect(lines[3]).toMatch(/vigil: control socket: disk full \[ENOSPC\]\n {4}Error: disk full\n\s+at /);
  });
});
