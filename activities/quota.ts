/**
 * The quota check of a backup's prepare step: the repository's size now plus
 * what the backup is expected to add, against the repository's quota, before
 * anything is uploaded.
 */
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { ApplicationFailure } from "@temporalio/common";
import type { Repository } from "../engine/repository.js";
import { loadSnapshots, planHost } from "../engine/snapshot.js";
import { PERMANENT_FAILURES, type BackupInput } from "../workflows/messages.js";

/** The bytes of the repository's packs, the figure the quota limits (as the record step reports it). */
export async function packBytes(repo: Repository): Promise<number> {
  let bytes = 0;
  for await (const obj of repo.backend.list("data/")) bytes += obj.size;
  return bytes;
}

/**
 * What the backup is expected to add: what the plan's last snapshot stored (its
 * packed new data), or for a plan's first backup of files the source's size on
 * disk (a stat-only walk, without following links, that stops once `enough` is
 * reached; compression may make the real backup smaller). A database's first
 * backup has no estimate: 0.
 */
export async function estimateAddedBytes(repo: Repository, input: BackupInput, enough: number): Promise<{ bytes: number; basis: string }> {
  const host = planHost(input.planId);
  const last = (await loadSnapshots(repo)).filter((s) => s.host === host && s.summary).at(-1);
  if (last?.summary) return { bytes: last.summary.dataAddedPacked, basis: `going by what the plan's last backup stored (its snapshot of ${last.time})` };
  if (input.source.type !== "files") return { bytes: 0, basis: "with no earlier backup of the plan to go by" };
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    if (total > enough) return;
    const st = await fs.lstat(p).catch(() => undefined);
    if (!st) return;
    if (st.isFile()) total += st.size;
    else if (st.isDirectory()) {
      const names = await fs.readdir(p).catch(() => [] as string[]);
      for (const name of names) await walk(path.join(p, name));
    }
  };
  for (const p of input.source.paths) await walk(p);
  return { bytes: total, basis: total > enough ? "going by the source's size on disk, counted until it passed the quota" : "going by the source's size on disk before compression, this being the plan's first backup" };
}

/** Fails the backup, permanently and before anything is uploaded, when the repository's size plus the estimate passes the quota. */
export async function checkQuota(repo: Repository, input: BackupInput): Promise<void> {
  const quota = input.quotaBytes;
  if (!quota) return;
  const used = await packBytes(repo);
  const estimate = await estimateAddedBytes(repo, input, quota - used);
  if (used + estimate.bytes <= quota) return;
  throw ApplicationFailure.nonRetryable(
    `the backup of plan ${input.planName} would pass repository ${input.repository.id}'s quota of ${formatBytes(quota)}: ` +
      `the repository holds ${formatBytes(used)}, ${Math.round((used / quota) * 100)}% of it, and this backup is expected to add ${formatBytes(estimate.bytes)}, ${estimate.basis}. ` +
      `Nothing was uploaded. Raise the quota (PATCH /v1/repositories/${input.repository.id} with {"quotaBytes": ...}) or free space (tighten the plans' retention, forget old snapshots and prune)`,
    PERMANENT_FAILURES.quotaExceeded,
  );
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]} (${n} bytes)`;
}
