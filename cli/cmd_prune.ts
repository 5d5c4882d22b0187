import type { Command } from "commander";
import { prune, type PruneOptions, type PruneProgress, type PruneResult } from "../engine/prune.js";
import type { Repository } from "../engine/repository.js";
import { formatBytes, globals, output, withRepository, type GlobalOptions } from "./common.js";

export const MAX_UNUSED_HELP =
  "unused space to tolerate in partly used packs before repacking them: a share of the repository (5%), a size (500M, 2G) or unlimited";

export function register(program: Command): void {
  program
    .command("prune")
    .description("delete data no snapshot needs; repack partly used packs when they waste more than --max-unused")
    .option("--max-unused <limit>", MAX_UNUSED_HELP, "5%")
    .option("-n, --dry-run", "only report what would be deleted and repacked")
    .action(async (o: { maxUnused: string; dryRun?: boolean }, cmd: Command) => {
      const opts = globals(cmd);
      const result = await withRepository(opts, "exclusive", "prune", (repo) => runPrune(repo, opts, { maxUnused: o.maxUnused, dryRun: o.dryRun }));
      output(opts, result, () => formatPrune(result));
    });
}

/** Runs prune with a progress line on a terminal. The caller holds the exclusive lock. */
export async function runPrune(repo: Repository, opts: GlobalOptions, options: Omit<PruneOptions, "onProgress">): Promise<PruneResult> {
  const show = Boolean(process.stderr.isTTY) && !opts.json && !opts.quiet;
  const onProgress = show ? (p: PruneProgress) => process.stderr.write(`\r\x1b[K${p.phase}: ${p.done}/${p.total}`) : undefined;
  try {
    return await prune(repo, { ...options, onProgress });
  } finally {
    if (show) process.stderr.write("\r\x1b[K");
  }
}

export function formatPrune(r: PruneResult): string {
  const p = r.packs;
  const would = r.dryRun ? "would be " : "";
  return [
    `${plural(r.snapshots, "snapshot")} ${r.snapshots === 1 ? "uses" : "use"} ${plural(r.usedBlobs, "blob")}`,
    `packs: ${p.unused} unused and ${p.unreferenced} unreferenced ${would}deleted, ${p.repacked} ${would}repacked` +
      (r.duplicates ? `, ${r.duplicates} duplicate blob copies ${would}dropped` : "") +
      (r.dryRun ? "" : `; ${p.written} written, ${p.after} left`),
    `repository size: ${formatBytes(r.bytes.before)} -> ${formatBytes(r.bytes.after)} (${formatBytes(r.bytes.freed)} ${r.dryRun ? "would be " : ""}freed), ` +
      `${formatBytes(r.bytes.unusedAfter)} unused left in kept packs`,
    lockLine(r),
    r.dryRun ? "dry run: nothing was changed" : "",
  ]
    .filter(Boolean)
    .join("\n");
}

/** What S3 Object Lock keeps, in words; empty when it keeps nothing. */
function lockLine(r: PruneResult): string {
  const k = r.keptByLock;
  const kept = [k.packs && `${plural(k.packs, "pack")} (${formatBytes(k.bytes)})`, k.indexFiles && plural(k.indexFiles, "superseded index file")].filter(Boolean);
  const parts = [
    kept.length ? `${kept.join(" and ")} kept until ${k.until} by object lock; prune again after that to delete them` : "",
    r.immutable ? "no repacking: the storage is immutable, so partly used packs stay as they are" : "",
  ];
  return parts.filter(Boolean).join("\n");
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
