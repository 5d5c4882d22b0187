import type { Command } from "commander";
import { checkRepository, type CheckProgress, type CheckReport } from "../engine/checker.js";
import { formatBytes, globals, output, withRepository } from "./common.js";

export function register(program: Command): void {
  program
    .command("check")
    .description("check the repository's structure, and with --read-data that its data is intact")
    .option("--read-data", "download every pack and verify every blob in it")
    .option("--read-data-subset <subset>", "read only part of the data: a percentage (10%), a fraction (0.1) or n/m (the n-th of m groups; run 1/m..m/m to cover everything)")
    .action(async (o: { readData?: boolean; readDataSubset?: string }, cmd: Command) => {
      const opts = globals(cmd);
      const live = Boolean(process.stderr.isTTY) && !opts.json && !opts.quiet;
      const onProgress = live
        ? (p: CheckProgress) => process.stderr.write(`\r\x1b[Kread ${p.packsDone}/${p.packsTotal} packs, ${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)}`)
        : undefined;
      const report = await withRepository(
        opts,
        "shared",
        "check",
        async (repo) => {
          try {
            return await checkRepository(repo, { readData: o.readData, subset: o.readDataSubset, onProgress });
          } finally {
            if (live) process.stderr.write("\r\x1b[K");
          }
        },
        // A damaged index file must not stop the open: the checker reads it again and reports it.
        { onIndexError: () => undefined },
      );
      output(opts, report, () => describe(report, Boolean(o.readData || o.readDataSubset)));
      if (report.errors.length) process.exitCode = 1;
    });
}

function describe(report: CheckReport, readData: boolean): string {
  const lines = [`checked ${report.snapshots} snapshots and ${report.packs} packs`];
  for (const w of report.warnings) lines.push(`warning: ${w}`);
  for (const e of report.errors) lines.push(`error: ${e.message}`);
  if (readData) lines.push(`read ${report.packsRead} of ${report.packs} packs, verified ${report.blobsRead} blobs`);
  const n = report.errors.length;
  lines.push(n === 0 ? "no errors were found" : `${n} error${n === 1 ? "" : "s"}: copy the named files back from another copy of the repository if you have one; until then, snapshots that need them cannot be fully restored`);
  return lines.join("\n");
}
