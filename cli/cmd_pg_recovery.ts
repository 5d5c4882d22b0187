import * as path from "node:path";
import type { Command } from "commander";
import { CairnError } from "../engine/errors.js";
import { loadSnapshots } from "../engine/snapshot.js";
import { WalArchive } from "../sources/postgres/archive.js";
import { ClusterArchive, type Candidate, type RecoveryTarget } from "../sources/postgres/recovery.js";
import { ensureEmptyTarget, walFetchCommand, writeDataDir, type TargetAction } from "../sources/postgres/restore.js";
import { parseLsn } from "../sources/postgres/wal.js";
import { prefetcherForRestore } from "./cmd_pg_wal.js";
import { formatBytes, globals, output, withRepository, type GlobalOptions } from "./common.js";

interface RestoreFlags {
  targetDir: string;
  time?: string;
  lsn?: string;
  xid?: string;
  name?: string;
  immediate?: boolean;
  targetAction: string;
  systemId?: string;
  explain?: boolean;
  delta?: boolean;
}

export function register(pg: Command): void {
  pg.command("restore")
    .description("write a data directory that recovers to a point in time when started (base backup chosen for you)")
    .requiredOption("--target-dir <dir>", "new or empty directory for the data directory")
    .option("--time <time>", "recover up to this time (as PostgreSQL reads it, e.g. '2025-01-31 12:00:00+00')")
    .option("--lsn <lsn>", "recover up to this WAL location")
    .option("--xid <xid>", "recover up to the commit of this transaction")
    .option("--name <name>", "recover up to this restore point (pg_create_restore_point)")
    .option("--immediate", "stop as soon as the base backup is consistent")
    .option("--target-action <action>", "what the server does at the target: promote, pause or shutdown", "promote")
    .option("--system-id <id>", "which cluster (default: the one with the newest base backup)")
    .option("--explain", "show the chosen base backup and the alternatives, and write nothing")
    .option("--delta", "restore over the stopped data directory of the same cluster, rewriting only files whose content differs from the backup (and removing files it does not have)")
    .action(async (o: RestoreFlags, cmd: Command) => {
      const opts = globals(cmd);
      const { target, text } = parseTarget(o);
      if (!["promote", "pause", "shutdown"].includes(o.targetAction)) throw new CairnError(`--target-action must be promote, pause or shutdown, got ${o.targetAction}`);
      const dir = path.resolve(o.targetDir);
      if (!o.explain && !o.delta) await ensureEmptyTarget(dir);
      await withRepository(opts, "shared", "pg restore", async (repo) => {
        const cluster = await ClusterArchive.load(repo, await clusterId(repo, o.systemId));
        const { chosen, alternatives } = await cluster.choose(target, repo);
        const explain = { target: text ?? target.kind, chosen: describeCandidate(chosen), alternatives: alternatives.map(describeCandidate) };
        if (o.explain) {
          output(opts, explain, () => [`target: ${explain.target}`, `chosen:      ${line(chosen)}`, ...alternatives.map((a) => `alternative: ${line(a)}`)].join("\n"));
          return;
        }
        const command = restoreCommand(opts, cluster.systemId, Number(chosen.backup.source.version));
        // Opens the repository while the base backup is written, to serve the server's first requests.
        const prefetcher = prefetcherForRestore(opts, dir, cluster.systemId);
        let result: Awaited<ReturnType<typeof writeDataDir>>;
        try {
          result = await writeDataDir(repo, chosen.backup, { targetDir: dir, target, targetText: text, action: o.targetAction as TargetAction, restoreCommand: command, delta: o.delta, walAhead: { archive: new WalArchive(repo), systemId: cluster.systemId, segments: chosen.chain.segments.filter((n) => cluster.files.has(n)) } });
        } catch (err) {
          prefetcher.cancel();
          throw err;
        }
        // Not ready (it could not open the repository as the directory's owner, say): the server's first wal-fetch starts one.
        await prefetcher.go();
        const delta = o.delta ? { filesUnchanged: result.filesSkipped, bytesWritten: result.bytesWritten, deleted: result.deleted.map((f) => path.relative(dir, f)) } : {};
        output(opts, { ...explain, targetDir: dir, files: result.files, bytes: result.totalBytes, ...delta }, () =>
          [
            `restored base backup ${chosen.backup.id.slice(0, 8)} (${chosen.backup.source.stopTime}) into ${dir}: ${result.files} files, ${formatBytes(result.totalBytes)}`,
            ...(o.delta ? [`delta: ${result.filesSkipped} files already matched and were left as they were; ${formatBytes(result.bytesWritten)} written; ${result.deleted.length} files the backup does not have removed`] : []),
            `start it (as the owner of the directory) to recover to ${explain.target}: pg_ctl -D ${dir} start`,
          ].join("\n"),
        );
      });
    });

  pg.command("check")
    .description("check every base backup's WAL chain up to the newest archived segment; names each missing segment")
    .option("--system-id <id>", "check only this cluster")
    .action(async (o: { systemId?: string }, cmd: Command) => {
      const opts = globals(cmd);
      const report = await withRepository(opts, "shared", "pg check", async (repo) => {
        const snapshots = await loadSnapshots(repo);
        const ids = o.systemId ? [o.systemId] : ClusterArchive.clusters(snapshots);
        const out = [];
        for (const id of ids) {
          const cluster = await ClusterArchive.load(repo, id, snapshots);
          out.push({
            systemId: id,
            walFiles: cluster.files.size,
            backups: cluster.backups.map((b) => {
              const c = cluster.chain(b);
              return { id: b.id, stopTime: b.source.stopTime, startLsn: b.source.startLsn, stopLsn: b.source.stopLsn, timeline: c.timeline, segments: c.segments.length, missing: c.missing };
            }),
          });
        }
        return out;
      });
      output(opts, { clusters: report }, () => {
        if (!report.length) return "no base backups in this repository yet; take one with \"cairn pg backup\"";
        const lines: string[] = [];
        for (const c of report) {
          lines.push(`system ${c.systemId}: ${c.backups.length} base backups, ${c.walFiles} archived WAL files`);
          for (const b of c.backups) {
            lines.push(`  ${b.id.slice(0, 8)} ${b.stopTime} ${b.startLsn}..${b.stopLsn}: ${b.missing.length ? `MISSING ${b.missing.join(", ")}` : `WAL complete (${b.segments} segments, timeline ${b.timeline})`}`);
          }
        }
        return lines.join("\n");
      });
      if (report.some((c) => c.backups.some((b) => b.missing.length))) process.exitCode = 1;
    });

  pg.command("window")
    .description("print the earliest and latest points each cluster can be recovered to")
    .option("--system-id <id>", "only this cluster")
    .action(async (o: { systemId?: string }, cmd: Command) => {
      const opts = globals(cmd);
      const windows = await withRepository(opts, "shared", "pg window", async (repo) => {
        const snapshots = await loadSnapshots(repo);
        const ids = o.systemId ? [o.systemId] : ClusterArchive.clusters(snapshots);
        const out = [];
        for (const id of ids) out.push({ systemId: id, ...(await (await ClusterArchive.load(repo, id, snapshots)).window()) });
        return out;
      });
      output(opts, { clusters: windows }, () =>
        windows.length
          ? windows.map((w) => `system ${w.systemId}: from ${w.earliest?.time ?? "-"} (LSN ${w.earliest?.lsn ?? "-"}) to ${w.latest?.time ?? "-"} (LSN ${w.latest?.lsn ?? "-"}, timeline ${w.latest?.timeline ?? "-"}); ${w.backups} base backups`).join("\n")
          : "no base backups in this repository yet; take one with \"cairn pg backup\"",
      );
    });
}

function parseTarget(o: RestoreFlags): { target: RecoveryTarget; text?: string } {
  const given = [o.time, o.lsn, o.xid, o.name, o.immediate].filter((v) => v !== undefined && v !== false);
  if (given.length > 1) throw new CairnError("give at most one of --time, --lsn, --xid, --name and --immediate");
  if (o.time !== undefined) {
    const t = new Date(o.time.trim().replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00"));
    if (Number.isNaN(t.getTime())) throw new CairnError(`cannot read the time "${o.time}": write it like 2025-01-31 12:00:00+00`);
    return { target: { kind: "time", time: t }, text: o.time };
  }
  if (o.lsn !== undefined) return { target: { kind: "lsn", lsn: parseLsn(o.lsn) }, text: o.lsn };
  if (o.xid !== undefined) {
    if (!/^\d+$/.test(o.xid)) throw new CairnError(`--xid must be a transaction id (a number), got ${o.xid}`);
    return { target: { kind: "xid", xid: BigInt(o.xid) }, text: o.xid };
  }
  if (o.name !== undefined) return { target: { kind: "name", name: o.name }, text: o.name };
  if (o.immediate) return { target: { kind: "immediate" } };
  return { target: { kind: "latest" } };
}

async function clusterId(repo: Parameters<typeof loadSnapshots>[0], given?: string): Promise<string> {
  if (given) return given;
  const ids = ClusterArchive.clusters(await loadSnapshots(repo));
  if (!ids.length) throw new CairnError("there is no base backup in this repository; take one with \"cairn pg backup\"");
  return ids[ids.length - 1];
}

/** restore_command for the new data directory (of PostgreSQL `pgMajor`): this cairn, this repository, the password file when one was given. */
function restoreCommand(opts: GlobalOptions, systemId: string, pgMajor: number): string {
  const repo = opts.repo ?? process.env.CAIRN_REPOSITORY!;
  const location = /^[a-z0-9]+:/.test(repo) ? repo : path.resolve(repo.replace(/^local:/, ""));
  const passwordFile = opts.passwordFile ?? process.env.CAIRN_PASSWORD_FILE;
  return walFetchCommand({ program: [process.execPath, path.resolve(process.argv[1])], repository: location, passwordFile: passwordFile && path.resolve(passwordFile), systemId, pgMajor: Number.isInteger(pgMajor) ? pgMajor : undefined });
}

function describeCandidate(c: Candidate) {
  return { snapshot: c.backup.id, stopTime: c.backup.source.stopTime, stopLsn: c.backup.source.stopLsn, usable: c.usable, segmentsToReplay: c.segmentsToReplay, reason: c.reason };
}

function line(c: Candidate): string {
  return `${c.backup.id.slice(0, 8)} ended ${c.backup.source.stopTime} (LSN ${c.backup.source.stopLsn}): ${c.usable ? `replays ${c.segmentsToReplay} WAL segments` : "not usable"}; ${c.reason}`;
}
