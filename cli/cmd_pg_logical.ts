import type { Command } from "commander";
import { CairnError } from "../engine/errors.js";
import { findSnapshot, loadSnapshots } from "../engine/snapshot.js";
import { logicalDumps, restoreLogical, takeLogicalDump } from "../sources/postgres/logical.js";
import { formatBytes, globals, output, withRepository } from "./common.js";

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(pg: Command): void {
  pg.command("dump")
    .description("logical backup: pg_dump (directory format) of each database, one entry per table, plus roles and tablespaces")
    .requiredOption("--url <url>", "connection to the server, as for psql")
    .option("--database <name>", "dump this database (repeatable; default: every database that accepts connections)", collect, [])
    .option("--table <pattern>", "dump only matching tables (pg_dump -t; repeatable)", collect, [])
    .option("--exclude-table <pattern>", "skip matching tables (pg_dump -T; repeatable)", collect, [])
    .option("--schema <pattern>", "dump only matching schemas (pg_dump -n; repeatable)", collect, [])
    .option("-j, --jobs <n>", "tables dumped in parallel", "2")
    .option("--tag <tag>", "tag the snapshot (repeatable)", collect, [])
    .option("--host <name>", "host name to record (default: this machine's)")
    .action(async (o: { url: string; database: string[]; table: string[]; excludeTable: string[]; schema: string[]; jobs: string; tag: string[]; host?: string }, cmd: Command) => {
      const opts = globals(cmd);
      const result = await withRepository(opts, "shared", "pg dump", (repo) =>
        takeLogicalDump(repo, { url: o.url, databases: o.database, tables: o.table, excludeTables: o.excludeTable, schemas: o.schema, jobs: Number(o.jobs) || 2, tags: o.tag, host: o.host }),
      );
      const s = result.snapshot.summary!;
      output(opts, { id: result.id, ...result.snapshot }, () =>
        [
          `dumped ${result.info.databases.map((d) => d.name).join(", ")} and the globals (PostgreSQL ${result.info.serverVersion})`,
          `processed ${formatBytes(s.totalBytes)} in ${s.durationSeconds.toFixed(2)}s; added ${formatBytes(s.dataAdded)} (${formatBytes(s.dataAddedPacked)} stored)`,
          `snapshot ${result.id.slice(0, 8)} saved`,
        ].join("\n"),
      );
    });

  pg.command("restore-logical")
    .description("restore a database of a logical dump into a new database, or chosen tables into an existing one; drops nothing without --clean")
    .argument("<snapshot>", 'dump snapshot id (or a unique prefix) or "latest"')
    .requiredOption("--url <url>", "connection to the server to restore into")
    .requiredOption("--database <name>", "which dumped database")
    .option("--into <name>", "database to restore into (default: the dumped one's name); created when restoring a whole database")
    .option("--table <name>", "restore only this table, with its data and constraints, into the existing database (repeatable)", collect, [])
    .option("--clean", "drop the dump's objects before recreating them")
    .option("--preview", "list what would be restored and change nothing")
    .option("-j, --jobs <n>", "parallel jobs for a whole database", "2")
    .action(async (ref: string, o: { url: string; database: string; into?: string; table: string[]; clean?: boolean; preview?: boolean; jobs: string }, cmd: Command) => {
      const opts = globals(cmd);
      const result = await withRepository(opts, "shared", "pg restore-logical", async (repo) => {
        const dumps = logicalDumps(await loadSnapshots(repo));
        if (!dumps.length) throw new CairnError('there is no logical dump in this repository; take one with "cairn pg dump"');
        const id = ref === "latest" ? dumps[dumps.length - 1].id : (await findSnapshot(repo, ref)).id;
        const snap = dumps.find((d) => d.id === id);
        if (!snap) throw new CairnError(`snapshot ${ref} is not a logical dump; list them with "cairn snapshots --tag pg-logical"`);
        return restoreLogical(repo, snap, { url: o.url, database: o.database, into: o.into, tables: o.table, clean: o.clean, preview: o.preview, jobs: Number(o.jobs) || 2 });
      });
      output(opts, result, () =>
        o.preview
          ? [`would restore into "${result.into}":`, ...result.items].join("\n")
          : `restored ${o.table.length ? `${o.table.join(", ")} of ` : ""}"${result.database}" into "${result.into}"${result.created ? " (created)" : ""}: ${result.items.length} items`,
      );
    });
}
