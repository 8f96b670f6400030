import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseConfigText } from "../../src/config/load.js";
import { resolveStoreUrl } from "../../src/core/store-url.js";
import { VigilError } from "../../src/core/errors.js";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "vigil-config-"));
  mkdirSync(join(dir, "stages"));
  writeFileSync(join(dir, "stages", "outline.ts"), "export default async () => ({});\n");
  writeFileSync(join(dir, "notify.sh"), "#!/bin/sh\n", { mode: 0o755 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The problems a config text produces, as thrown. */
function problemsOf(text: string): ConfigError {
  try {
    parseConfigText(text, join(dir, "vigil.yaml"));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as VigilError).code).toBe("CONFIG");
    return err as ConfigError;
  }
  throw new Error("expected the config to be refused");
}

function lines(...l: string[]): string {
  return l.join("\n") + "\n";
}

describe("config loading", () => {
  it("reads flow control: rate, limit and group", () => {
    const { config } = parseConfigText(
      lines(
        "queues:",
        "  outline:",
        "    handler: ./stages/outline.ts",
        "    rate: 60/1m",
        "    limit: 8",
        "    group: { by: payload.customer, limit: 2, rate: 10/1m }",
      ),
      join(dir, "vigil.yaml"),
    );
    expect(config.queues.outline).toMatchObject({
      rate: { count: 60, intervalMs: 60_000 },
      limit: 8,
      group: { by: "customer", limit: 2, rate: { count: 10, intervalMs: 60_000 } },
    });
  });

  it("refuses a bad rate, a bad group field and a group without limits, naming each key", () => {
    const err = problemsOf(
      lines(
        "queues:",
        "  a: { handler: ./stages/outline.ts, rate: 60 per minute }",
        "  b: { handler: ./stages/outline.ts, rate: 0/1s }",
        "  c: { handler: ./stages/outline.ts, group: { by: customer, limit: 2 } }",
        "  d: { handler: ./stages/outline.ts, group: { by: payload.customer } }",
        "  e: { handler: ./stages/outline.ts, limit: 0 }",
      ),
    );
    expect(err.message).toContain('queues.a.rate: "60 per minute" is not a rate; write it like 60/1m');
    expect(err.message).toContain('queues.b.rate: "0/1s" is not a rate');
    expect(err.message).toContain('queues.c.group.by: "customer" is not valid here; write it like payload.customer');
    expect(err.message).toContain("queues.d.group: a group needs `limit`, `rate` or both");
    expect(err.message).toContain("vigil.yaml:6: queues.e.limit: 0 is out of range; use at least 1");
  });

  it("applies defaults and parses durations", () => {
    const { config } = parseConfigText(
      lines("queues:", "  outline:", "    handler: ./stages/outline.ts", "    timeout: 2m", "    backoff: { base: 500ms }"),
      join(dir, "vigil.yaml"),
    );
    const q = config.queues.outline!;
    expect(q.timeout).toBe(120_000);
    expect(q.backoff).toEqual({ base: 500, max: 300_000 });
    expect(q.concurrency).toBe(1);
    expect(q.attempts).toBe(5);
    expect(q.lease).toBe(10_000);
    expect(config.supervision.stallAfter).toBe(5000);
    expect(config.supervision.maxRestarts).toEqual({ count: 10, windowMs: 300_000 });
    expect(config.http).toEqual({ host: "127.0.0.1", port: 7420, enabled: true, readOnly: false });
  });

  it("resolves relative paths against the config file's folder", () => {
    const loaded = parseConfigText(
      lines(
        "store: sqlite:.vigil/vigil.db",
        "queues:",
        "  outline: { handler: stages/outline.ts }",
        "  qa: { command: [./notify.sh, --x], cwd: . }",
        "triggers:",
        "  ideas: { tail: data/ideas.log, queue: outline, every: 3s }",
        "  drafts: { watch: 'data/impl/*.md', queue: qa }",
        "  issues: { file: data/issues.md, queue: qa }",
        "services:",
        "  api: { command: [python3, api.py], statusFile: run/status.json }",
        "alerts:",
        "  - { command: [./notify.sh] }",
      ),
      join(dir, "vigil.yaml"),
    );
    const { config } = loaded;
    expect(loaded.dir).toBe(dir);
    expect(config.store).toBe(`sqlite:${join(dir, ".vigil/vigil.db")}`);
    expect(config.queues.outline!.handler).toBe(join(dir, "stages/outline.ts"));
    expect(config.queues.qa!.command).toEqual([join(dir, "notify.sh"), "--x"]);
    expect(config.queues.qa!.cwd).toBe(dir);
    const t = config.triggers;
    expect("tail" in t.ideas! && t.ideas.tail).toBe(join(dir, "data/ideas.log"));
    expect(t.ideas!.every).toBe(3000);
    expect("watch" in t.drafts! && t.drafts.watch).toBe(join(dir, "data/impl/*.md"));
    expect("file" in t.issues! && t.issues.file).toBe(join(dir, "data/issues.md"));
    const api = config.services.api!;
    expect("command" in api && api.command).toEqual(["python3", "api.py"]);
    expect("command" in api && api.statusFile).toBe(join(dir, "run/status.json"));
    expect("command" in api && api.cwd).toBe(dir);
    expect(config.alerts[0]).toMatchObject({ command: [join(dir, "notify.sh")] });
  });

  it("leaves PostgreSQL URLs and absolute paths alone", () => {
    expect(resolveStoreUrl("postgres://root@127.0.0.1/test", dir)).toBe("postgres://root@127.0.0.1/test");
    expect(resolveStoreUrl("sqlite:/var/x.db", dir)).toBe("sqlite:/var/x.db");
    expect(resolveStoreUrl("data/x.db", dir)).toBe(join(dir, "data/x.db"));
  });

  it("names the file, line, key and a fix for a bad duration", () => {
    const err = problemsOf(lines("queues:", "  outline:", "    handler: ./stages/outline.ts", '    timeout: "2x"'));
    expect(err.message).toBe(`${join(dir, "vigil.yaml")}:4: queues.outline.timeout: "2x" is not a duration; write it like 500ms, 2s, 5m, 24h or 7d`);
    expect(err.problems).toEqual([{ line: 4, key: "queues.outline.timeout", message: expect.stringContaining("500ms") }]);
  });

  it("refuses a trigger priority the store cannot hold, naming its line", () => {
    const err = problemsOf(
      lines("queues:", "  q: { handler: ./stages/outline.ts }", "triggers:", "  t: { tail: data/ideas.log, queue: q, priority: 2147483648 }"),
    );
    expect(err.problems).toEqual([{ line: 4, key: "triggers.t.priority", message: expect.stringContaining("2147483647") }]);
  });

  it("names an unknown key and its line, suggesting the near one", () => {
    const err = problemsOf(lines("queues:", "  outline:", "    handler: ./stages/outline.ts", "    concurency: 4", "bogus: 1"));
    expect(err.problems.map((p) => [p.line, p.key])).toEqual([
      [4, "queues.outline.concurency"],
      [5, "bogus"],
    ]);
    expect(err.problems[0]!.message).toContain("did you mean `concurrency`");
    expect(err.problems[1]!.message).toContain("allowed here: store,");
  });

  it("lists every problem at once, in line order", () => {
    const err = problemsOf(
      lines(
        "queues:",
        "  outline: { handler: ./missing.ts, next: implement }",
        "triggers:",
        "  ideas: { tail: ideas.log, queue: outlin }",
        "services:",
        "  workers: { queues: [outline, nope] }",
        "supervision: { stallAfter: soon }",
      ),
    );
    expect(err.problems.map((p) => [p.line, p.key])).toEqual([
      [2, "queues.outline.handler"],
      [2, "queues.outline.next"],
      [4, "triggers.ideas.queue"],
      [6, "services.workers.queues.1"],
      [7, "supervision.stallAfter"],
    ]);
    expect(err.message.startsWith(`5 problems in ${join(dir, "vigil.yaml")}:\n  ${join(dir, "vigil.yaml")}:2: `)).toBe(true);
    expect(err.problems[0]!.message).toContain(join(dir, "missing.ts"));
    expect(err.problems[1]!.message).toContain('queue "implement" is not defined');
    expect(err.problems[2]!.message).toContain("defined queues: outline");
  });

  it("makes union errors say which kinds exist", () => {
    const err = problemsOf(
      lines(
        "queues: { qa: { command: [python3, qa.py] } }",
        "triggers:",
        "  a: { queue: qa }",
        "  b: { tail: x, watch: y, queue: qa }",
        "  c: { file: x, queue: qa, format: jsonl }",
        "services:",
        "  s: { instances: 2 }",
        "alerts:",
        "  - { email: me@example.com }",
      ),
    );
    const byKey = Object.fromEntries(err.problems.map((p) => [p.key, p]));
    expect(byKey["triggers.a"]).toMatchObject({ line: 3, message: expect.stringContaining("one of `tail`, `watch`, `file` or `schedule`") });
    expect(byKey["triggers.b"]).toMatchObject({ line: 4, message: expect.stringContaining("only one of") });
    expect(byKey["triggers.c.format"]).toMatchObject({ line: 5, message: expect.stringContaining("unknown key") });
    expect(byKey["services.s"]).toMatchObject({ line: 7, message: expect.stringContaining("`queues` or `command`") });
    expect(byKey["alerts.0"]).toMatchObject({ line: 9, message: expect.stringContaining("`webhook` or `command`") });
  });

  it("checks a command's program when it is a relative path", () => {
    const err = problemsOf(lines("queues:", "  qa: { command: [./qa.py] }", "  ok: { command: [python3, x.py] }"));
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatchObject({ line: 2, key: "queues.qa.command" });
  });

  it("reports YAML syntax errors with their line", () => {
    const err = problemsOf(lines("queues:", "  a: 1", "  a: 2"));
    expect(err.problems[0]!.line).toBe(3);
    expect(err.message).toContain("not valid YAML");
  });

  it("says how to create a missing config file", async () => {
    const err = await loadConfig(join(dir, "nope.yaml")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VigilError);
    expect((err as VigilError).code).toBe("CONFIG");
    expect((err as Error).message).toContain(join(dir, "nope.yaml"));
    expect((err as Error).message).toMatch(/create one/);
  });

  it("loads a file from disk", async () => {
    writeFileSync(join(dir, "disk.yaml"), lines("queues:", "  outline: { handler: ./stages/outline.ts }"));
    const loaded = await loadConfig(join(dir, "disk.yaml"));
    expect(loaded.path).toBe(join(dir, "disk.yaml"));
    expect(Object.keys(loaded.config.queues)).toEqual(["outline"]);
  });
});

describe("schedule triggers in the config", () => {
  const head = ["queues:", "  report: { command: [cat] }", "triggers:"];

  it("accepts a cron expression with a zone and `every DURATION`, with their defaults", () => {
    const { config } = parseConfigText(
      lines(...head, '  nightly: { schedule: "0 3 * * *", tz: Europe/Berlin, queue: report, payload: { kind: nightly } }', "  ping: { schedule: every 10s, queue: report, misfire: once }"),
      join(dir, "vigil.yaml"),
    );
    expect(config.triggers.nightly).toEqual({ schedule: "0 3 * * *", tz: "Europe/Berlin", queue: "report", misfire: "skip", payload: { kind: "nightly" } });
    expect(config.triggers.ping).toEqual({ schedule: "every 10s", queue: "report", misfire: "once" });
  });

  it("names the key and line of a bad expression, an unknown zone, a bad misfire and a zone given to `every`", () => {
    const err = problemsOf(
      lines(
        ...head,
        '  a: { schedule: "0 25 * * *", queue: report }',
        '  b: { schedule: "0 3 * * *", tz: Europe/Berln, queue: report }',
        "  c: { schedule: every 10s, tz: UTC, queue: report }",
        "  d: { schedule: every 10s, queue: report, misfire: later }",
      ),
    );
    expect(err.problems.map((p) => [p.line, p.key])).toEqual([
      [4, "triggers.a.schedule"],
      [5, "triggers.b.tz"],
      [6, "triggers.c.tz"],
      [7, "triggers.d.misfire"],
    ]);
    expect(err.problems[0]!.message).toMatch(/"0 25 \* \* \*" is not a cron expression \(Invalid value for hour: 25\)/);
    expect(err.problems[1]!.message).toContain('"Europe/Berln" is not a time zone; use an IANA name');
    expect(err.problems[2]!.message).toContain("remove `tz`");
    expect(err.problems[3]!.message).toContain("skip, once");
  });

  it("refuses a trigger that is both a schedule and a tail, and an `every` key on a schedule", () => {
    const err = problemsOf(lines(...head, "  x: { schedule: every 1m, tail: in.log, queue: report }", "  y: { schedule: every 1m, every: 5s, queue: report }"));
    expect(err.problems).toEqual([
      { line: 4, key: "triggers.x", message: expect.stringContaining("takes only one of `tail`, `watch`, `file` or `schedule`, found tail and schedule") },
      { line: 5, key: "triggers.y.every", message: expect.stringContaining("unknown key") },
    ]);
  });
});
