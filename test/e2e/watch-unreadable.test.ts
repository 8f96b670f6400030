/**
 * A `watch` trigger whose subfolder cannot be read for a moment: its files did not
 * change, so no job may be made for them again, and none may be reported deleted; a
 * folder really deleted still is. The subfolder is made unreadable for real (mode 000);
 * root ignores mode bits, so as root `vigil triggers` runs without the two capabilities
 * that let it (setpriv, from util-linux).
 */
import { existsSync, chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { onCleanup, project, waitFor } from "./triggers-helpers.js";

/** How `vigil triggers` is started so that mode 000 really makes its readdir fail. */
function unprivileged(): string[] {
  if (process.getuid?.() !== 0) return [];
  const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
  if (!setpriv) throw new Error("setpriv (util-linux) is needed to run vigil triggers as root without permission overrides");
  const caps = "-dac_override,-dac_read_search";
  return [setpriv, `--inh-caps=${caps}`, `--bounding-set=${caps}`, "--"];
}

describe("watch with a subfolder unreadable for a moment", () => {
  it("neither enqueues its unchanged files again nor reports them deleted; a folder really deleted is", async () => {
    const p = project("{ watch: 'in/**/*.txt', queue: q, every: 100ms, settle: 100ms, onDelete: enqueue }", {
      runVia: unprivileged(),
      env: { VIGIL_LOG_LEVEL: "info" }, // "trigger recovered" is an info line
    });
    const folder = join(p.dir, "in");
    const sub = join(folder, "a");
    mkdirSync(sub, { recursive: true });
    mkdirSync(join(folder, "b"));
    const files = ["top.txt", ...Array.from({ length: 20 }, (_, i) => `a/${i}.txt`), "b/gone.txt"];
    for (const f of files) writeFileSync(join(folder, f), `content of ${f}\n`);
    onCleanup(() => chmodSync(sub, 0o755)); // so the folder can be removed whatever happens
    p.start();
    await waitFor("a job per file", async () => (await p.jobs()).length >= files.length);

    chmodSync(sub, 0o000);
    // The poll that could not read it has committed whatever it made of that.
    await waitFor("the unreadable folder reported", async () => p.output().includes(`cannot read folder ${sub}`));
    chmodSync(sub, 0o755);
    await waitFor("the trigger recovered", async () => p.output().includes("trigger recovered"));

    rmSync(join(folder, "b"), { recursive: true });
    await waitFor("the deletion of b/gone.txt", async () =>
      (await p.jobs()).some((j) => {
        const { path, deleted } = j.payload as { path: string; deleted?: boolean };
        return deleted === true && path === join(folder, "b", "gone.txt");
      }),
    );
    await p.kill("SIGTERM");

    const jobs = (await p.jobs()).map((j) => j.payload as { path: string; deleted?: boolean });
    const made = jobs.filter((j) => !j.deleted).map((j) => j.path.slice(folder.length + 1));
    const deleted = jobs.filter((j) => j.deleted).map((j) => j.path.slice(folder.length + 1));
    expect({ made: made.length, deleted }).toEqual({ made: files.length, deleted: ["b/gone.txt"] });
    expect(made.sort()).toEqual([...files].sort());
  }, 120_000);
});
