/**
 * `vigil enqueue QUEUE -` as a person runs it, against a real SQLite store: a bad line
 * stops the run after every line before it was enqueued and says how to resume; `--skip`
 * resumes there; `--key-field` keys each job by a payload field so a re-run adds nothing;
 * a line the store refuses (too large) is named too.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open.js";

const VIGIL = resolve(import.meta.dirname, "../../bin/vigil");

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "vigil-enqueue-"));
  writeFileSync(join(dir, "vigil.yaml"), "queues:\n  q: { handler: ./h.mjs }\nmaxPayload: 1kb\n");
  writeFileSync(join(dir, "h.mjs"), "export default async () => null;\n");
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function enqueue(input: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [VIGIL, "enqueue", "q", "-", ...args], { cwd: dir, input, encoding: "utf8", timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function payloads(): Promise<unknown[]> {
  const store = await openStore(`sqlite:${join(dir, ".vigil", "vigil.db")}`);
  try {
    return (await store.list({ queue: "q", limit: 0 })).reverse().map((j) => j.payload);
  } finally {
    await store.close();
  }
}

const lines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => JSON.stringify({ id: from + i }));

describe("vigil enqueue QUEUE -", () => {
  it("stops at a bad line with every line before it enqueued, and resumes there with --skip", async () => {
    const good = lines(0, 2500);
    const input = [...good.slice(0, 1700), "{not json", ...good.slice(1700)].join("\n");
    const bad = enqueue(input);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("stdin line 1701 is not valid JSON");
    expect(bad.stderr).toContain("every line before line 1701 was enqueued (1700 new job(s))");
    expect(bad.stderr).toContain("--skip 1700");
    expect(await payloads()).toEqual(good.slice(0, 1700).map((l) => JSON.parse(l)));

    const resumed = enqueue([...good.slice(0, 1700), '{"id":"fixed"}', ...good.slice(1700)].join("\n"), "--skip", "1700");
    expect(resumed.stderr).toBe("");
    expect(resumed.stdout).toBe("enqueued 801 jobs on q\n");
    expect(await payloads()).toEqual([...good.slice(0, 1700).map((l) => JSON.parse(l)), { id: "fixed" }, ...good.slice(1700).map((l) => JSON.parse(l))]);
  });

  it("--key-field: a re-run adds nothing; a line without the field is named", async () => {
    const input = lines(0, 1500).join("\n");
    expect(enqueue(input, "--key-field", "id").stdout).toBe("enqueued 1500 jobs on q\n");
    expect(enqueue(input, "--key-field", "id").stdout).toBe("enqueued 0 jobs on q (1500 already existed)\n");
    const more = enqueue(`${lines(1500, 1502).join("\n")}\n{"other":1}\n`, "--key-field", "id");
    expect(more.status).toBe(1);
    expect(more.stderr).toContain('stdin line 3 has no "id" field');
    expect(more.stderr).toContain("--key-field adds nothing twice");
    expect((await payloads()).length).toBe(1502);
  });

  it("names a line the store refuses, with every line before it enqueued", async () => {
    const input = [...lines(0, 1200), JSON.stringify({ id: "big", pad: "x".repeat(2000) }), ...lines(1200, 1300)].join("\n");
    const r = enqueue(input);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/stdin line 1201 was refused \(.*payload.*\)/i);
    expect(r.stderr).toContain("--skip 1200");
    expect((await payloads()).length).toBe(1200);
  });
});
