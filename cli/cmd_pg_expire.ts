import type { Command } from "commander";
import { loadSnapshots } from "../engine/snapshot.js";
import { ClusterArchive } from "../sources/postgres/recovery.js";
import { globals, output, withRepository } from "./common.js";

/**
 * WAL retention: after `cairn forget` has removed base backups, deletes the WAL files
 * that no remaining base backup needs.
 */
export function register(pg: Command): void {
  pg.command("expire")
    .description("delete archived WAL that no kept base backup needs (run after cairn forget --tag pg-base ...)")
    .option("--system-id <id>", "only this cluster")
    .option("-n, --dry-run", "only list what would be deleted")
    .action(async (o: { systemId?: string; dryRun?: boolean }, cmd: Command) => {
      const opts = globals(cmd);
      const result = await withRepository(opts, "exclusive", "pg expire", async (repo) => {
        const snapshots = await loadSnapshots(repo);
        const out = [];
        for (const id of o.systemId ? [o.systemId] : ClusterArchive.clusters(snapshots)) {
          const cluster = await ClusterArchive.load(repo, id, snapshots);
          const expired = cluster.expirable();
          if (!o.dryRun) for (const name of expired) await cluster.archive.remove(id, name);
          out.push({ systemId: id, backups: cluster.backups.length, expired, kept: cluster.files.size - expired.length });
        }
        return out;
      });
      output(opts, { dryRun: Boolean(o.dryRun), clusters: result }, () =>
        result
          .map((c) => `system ${c.systemId}: ${o.dryRun ? "would delete" : "deleted"} ${c.expired.length} WAL files${c.expired.length ? ` (${c.expired[0]} .. ${c.expired[c.expired.length - 1]})` : ""}, kept ${c.kept} for ${c.backups} base backups`)
          .join("\n") || "no base backups in this repository; nothing to expire",
      );
    });
}
