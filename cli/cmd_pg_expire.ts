import type { Command } from "commander";
import { CairnError } from "../engine/errors.js";
import { loadSnapshots } from "../engine/snapshot.js";
import { expireWal, type WalExpiry } from "../sources/postgres/expire.js";
import { ClusterArchive } from "../sources/postgres/recovery.js";
import { globals, output, withRepository } from "./common.js";

/**
 * WAL retention. `cairn forget` already expires the WAL its removed base backups
 * alone needed; `pg expire` runs the same on demand, and with `--archive-backups`
 * narrows the point-in-time window to the newest base backups (older ones keep only
 * the WAL that makes them consistent), as pgBackRest's repo-retention-archive.
 */
export function register(pg: Command): void {
  pg.command("expire")
    .description("delete archived WAL that no kept base backup needs (cairn forget does this for the base backups it removes)")
    .option("--system-id <id>", "only this cluster")
    .option("--archive-backups <n>", "keep WAL for point-in-time recovery after the n newest base backups only; older ones keep the WAL from their start to their stop (default: every kept base backup)")
    .option("-n, --dry-run", "only list what would be deleted")
    .action(async (o: { systemId?: string; archiveBackups?: string; dryRun?: boolean }, cmd: Command) => {
      const opts = globals(cmd);
      let archiveBackups: number | undefined;
      if (o.archiveBackups !== undefined) {
        if (!/^[1-9]\d*$/.test(o.archiveBackups)) throw new CairnError(`--archive-backups takes a whole number of at least 1, got "${o.archiveBackups}"`);
        archiveBackups = Number(o.archiveBackups);
      }
      const result = await withRepository(opts, "exclusive", "pg expire", async (repo) => {
        const snapshots = await loadSnapshots(repo);
        return expireWal(repo, snapshots, o.systemId ? [o.systemId] : ClusterArchive.clusters(snapshots), { archiveBackups, dryRun: o.dryRun });
      });
      output(opts, { dryRun: Boolean(o.dryRun), clusters: result }, () => result.map((c) => describeExpiry(c, Boolean(o.dryRun))).join("\n") || "no base backups in this repository; nothing to expire");
    });
}

/** One line per cluster, for pg expire and forget. */
export function describeExpiry(c: WalExpiry, dryRun: boolean): string {
  const range = c.expired.length ? ` (${c.expired[0]} .. ${c.expired[c.expired.length - 1]})` : "";
  return `WAL of system ${c.systemId}: ${dryRun ? "would delete" : "deleted"} ${c.expired.length} files${range}, kept ${c.kept} for ${c.backups} base backups (point-in-time recovery after the newest ${c.archiveBackups})`;
}
