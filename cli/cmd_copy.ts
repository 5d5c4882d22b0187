import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { copySnapshots, type CopyProgress, type CopyResult } from "../engine/copy.js";
import { CairnError } from "../engine/errors.js";
import { openRepositoryAt, withLock } from "../engine/open.js";
import type { Repository } from "../engine/repository.js";
import { backendFor, formatBytes, globals, lockRequest, output, prompt, withRepository } from "./common.js";

/** The source repository's options, shared by `copy` and `init --copy-chunker-params`. */
export interface FromOptions {
  fromRepo?: string;
  fromPasswordFile?: string;
}

/** Declares --from-repo and --from-password-file on a command. */
export function fromOptions(cmd: Command): Command {
  return cmd
    .option("--from-repo <location>", "source repository location (or CAIRN_FROM_REPOSITORY)")
    .option("--from-password-file <file>", "read the source repository's password from a file (or CAIRN_FROM_PASSWORD_FILE / CAIRN_FROM_PASSWORD)");
}

/** The source password, from --from-password-file, CAIRN_FROM_PASSWORD_FILE, CAIRN_FROM_PASSWORD, or a prompt on a terminal. */
async function readFromPassword(o: FromOptions): Promise<string> {
  const file = o.fromPasswordFile ?? process.env.CAIRN_FROM_PASSWORD_FILE;
  if (file) {
    try {
      return readFileSync(file, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new CairnError(`cannot read the source password file ${file}: ${(err as Error).message}`);
    }
  }
  if (process.env.CAIRN_FROM_PASSWORD !== undefined) return process.env.CAIRN_FROM_PASSWORD;
  if (process.stdin.isTTY) return prompt("enter source repository password: ");
  throw new CairnError("no password for the source repository: set CAIRN_FROM_PASSWORD or CAIRN_FROM_PASSWORD_FILE, or use --from-password-file", 1);
}

/** Opens the source repository named by --from-repo / CAIRN_FROM_REPOSITORY; close it (and its backend) when done. */
export async function openFromRepository(o: FromOptions): Promise<Repository> {
  const location = o.fromRepo ?? process.env.CAIRN_FROM_REPOSITORY;
  if (!location) throw new CairnError("no source repository given: use --from-repo LOCATION or set CAIRN_FROM_REPOSITORY", 1);
  const backend = await backendFor(location);
  const password = await readFromPassword(o).catch(async (err: unknown) => {
    await backend.close?.();
    throw err;
  });
  return openRepositoryAt(backend, password);
}

export function register(program: Command): void {
  fromOptions(
    program
      .command("copy")
      .description("copy snapshots (all, or the ones given) from another repository into this one; only data this one lacks is sent")
      .argument("[snapshot...]", "snapshot ids, id prefixes or \"latest\" in the source repository"),
  ).action(async (refs: string[], o: FromOptions, cmd: Command) => {
    const opts = globals(cmd);
    const live = Boolean(process.stderr.isTTY) && !opts.json && !opts.quiet;
    const onProgress = live
      ? (p: CopyProgress) => process.stderr.write(`\r\x1b[K${p.snapshotsDone}/${p.snapshotsTotal} snapshots, ${p.blobsSent} blobs, ${formatBytes(p.bytesSent)} sent`)
      : undefined;
    const from = await openFromRepository(o);
    try {
      const result = await withRepository(opts, "shared", "copy", (to) =>
        withLock(from, lockRequest(opts, "shared", "copy (source)"), async () => {
          try {
            return await copySnapshots(from, to, { snapshotIds: refs, onProgress });
          } finally {
            if (live) process.stderr.write("\r\x1b[K");
          }
        }),
      );
      output(opts, result, () => describe(result));
    } finally {
      await from.close();
    }
  });
}

function describe(r: CopyResult): string {
  const lines = r.copied.map((c) => `copied snapshot ${c.from.slice(0, 8)} as ${c.to.slice(0, 8)}`);
  for (const s of r.skipped) lines.push(`snapshot ${s.from.slice(0, 8)} is already there as ${s.to.slice(0, 8)}`);
  lines.push(
    `${r.copied.length} snapshot${r.copied.length === 1 ? "" : "s"} copied, ${r.skipped.length} already present; ` +
      `sent ${r.blobsSent} blobs, ${formatBytes(r.bytesSent)} stored for ${formatBytes(r.snapshotBytes)} of snapshot data`,
  );
  return lines.join("\n");
}
