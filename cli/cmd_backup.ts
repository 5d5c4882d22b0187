import { spawn } from "node:child_process";
import type { Command } from "commander";
import { Archiver, type BackupResult } from "../engine/archiver.js";
import { CairnError } from "../engine/errors.js";
import { formatBytes, globals, output, ProgressLine, withRepository } from "./common.js";

interface BackupFlags {
  exclude: string[];
  tag: string[];
  host?: string;
  force?: boolean;
  parent?: string;
  stdin?: boolean;
  stdinFilename: string;
  stdinFromCommand?: boolean;
  compression?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(program: Command): void {
  program
    .command("backup")
    .description("store a snapshot of paths, of standard input, or of a command's output")
    .argument("[paths...]", "files and directories to back up (or, with --stdin-from-command, the command and its arguments after --)")
    .option("-e, --exclude <glob>", "skip paths matching the glob (repeatable)", collect, [])
    .option("--tag <tag>", "tag the snapshot (repeatable)", collect, [])
    .option("--host <name>", "host name to record (default: this machine's)")
    .option("--force", "re-read every file even when unchanged since the parent snapshot")
    .option("--parent <snapshot>", "compare against this snapshot instead of the latest one for the same host and paths")
    .option("--stdin", "read the content of one file from standard input")
    .option("--stdin-filename <name>", "file name for --stdin / --stdin-from-command", "stdin")
    .option("--stdin-from-command", "run the command given after -- and back up its standard output; fails if the command fails")
    .option("--compression <spec>", "compression for new data in this run (zstd[:level], gzip[:1-9], brotli[:level], none)")
    .action(async (paths: string[], o: BackupFlags, cmd: Command) => {
      const opts = globals(cmd);
      if (o.stdin && o.stdinFromCommand) throw new CairnError("use either --stdin or --stdin-from-command, not both");
      if (o.stdin && paths.length) throw new CairnError("--stdin takes no paths");
      if (o.stdinFromCommand && !paths.length) throw new CairnError("--stdin-from-command needs a command after --, for example: cairn backup --stdin-from-command -- pg_dump mydb");
      const result = await withRepository(opts, "shared", "backup", async (repo) => {
        if (o.compression) repo.compression = (await import("../engine/compression.js")).parseCompression(o.compression);
        const progress = new ProgressLine(opts);
        const archiver = new Archiver(repo, {
          excludes: o.exclude,
          tags: o.tag,
          host: o.host,
          force: o.force,
          parent: o.parent,
          estimate: Boolean(process.stderr.isTTY) && !opts.json && !opts.quiet,
          onProgress: (p) => progress.update(p),
        });
        try {
          if (o.stdin) return await archiver.backupStream(process.stdin, o.stdinFilename);
          if (o.stdinFromCommand) return await backupCommand(archiver, paths, o.stdinFilename);
          return await archiver.backup(paths);
        } finally {
          progress.done();
        }
      });
      report(opts, result);
      if (result.errors.length) process.exitCode = 3;
    });
}

async function backupCommand(archiver: Archiver, argv: string[], filename: string): Promise<BackupResult> {
  const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<number>((resolve, reject) => {
    child.on("error", (err) => reject(new CairnError(`cannot run ${argv[0]}: ${err.message}`)));
    child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  // The snapshot is written only after the command has exited successfully.
  const gate = async function* () {
    yield* child.stdout!;
    const code = await exited;
    if (code !== 0) throw new CairnError(`${argv[0]} exited with status ${code}; no snapshot was written`);
  };
  return archiver.backupStream(gate(), filename);
}

function report(opts: ReturnType<typeof globals>, result: BackupResult): void {
  for (const e of result.errors) process.stderr.write(`error: ${e.path}: ${e.message}\n`);
  const s = result.snapshot.summary!;
  output(opts, { id: result.id, ...result.snapshot, errors: result.errors }, () =>
    [
      `files: ${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnmodified} unmodified; ${s.dirs} directories`,
      `added to the repository: ${formatBytes(s.dataAdded)} (${formatBytes(s.dataAddedPacked)} stored)`,
      `processed ${formatBytes(s.totalBytes)} in ${s.durationSeconds.toFixed(2)}s`,
      result.errors.length ? `warning: ${result.errors.length} file(s) could not be read (listed above); the snapshot does not have them` : "",
      `snapshot ${result.id.slice(0, 8)} saved`,
    ]
      .filter(Boolean)
      .join("\n"),
  );
}
