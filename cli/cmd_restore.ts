import type { Command } from "commander";
import { CairnError } from "../engine/errors.js";
import { Restorer, type OverwritePolicy } from "../engine/restorer.js";
import { findSnapshot, loadSnapshots } from "../engine/snapshot.js";
import { formatBytes, globals, output, PLAN_OPTION, ProgressLine, withRepository } from "./common.js";

const collect = (v: string, prev: string[]) => [...prev, v];

interface RestoreFlags {
  target?: string;
  include: string[];
  exclude: string[];
  dryRun?: boolean;
  verify?: boolean;
  overwrite: string;
  delete?: boolean;
  host?: string;
  plan?: string;
}

export function register(program: Command): void {
  program
    .command("restore")
    .description("restore a snapshot into a directory")
    .argument("<snapshot>", 'snapshot id (or a unique prefix) or "latest"')
    .requiredOption("-t, --target <dir>", "directory to restore into (created if missing)")
    .option("-i, --include <glob>", "restore only paths matching the glob (repeatable)", collect, [])
    .option("-e, --exclude <glob>", "do not restore paths matching the glob (repeatable)", collect, [])
    .option("--dry-run", "show what would be restored without writing anything")
    .option("--verify", "read the restored files back and compare them with the snapshot")
    .option("--overwrite <when>", "existing files: always, if-changed (only rewrite what differs) or never", "always")
    .option("--delete", "delete files in the target that are not in the snapshot")
    .option("--host <name>", 'with "latest": the latest snapshot of this host')
    .option(PLAN_OPTION[0], 'with "latest": the latest snapshot of this Cairn plan, given by id or name')
    .action(async (ref: string, o: RestoreFlags, cmd: Command) => {
      const opts = globals(cmd);
      if (!["always", "if-changed", "never"].includes(o.overwrite)) throw new CairnError(`--overwrite must be always, if-changed or never, got ${o.overwrite}`);
      const { snapshot, result } = await withRepository(opts, "shared", "restore", async (repo) => {
        const snapshot = await findSnapshot(repo, ref, { host: o.host, plan: o.plan });
        if (ref === "latest" && !o.host && !o.plan) {
          const hosts = new Set((await loadSnapshots(repo)).map((s) => s.host));
          if (hosts.size > 1) {
            process.stderr.write(
              `warning: "latest" is the newest snapshot of any host or plan: ${snapshot.id.slice(0, 8)} of host ${snapshot.host}${snapshot.tags.length ? ` (${snapshot.tags.join(",")})` : ""}; ` +
                `the repository holds snapshots of ${hosts.size} hosts, choose with --plan or --host\n`,
            );
          }
        }
        const progress = new ProgressLine(opts);
        const restorer = new Restorer(repo, {
          target: o.target!,
          include: o.include,
          exclude: o.exclude,
          dryRun: o.dryRun,
          verify: o.verify,
          overwrite: o.overwrite as OverwritePolicy,
          delete: o.delete,
          onProgress: (p) => progress.update(p),
        });
        try {
          return { snapshot, result: await restorer.restore(snapshot.tree) };
        } finally {
          progress.done();
        }
      });
      for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      for (const e of result.verifyErrors) process.stderr.write(`verify: ${e}\n`);
      output(opts, { snapshot: snapshot.id, target: o.target, dryRun: Boolean(o.dryRun), ...result }, () =>
        [
          o.dryRun ? `would restore ${result.files} files (${formatBytes(result.totalBytes)}), ${result.symlinks} symlinks from ${snapshot.id.slice(0, 8)} to ${o.target}` :
            `restored ${snapshot.id.slice(0, 8)} to ${o.target}: ${result.files} files (${formatBytes(result.totalBytes)}), ${result.symlinks} symlinks; wrote ${formatBytes(result.bytesWritten)}`,
          result.filesSkipped ? `${result.filesSkipped} files already up to date or kept` : "",
          result.deleted.length ? `deleted ${result.deleted.length} entries not in the snapshot` : "",
          o.verify ? (result.verifyErrors.length ? `verification FAILED for ${result.verifyErrors.length} files` : "verified: every restored file matches the snapshot") : "",
        ].filter(Boolean).join("\n"),
      );
      if (result.verifyErrors.length) process.exitCode = 1;
    });
}
