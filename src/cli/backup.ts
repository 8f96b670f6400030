/**
 * `vigil backup FILE`: a consistent copy of the SQLite store while everything runs (online
 * backup API). For a PostgreSQL store it prints the pg_dump command to run instead.
 */
import type { Command } from "commander";
import { resolve } from "node:path";

/** Adds `vigil backup` to the program. */
export function register(program: Command): void {
  program
    .command("backup")
    .description("copy the SQLite store consistently while Vigil runs (PostgreSQL: prints the pg_dump command)")
    .argument("<file>", "where to write the copy")
    .option("--force", "replace FILE if it exists")
    .option("--json", "print the result as JSON")
    .action(async (file: string, flags: { force?: boolean; json?: boolean }, cmd: Command) => {
      const { loadContext } = await import("./context.js");
      const [{ backupSqlite, pgDumpCommand }, { sqliteFileOf }] = await Promise.all([import("../health/backup.js"), import("../core/store-url.js")]);
      const ctx = await loadContext(cmd);
      const source = sqliteFileOf(ctx.storeUrl);
      if (source === null) {
        const argv = pgDumpCommand(ctx.storeUrl, ctx.config?.schema, resolve(file));
        process.stdout.write(
          "The store is PostgreSQL; back it up with pg_dump (restore with pg_restore, see docs/backup.md):\n  " +
            argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(" ") +
            "\n",
        );
        return;
      }
      const tty = process.stderr.isTTY && !flags.json;
      let lastPct = -1;
      const started = Date.now();
      const result = await backupSqlite(source, resolve(file), {
        force: flags.force,
        onProgress: ({ totalPages, remainingPages }) => {
          const pct = totalPages ? Math.floor((100 * (totalPages - remainingPages)) / totalPages) : 100;
          // Progress only for stores big enough to take a while, and only on a terminal.
          if (tty && totalPages > 25_000 && pct !== lastPct) process.stderr.write(`\rbacking up: ${pct}%`);
          lastPct = pct;
        },
      });
      if (tty && lastPct >= 0 && result.pages > 25_000) process.stderr.write("\n");
      if (flags.json) process.stdout.write(JSON.stringify({ ...result, ms: Date.now() - started }) + "\n");
      else process.stdout.write(`backed up ${source} to ${result.file} (${result.bytes} bytes, ${result.pages} pages) in ${Date.now() - started} ms\n`);
    });
}
