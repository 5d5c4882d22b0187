import type { Command } from "commander";
import { takeBaseBackup } from "../sources/postgres/basebackup.js";
import { formatBytes, globals, output, ProgressLine, withRepository } from "./common.js";

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(pg: Command): void {
  pg.command("backup")
    .description("take a physical base backup of a running cluster (pg_basebackup, streamed into the repository; unchanged pages are not stored again)")
    .requiredOption("--url <url>", "connection to the server, as for psql (postgresql://user@host:port/db); the user needs the REPLICATION attribute")
    .option("--tag <tag>", "tag the snapshot (repeatable)", collect, [])
    .option("--host <name>", "host name to record (default: this machine's)")
    .option("--label <label>", "backup label recorded by PostgreSQL", "cairn base backup")
    .action(async (o: { url: string; tag: string[]; host?: string; label: string }, cmd: Command) => {
      const opts = globals(cmd);
      const result = await withRepository(opts, "shared", "pg backup", async (repo) => {
        const progress = new ProgressLine(opts);
        try {
          return await takeBaseBackup(repo, { url: o.url, tags: o.tag, host: o.host, label: o.label, onProgress: (p) => progress.update(p) });
        } finally {
          progress.done();
        }
      });
      const s = result.snapshot.summary!;
      const i = result.info;
      output(opts, { id: result.id, ...result.snapshot }, () =>
        [
          `base backup of system ${i.systemId} (PostgreSQL ${i.serverVersion}), timeline ${i.timeline}, WAL ${i.startLsn} to ${i.stopLsn}`,
          `processed ${formatBytes(s.totalBytes)} in ${s.durationSeconds.toFixed(2)}s; added ${formatBytes(s.dataAdded)} (${formatBytes(s.dataAddedPacked)} stored)`,
          `snapshot ${result.id.slice(0, 8)} saved`,
        ].join("\n"),
      );
    });
}
