/** Module handlers load from .mjs, .js and .ts files with no build step; bad ones are named. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VigilError } from "../../src/core/errors.js";
import { loadModuleHandler } from "../../src/handlers/module.js";
import type { HandlerContext, HandlerJob } from "../../src/handlers/types.js";

let dir: string;
const job = { id: 1, queue: "q", payload: { n: 2 }, key: null, attempt: 1, createdAt: 0, source: null, parentId: null, rootId: null } satisfies HandlerJob;
const ctx: HandlerContext = { signal: new AbortController().signal, heartbeat: () => {}, log: pino({ level: "silent" }) };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "vigil-mod-"));
  writeFileSync(join(dir, "double.mjs"), "export default async (job) => ({ twice: job.payload.n * 2 });\n");
  writeFileSync(
    join(dir, "typed.ts"),
    "interface In { n: number }\nexport default async function (job: { payload: In }): Promise<{ cube: number }> {\n  const n: number = job.payload.n;\n  return { cube: n ** 3 };\n}\n",
  );
  writeFileSync(join(dir, "named.mjs"), "export const run = () => 1;\n");
  writeFileSync(join(dir, "broken.ts"), "export default (: =>\n");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function loadError(file: string): Promise<VigilError> {
  return loadModuleHandler(file).then(
    () => {
      throw new Error("loaded");
    },
    (e: VigilError) => e,
  );
}

describe("loadModuleHandler", () => {
  it("loads an ES module's default export", async () => {
    const h = await loadModuleHandler(join(dir, "double.mjs"));
    expect(await h(job, ctx)).toEqual({ twice: 4 });
  });

  it("loads TypeScript without a build step", async () => {
    const h = await loadModuleHandler(join(dir, "typed.ts"));
    expect(await h(job, ctx)).toEqual({ cube: 8 });
  });

  it("names the file when there is no default export function", async () => {
    const e = await loadError(join(dir, "named.mjs"));
    expect(e.code).toBe("HANDLER_LOAD");
    expect(e.message).toContain("named.mjs");
    expect(e.message).toContain("exports run");
  });

  it("names the file when it is missing or does not compile", async () => {
    const missing = await loadError(join(dir, "nope.ts"));
    expect(missing.code).toBe("HANDLER_LOAD");
    expect(missing.message).toContain("nope.ts does not exist");
    const broken = await loadError(join(dir, "broken.ts"));
    expect(broken.code).toBe("HANDLER_LOAD");
    expect(broken.message).toContain("broken.ts failed to load");
  });
});
