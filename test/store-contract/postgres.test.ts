import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { VigilError } from "../../src/core/errors.js";
import { SERVER_MS } from "../../src/store/postgres/jobs-sql.js";
import { MIGRATIONS } from "../../src/store/postgres/migrations.js";
import { openPostgresStore } from "../../src/store/postgres/store.js";
import type { Store, StoreOptions } from "../../src/store/store.js";
import { defineStoreContract } from "./contract.js";
import { dropSchema, freshSchemaName, pgExec, PG_URL, requirePg } from "./pg-helpers.js";

if (await requirePg("the PostgreSQL store contract")) {
  defineStoreContract("postgres", async (opts) => {
    // Every store the suite opens is a fresh schema on the local server, dropped afterwards.
    const schema = freshSchemaName("vigil_contract");
    const store = await openPostgresStore(PG_URL, { ...opts, schema });
    // Leases and locks run out by the server's clock, whatever clock the store is given.
    const serverNow = async () => Number((await pgExec(`SELECT ${SERVER_MS} AS t`)).rows[0].t);
    return { store, cleanup: () => dropSchema(schema), serverNow };
  });
} else {
  describe.skip("store contract: postgres (PostgreSQL not reachable)", () => {
    it("needs PostgreSQL", () => {});
  });
}

/** What only the PostgreSQL store has to show: schemas, migrations racing, outages, wake-ups. */
describe.runIf(await requirePg("the PostgreSQL store specifics"))("postgres store specifics", () => {
  const schemas: string[] = [];
  const stores: Store[] = [];
  const open = async (opts: StoreOptions & { schema?: string } = {}, url = PG_URL): Promise<Store> => {
    const schema = opts.schema ?? freshSchemaName("vigil_pg");
    if (!schemas.includes(schema)) schemas.push(schema);
    const store = await openPostgresStore(url, { ...opts, schema });
    stores.push(store);
    return store;
  };
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const s of schemas.splice(0)) await dropSchema(s);
  });

  it("two processes and four pools migrating one fresh schema at once all succeed", async () => {
    const schema = freshSchemaName("vigil_mig");
    schemas.push(schema);
    const script =
      `import { openPostgresStore } from ${JSON.stringify(resolve("src/store/postgres/store.js"))};` +
      `const s = await openPostgresStore(${JSON.stringify(PG_URL)}, { schema: ${JSON.stringify(schema)} });` +
      `const { job } = await s.enqueue("q", { pid: process.pid }); console.log(JSON.stringify({ id: job.id }));` +
      `await s.close();`;
    const runChild = () =>
      new Promise<{ code: number | null; out: string; err: string }>((done) => {
        const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        let err = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (err += d));
        child.on("error", (e) => done({ code: -1, out, err: String(e) }));
        child.on("close", (code) => done({ code, out, err }));
      });
    const [a, b, ...inProcess] = await Promise.all([
      runChild(),
      runChild(),
      ...[1, 2, 3, 4].map(() => openPostgresStore(PG_URL, { schema })),
    ]);
    stores.push(...(inProcess as Store[]));
    expect([a!.code, a!.err.trim(), b!.code, b!.err.trim()]).toEqual([0, "", 0, ""]);
    const versions = await pgExec(`SELECT version FROM "${schema}".vigil_migrations ORDER BY version`);
    expect(versions.rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
    expect(await (inProcess[0] as Store).migrate()).toBe(0);
    const ids = [a!.out, b!.out].map((o) => (JSON.parse(o) as { id: number }).id);
    expect((await (inProcess[1] as Store).list({ limit: 0 })).map((j) => j.id).sort()).toEqual(ids.sort());
  });

  it("takes the schema from ?schema= in the URL, over the schema option", async () => {
    const fromUrl = freshSchemaName("vigil_url");
    schemas.push(fromUrl);
    const s = await openPostgresStore(`${PG_URL}?schema=${fromUrl}`);
    stores.push(s);
    expect(s.location).toBe(`postgres://postgres@127.0.0.1:5432/test#${fromUrl}`);
    await s.enqueue("q", 1);
    const n = await pgExec(`SELECT count(*)::int AS n FROM "${fromUrl}".jobs`);
    expect(n.rows[0].n).toBe(1);
    const viaOption = freshSchemaName("vigil_opt");
    schemas.push(viaOption);
    const same = await openPostgresStore(`${PG_URL}?schema=${fromUrl}`, { schema: viaOption });
    stores.push(same);
    expect(same.location).toContain(fromUrl);
    expect((await same.list()).length).toBe(1);
    const exists = await pgExec("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1", [viaOption]);
    expect(exists.rows[0].n).toBe(0);
    await expect(openPostgresStore(PG_URL, { schema: "bad-name; DROP" })).rejects.toMatchObject({ code: "BAD_INPUT" });
  });

  it("refuses a schema that holds tables Vigil did not make (STORE_FOREIGN)", async () => {
    const schema = freshSchemaName("vigil_foreign");
    schemas.push(schema);
    await pgExec(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".jobs (x int)`);
    const err = await openPostgresStore(PG_URL, { schema }).catch((e: VigilError) => e);
    expect((err as VigilError).code).toBe("STORE_FOREIGN");
    expect((err as VigilError).message).toMatch(/\?schema=/);
  });

  it("read-only: refuses a schema with no tables, and writes on an existing one", async () => {
    const schema = freshSchemaName("vigil_ro");
    schemas.push(schema);
    const missing = await openPostgresStore(PG_URL, { schema, readOnly: true }).catch((e: VigilError) => e);
    expect((missing as VigilError).code).toBe("STORE_UNREACHABLE");
    expect((missing as VigilError).message).toMatch(/vigil migrate/);
    const rw = await open({ schema });
    const { job } = await rw.enqueue("q", { a: 1 });
    const ro = await open({ schema, readOnly: true });
    expect((await ro.get(job.id))?.payload).toEqual({ a: 1 });
    await expect(ro.enqueue("q", 2)).rejects.toMatchObject({ code: "BAD_INPUT" });
    expect((await ro.stats()).q?.waiting).toBe(1);
  });

  it("an unreachable server is STORE_UNREACHABLE, not a crash", async () => {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    const err = await openPostgresStore("postgres://postgres@127.0.0.1:1/test").catch((e: VigilError) => e);
    expect(err).toBeInstanceOf(VigilError);
    expect((err as VigilError).code).toBe("STORE_UNREACHABLE");
    expect((err as VigilError).message).not.toMatch(/secret/);
    const withPassword = await openPostgresStore("postgres://u:secret@127.0.0.1:1/test").catch((e: VigilError) => e);
    expect((withPassword as VigilError).code).toBe("STORE_UNREACHABLE");
    expect((withPassword as VigilError).message).not.toMatch(/secret/);
  });

  it("keeps NUL characters out of text columns instead of failing the write", async () => {
    const store = await open({ clock: new ManualClock() });
    await store.enqueue("q", { s: "a\u0000b" });
    const [lease] = await store.claim({ workerId: "w\u0000", queues: { q: 1 }, leaseMs: 10_000 });
    expect(lease!.job.payload).toEqual({ s: "a\u0000b" });
    const failed = await store.fail(lease!, { message: "bad\u0000byte", stack: "at\u0000x" });
    expect(failed.error).toBe("bad\uFFFDbyte");
    expect(failed.history[0]).toMatchObject({ message: "bad\uFFFDbyte", stack: "at\uFFFDx" });
    expect(await store.commitTrigger({
      trigger: "t", expectVersion: 0, cursor: { o: 1 }, jobs: [],
      rejected: [{ trigger: "t", reason: "binary", sample: "\u0000\u0001" }],
    })).toBe(true);
    expect((await store.listRejected("t"))[0]?.sample).toBe("\uFFFD\u0001");
  });

  it("completeMany: keyed next jobs whose key is held, or repeated in the batch, return the live holder", async () => {
    const store = await open({ clock: new ManualClock() });
    const { job: holder } = await store.enqueue("next", "already", { key: "k1" });
    await store.enqueueMany([1, 2, 3].map((n) => ({ queue: "q", payload: n })));
    const leases = await store.claim({ workerId: "w", queues: { q: 3 }, leaseMs: 10_000 });
    const out = await store.completeMany([
      { lease: leases[0]!, result: 1, next: [{ queue: "next", payload: "a", key: "k1" }, { queue: "next", payload: "b" }] },
      { lease: leases[1]!, result: 2, next: [{ queue: "next", payload: "c", key: "k2" }] },
      { lease: leases[2]!, result: 3, next: [{ queue: "next", payload: "d", key: "k2" }, { queue: "next", payload: "e", key: "k3" }] },
      { lease: leases[2]!, result: 3 },
    ]);
    const next = out.map((o) => (o.ok ? o.next.map((j) => [j.payload, j.key, j.parentId]) : (o.error as VigilError).code));
    expect(next).toEqual([
      [["already", "k1", null], ["b", null, leases[0]!.jobId]],
      [["c", "k2", leases[1]!.jobId]],
      [["c", "k2", leases[1]!.jobId], ["e", "k3", leases[2]!.jobId]],
      "LEASE_LOST",
    ]);
    expect(out[0]!.ok && out[0]!.next[0]!.id).toBe(holder.id);
    expect((await store.list({ queue: "next", limit: 0 })).length).toBe(4);
  });

  it("completeAndClaim at the claim batch hint: one full batch completed, the next leased, a stale token refused", async () => {
    const store = await open({ clock: new ManualClock() });
    const hint = store.caps.claimBatchHint!;
    expect(hint).toBeGreaterThanOrEqual(100);
    await store.enqueueMany(Array.from({ length: 2 * hint }, (_, i) => ({ queue: "q", payload: i })));
    const first = await store.claim({ workerId: "w", queues: { q: hint }, leaseMs: 10_000 });
    expect(first.map((l) => l.job.payload)).toEqual(Array.from({ length: hint }, (_, i) => i));
    const items = first.map((lease, i) => ({ lease: i === 7 ? { ...lease, token: "stale" } : lease, result: i }));
    const { outcomes, leases } = await store.completeAndClaim!(items, { workerId: "w2", queues: { q: hint }, leaseMs: 10_000 });
    expect(outcomes.map((o, i) => (o.ok ? "ok" : `${i}:${(o.error as VigilError).code}`)).filter((o) => o !== "ok")).toEqual([
      "7:LEASE_LOST",
    ]);
    expect(leases.map((l) => l.job.payload)).toEqual(Array.from({ length: hint }, (_, i) => hint + i));
    expect(new Set([...first, ...leases].map((l) => l.token)).size).toBe(2 * hint);
    expect(leases.every((l) => l.workerId === "w2" && l.job.state === "active" && l.job.attempt === 1)).toBe(true);
    expect((await store.stats())["q"]).toMatchObject({ completed: hint - 1, active: hint + 1, waiting: 0 });
    expect((await store.get(first[3]!.jobId))?.result).toBe(3);
  });

  it("two hosts whose clocks differ by 30 s agree on when leases and leader locks run out", async () => {
    const schema = freshSchemaName("vigil_skew");
    const right = await open({ schema });
    const ahead = await open({ schema, clock: { now: () => Date.now() + 30_000 } });
    const serverNow = async () => Number((await pgExec(`SELECT ${SERVER_MS} AS t`)).rows[0].t);
    await right.enqueueMany([1, 2].map((n) => ({ queue: "q", payload: n })));

    // A fresh 10 s lease of the host whose clock is right has not run out for the one ahead.
    const [mine] = await right.claim({ workerId: "right", queues: { q: 1 }, leaseMs: 10_000 });
    expect(await ahead.reapExpired()).toBe(0);
    expect((await right.get(mine!.jobId))?.state).toBe("active");
    expect(await ahead.renewMany([mine!], 10_000)).toEqual([]);
    expect(await ahead.reapExpired()).toBe(0);

    // A 1 s lease of the host ahead runs out 1 s on for the host that is right, not 31 s on.
    const [theirs] = await ahead.claim({ workerId: "ahead", queues: { q: 1 }, leaseMs: 1000 });
    const deadline = (await right.get(theirs!.jobId))!.leaseUntil!;
    expect(deadline - (await serverNow())).toBeLessThanOrEqual(1000);
    await waitFor(async () => (await right.reapExpired()) === 1, "the 1 s lease to run out", 20_000);
    expect((await right.get(theirs!.jobId))?.state).toBe("waiting");
    expect((await right.get(mine!.jobId))?.state).toBe("active");

    // Leader locks likewise: the host ahead cannot take a lock the other holds.
    expect(await right.tryLock("trigger:t", "right", 10_000)).toBe(true);
    expect(await ahead.tryLock("trigger:t", "ahead", 10_000)).toBe(false);
    expect(await ahead.tryLock("retention", "ahead", 1000)).toBe(true);
    expect(await right.tryLock("retention", "right", 1000)).toBe(false);
  });

  it("a dropped connection (pooled or listening) is replaced: queries and wake-ups carry on", async () => {
    const schema = freshSchemaName("vigil_drop");
    const store = await open({ schema });
    const heard: string[] = [];
    store.subscribe((q) => heard.push(q));
    await store.enqueue("a", 1);
    await waitFor(() => heard.includes("a"), "the first wake-up");
    const killed = await pgExec(
      "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1",
      [`vigil:${schema}`],
    );
    expect(killed.rows[0].n).toBeGreaterThanOrEqual(2);
    // The next query may meet a connection that died under it: STORE_UNREACHABLE, then fine.
    await waitFor(async () => (await store.enqueue("b", 2).then(() => true, () => false)), "a working enqueue");
    await waitFor(() => heard.includes("b"), "a wake-up after the listening connection was killed");
    expect((await store.stats()).b?.waiting).toBe(1);
  });
});

/** Polls `cond` every 20 ms until it holds; fails after `ms` (generous: a shared machine). */
async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
