import { CairnError } from "./errors.js";
import type { Repository } from "./repository.js";

/** A snapshot document (`snapshots/<id>`). */
export interface Snapshot {
  time: string;
  host: string;
  username: string;
  paths: string[];
  tags: string[];
  tree: string;
  parent?: string;
  excludes?: string[];
  program: string;
  summary?: SnapshotSummary;
  /** What a source other than plain files recorded about itself (a PostgreSQL base backup's LSNs, a dump's databases). */
  source?: SnapshotSource;
}

/** A source's own description of its snapshot; `type` names the source ("postgres"). */
export interface SnapshotSource {
  type: string;
  [field: string]: unknown;
}

export interface SnapshotSummary {
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirs: number;
  /** Bytes of file content in the snapshot. */
  totalBytes: number;
  /** Bytes actually read from the source (unchanged files are not read). */
  bytesRead: number;
  dataBlobsAdded: number;
  treeBlobsAdded: number;
  /** Plaintext bytes of new blobs. */
  dataAdded: number;
  /** Bytes of new pack files written. */
  dataAddedPacked: number;
  errors: number;
  durationSeconds: number;
}

export interface SnapshotEntry extends Snapshot {
  id: string;
}

export async function loadSnapshots(repo: Repository): Promise<SnapshotEntry[]> {
  const ids = await repo.listIds("snapshots");
  const out: SnapshotEntry[] = [];
  for (const id of ids) out.push({ id, ...(await repo.loadJSON<Snapshot>("snapshots", id)) });
  return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
}

/**
 * Resolves a snapshot reference: "latest", a full id, or a unique id prefix
 * (at least 4 hex characters), optionally filtered by host / path / tag for "latest".
 */
export async function findSnapshot(repo: Repository, ref: string, filter: SnapshotFilter = {}): Promise<SnapshotEntry> {
  const all = await loadSnapshots(repo);
  if (ref === "latest") {
    const matching = all.filter((s) => matches(s, filter));
    if (!matching.length) throw new CairnError("there is no snapshot in this repository yet (or none matching the filters); run \"cairn backup\" first");
    return matching[matching.length - 1];
  }
  if (!/^[0-9a-f]{4,64}$/.test(ref)) throw new CairnError(`"${ref}" is not a snapshot id: give "latest" or at least 4 hex characters of an id from "cairn snapshots"`);
  const found = all.filter((s) => s.id.startsWith(ref));
  if (found.length === 0) throw new CairnError(`no snapshot with id ${ref}; list them with "cairn snapshots"`);
  if (found.length > 1) throw new CairnError(`snapshot id prefix ${ref} is ambiguous (${found.length} snapshots); give more characters`);
  return found[0];
}

/**
 * The host recorded in the snapshots of Cairn plan `planId`. Whichever worker runs
 * the next backup finds the last one as its parent (and skips unchanged files), and
 * retention applies to this plan's snapshots only.
 */
export function planHost(planId: string): string {
  return `plan-${planId}`;
}

/** The tag that names the plan on each snapshot it makes. */
export function planTag(planName: string): string {
  return `plan:${planName}`;
}

export interface SnapshotFilter {
  host?: string;
  paths?: string[];
  tags?: string[];
  /** A plan's id (its snapshots' host) or name (their tag). */
  plan?: string;
}

export function matches(s: Snapshot, filter: SnapshotFilter): boolean {
  if (filter.host && s.host !== filter.host) return false;
  if (filter.plan && s.host !== planHost(filter.plan) && !s.tags.includes(planTag(filter.plan))) return false;
  if (filter.paths?.length && !sameSet(s.paths, filter.paths)) return false;
  if (filter.tags?.length && !filter.tags.every((t) => s.tags.includes(t))) return false;
  return true;
}

export function sameSet(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  const sa = [...a].sort();
  const sb = [...b].sort();
  return sa.every((x, i) => x === sb[i]);
}
