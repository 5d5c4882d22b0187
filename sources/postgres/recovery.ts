import { CairnError } from "../../engine/errors.js";
import type { Repository } from "../../engine/repository.js";
import { loadSnapshots, type SnapshotEntry } from "../../engine/snapshot.js";
import { TreeLoader, walkTree } from "../../engine/tree.js";
import { WalArchive, type WalFileMeta } from "./archive.js";
import { baseBackups, type PgBaseBackupInfo } from "./basebackup.js";
import { formatLsn, parseHistory, parseLsn, parseSegmentName, segmentName, segnoOf, walFileKind, type TimelineSwitch } from "./wal.js";

export type BaseBackup = SnapshotEntry & { source: PgBaseBackupInfo };

/** Where recovery should stop. */
export type RecoveryTarget =
  | { kind: "latest" }
  | { kind: "immediate" }
  | { kind: "time"; time: Date }
  | { kind: "lsn"; lsn: bigint }
  | { kind: "xid"; xid: bigint }
  | { kind: "name"; name: string };

/** A base backup's WAL chain: from its start, through timeline switches, as far as the archive has every segment. */
export interface WalChain {
  backup: BaseBackup;
  /** The timeline recovery ends on ('latest' descending from the backup's). */
  timeline: number;
  /** The last segment number of the unbroken chain (at least the backup's own, which it carries). */
  reachSegno: bigint;
  /** Segment files missing between the backup's start and the newest archived segment. */
  missing: string[];
  /** The segment files of the unbroken chain, in order. */
  segments: string[];
}

/** What one base backup can recover: from its end to where its WAL chain is unbroken. */
export interface BackupReach {
  backup: string;
  endTime: string;
  endLsn: string;
  until: { time: string; lsn: string; timeline: number };
  /** The first segment missing past the chain's end, when newer WAL exists beyond it (a gap). */
  breaksAt?: string;
}

/** Everything the repository holds for one database cluster. */
export class ClusterArchive {
  private readonly metas = new Map<string, Promise<WalFileMeta | undefined>>();

  private constructor(
    readonly archive: WalArchive,
    readonly systemId: string,
    readonly backups: BaseBackup[],
    readonly files: Map<string, number>,
    private readonly histories: Map<number, TimelineSwitch[]>,
  ) {}

  static async load(repo: Repository, systemId: string, snapshots?: SnapshotEntry[]): Promise<ClusterArchive> {
    const archive = new WalArchive(repo);
    const backups = baseBackups(snapshots ?? (await loadSnapshots(repo))).filter((b) => b.source.systemId === systemId);
    const files = await archive.list(systemId);
    const histories = new Map<number, TimelineSwitch[]>();
    for (const name of files.keys()) {
      if (walFileKind(name) !== "history") continue;
      const f = await archive.load(systemId, name);
      if (f) histories.set(parseInt(name.slice(0, 8), 16), parseHistory(f.data.toString("utf8")));
    }
    return new ClusterArchive(archive, systemId, backups, files, histories);
  }

  /** System identifiers of the clusters that have base backups, newest backup's last. */
  static clusters(snapshots: SnapshotEntry[]): string[] {
    const ids: string[] = [];
    for (const b of baseBackups(snapshots)) {
      const i = ids.indexOf(b.source.systemId);
      if (i >= 0) ids.splice(i, 1);
      ids.push(b.source.systemId);
    }
    return ids;
  }

  meta(name: string): Promise<WalFileMeta | undefined> {
    let m = this.metas.get(name);
    if (!m) this.metas.set(name, (m = this.archive.meta(this.systemId, name)));
    return m;
  }

  /**
   * The timeline recovery from this backup follows: the newest one whose history
   * branches off the backup's timeline after the backup started. Returns, oldest
   * first, each timeline with the LSN it begins at.
   */
  private timelinePath(b: BaseBackup): { timeline: number; begin: bigint }[] {
    const start = parseLsn(b.source.startLsn);
    let best: { timeline: number; begin: bigint }[] = [{ timeline: b.source.timeline, begin: 0n }];
    for (const [tli, history] of this.histories) {
      const i = history.findIndex((h) => h.parent === b.source.timeline);
      if (tli <= best[best.length - 1].timeline || i < 0 || history[i].switchLsn < start) continue;
      const path = [{ timeline: b.source.timeline, begin: 0n }];
      for (let k = i; k < history.length; k++) path.push({ timeline: k + 1 < history.length ? history[k + 1].parent : tli, begin: history[k].switchLsn });
      best = path;
    }
    return best;
  }

  chain(b: BaseBackup): WalChain {
    const size = b.source.segmentSize;
    const path = this.timelinePath(b);
    const fileFor = (segno: bigint) => {
      let tli = path[0].timeline;
      for (const p of path) if (segnoOf(p.begin, size) <= segno) tli = p.timeline;
      return segmentName(tli, segno, size);
    };
    const onPath = new Set(path.map((p) => p.timeline));
    let newest = segnoOf(parseLsn(b.source.stopLsn), size);
    for (const name of this.files.keys()) {
      const kind = walFileKind(name);
      if (kind !== "segment" && kind !== "partial") continue;
      const id = parseSegmentName(name, size);
      if (onPath.has(id.timeline) && id.segno > newest) newest = id.segno;
    }
    const first = segnoOf(parseLsn(b.source.startLsn), size);
    const stop = segnoOf(parseLsn(b.source.stopLsn), size);
    const segments: string[] = [];
    const missing: string[] = [];
    let reach: bigint | undefined;
    for (let s = first; s <= newest; s++) {
      const name = fileFor(s);
      // The newest segment may be archived only as the .partial pg_receivewal streamed (served in its place).
      if (this.files.has(name) || (s === newest && this.files.has(`${name}.partial`))) {
        if (reach === undefined) segments.push(name);
      } else {
        missing.push(name);
        // The backup carries the WAL up to its own end (-X fetch): a gap there does not break recovery to its end.
        if (reach === undefined && s > stop) reach = s - 1n;
      }
    }
    return { backup: b, timeline: path[path.length - 1].timeline, reachSegno: reach ?? newest, missing, segments };
  }

  /**
   * Earliest and latest points this cluster can be recovered to, and what each
   * base backup reaches: from its end as far as its WAL chain is unbroken (where
   * it breaks, the first missing segment). Stretches no backup reaches are gaps.
   */
  async window(): Promise<{ earliest?: { time: string; lsn: string; backup: string }; latest?: { time?: string; lsn: string; timeline: number }; backups: number; reach: BackupReach[] }> {
    if (!this.backups.length) return { backups: 0, reach: [] };
    const oldest = this.backups[0];
    let latest: { time?: string; lsn: string; timeline: number } | undefined;
    const reach: BackupReach[] = [];
    for (const b of this.backups) {
      const c = this.chain(b);
      const size = b.source.segmentSize;
      const end = (c.reachSegno + 1n) * BigInt(size);
      const stopLsn = parseLsn(b.source.stopLsn);
      const lsn = end > stopLsn && c.segments.length ? end : stopLsn;
      const time = (await this.lastCommit(c)) ?? b.source.stopTime;
      const breaksAt = c.missing.find((name) => parseSegmentName(name, size).segno > c.reachSegno);
      reach.push({ backup: b.id, endTime: b.source.stopTime, endLsn: b.source.stopLsn, until: { time, lsn: formatLsn(lsn), timeline: c.timeline }, ...(breaksAt ? { breaksAt } : {}) });
      if (latest && parseLsn(latest.lsn) >= lsn) continue;
      latest = { lsn: formatLsn(lsn), timeline: c.timeline, time };
    }
    return { earliest: { time: oldest.source.stopTime, lsn: oldest.source.stopLsn, backup: oldest.id }, latest, backups: this.backups.length, reach };
  }

  /**
   * The newest WAL segment the archive holds (highest timeline and segment number,
   * a streamed .partial counting as its segment) and when it was archived: how far
   * behind the primary the archive may be. Undefined while nothing is archived.
   */
  async lastArchived(): Promise<{ file: string; at: string } | undefined> {
    let newest: string | undefined;
    for (const name of this.files.keys()) {
      const kind = walFileKind(name);
      if ((kind === "segment" || kind === "partial") && (!newest || name.slice(0, 24) > newest.slice(0, 24) || (name.slice(0, 24) === newest.slice(0, 24) && kind === "segment"))) newest = name;
    }
    if (!newest) return undefined;
    const meta = await this.meta(newest);
    return meta ? { file: newest, at: meta.archivedAt } : undefined;
  }

  /** The time of the last commit in a chain (newest segments first, stopping at the first that has one). */
  private async lastCommit(c: WalChain): Promise<string | undefined> {
    for (let i = c.segments.length - 1; i >= 0; i--) {
      const m = await this.meta(c.segments[i]);
      if (m?.summary?.lastCommit) return m.summary.lastCommit > c.backup.source.stopTime ? m.summary.lastCommit : undefined;
    }
    return undefined;
  }

  /**
   * Chooses the base backup to recover from: the newest complete one (every blob of
   * its snapshot in the index) that ends before the target and whose WAL chain
   * reaches it. Throws an error that names the earliest or latest recoverable point,
   * or the missing segment, when none can.
   */
  async choose(target: RecoveryTarget, repo: Repository): Promise<{ chosen: Candidate; alternatives: Candidate[] }> {
    if (!this.backups.length) throw new CairnError(`there is no base backup of system ${this.systemId}; take one with "cairn pg backup"`);
    const point = await this.locate(target);
    const candidates: Candidate[] = [];
    for (const b of [...this.backups].reverse()) candidates.push(await this.assess(b, point, repo));
    const usable = candidates.filter((c) => c.usable);
    if (!usable.length) throw await this.explainNone(target, point, candidates);
    return { chosen: usable[0], alternatives: candidates.filter((c) => c !== usable[0]).slice(0, 2) };
  }

  /** Finds where in the WAL a target lies, as far as the archive's segment summaries tell. */
  private async locate(target: RecoveryTarget): Promise<TargetPoint> {
    switch (target.kind) {
      case "latest":
      case "immediate":
        return {};
      case "lsn":
        return { lsn: target.lsn };
      case "time":
        return { time: target.time.toISOString() };
      case "xid":
      case "name": {
        for (const name of [...this.files.keys()].filter((n) => walFileKind(n) === "segment").sort()) {
          const s = (await this.meta(name))?.summary;
          if (!s) continue;
          if (target.kind === "name") {
            const rp = s.restorePoints.find((r) => r.name === target.name);
            if (rp) return { lsn: parseLsn(rp.lsn), segment: name };
          } else if (s.minXid !== undefined && BigInt(s.minXid) <= (target.xid & 0xffffffffn) && (target.xid & 0xffffffffn) <= BigInt(s.maxXid!)) {
            return { xid: target.xid, segment: name };
          }
        }
        if (target.kind === "name") {
          const names = await this.restorePointNames();
          throw new CairnError(`no restore point named "${target.name}" is in the archived WAL of system ${this.systemId}${names.length ? `; it has: ${names.join(", ")}` : "; create one with SELECT pg_create_restore_point('name')"}`);
        }
        throw new CairnError(`transaction ${target.xid} did not commit in the archived WAL of system ${this.systemId}: check the id (SELECT pg_current_xact_id() in that transaction), or wait until its segment is archived`);
      }
    }
  }

  private async restorePointNames(): Promise<string[]> {
    const out: string[] = [];
    for (const name of this.files.keys()) for (const r of (await this.meta(name))?.summary?.restorePoints ?? []) out.push(r.name);
    return out;
  }

  private async assess(b: BaseBackup, point: TargetPoint, repo: Repository): Promise<Candidate> {
    const c = this.chain(b);
    const size = BigInt(b.source.segmentSize);
    const stopSeg = segnoOf(parseLsn(b.source.stopLsn), b.source.segmentSize);
    const base = { backup: b, chain: c, segmentsToReplay: Number(c.reachSegno - stopSeg) };
    if (point.lsn !== undefined && parseLsn(b.source.stopLsn) > point.lsn) return { ...base, usable: false, reason: `it ends at ${b.source.stopLsn}, after the target` };
    if (point.time && b.source.stopTime > point.time) return { ...base, usable: false, reason: `it ends at ${b.source.stopTime}, after the target` };
    if (point.xid !== undefined && BigInt(b.source.nextXid) > point.xid) return { ...base, usable: false, reason: `transactions from ${b.source.nextXid} on commit after it; the target is older` };
    let needSeg = c.reachSegno;
    if (point.lsn !== undefined) needSeg = point.lsn / size;
    if (point.segment) needSeg = parseSegmentName(point.segment, b.source.segmentSize).segno;
    if (point.time) {
      const seg = await this.firstCommitAfter(c, point.time);
      if (seg === undefined) {
        // A commit after the target may be in WAL the chain cannot reach: name the gap rather than blame the target.
        if (c.missing.length) return { ...base, usable: false, reason: `its WAL chain breaks at missing segment ${c.missing[0]}` };
        return { ...base, usable: false, reason: `its WAL has no commit after the target (WAL reaches segment ${segmentName(c.timeline, c.reachSegno, b.source.segmentSize)})` };
      }
      needSeg = seg;
    }
    if (needSeg > c.reachSegno) {
      const gap = c.missing[0];
      return { ...base, usable: false, reason: gap ? `its WAL chain breaks at missing segment ${gap}` : `the archived WAL ends before the target (last segment ${c.segments[c.segments.length - 1] ?? "none"})` };
    }
    const missingBlob = await firstMissingBlob(repo, b.tree);
    if (missingBlob) return { ...base, usable: false, reason: `its data is incomplete (${missingBlob}); run "cairn check"` };
    return { ...base, segmentsToReplay: Number(needSeg > stopSeg ? needSeg - stopSeg : 0n), usable: true, reason: "newest complete base backup before the target whose WAL reaches it" };
  }

  /** The segment number holding the first commit after `time` in a chain, if the archive has one. */
  private async firstCommitAfter(c: WalChain, time: string): Promise<bigint | undefined> {
    for (const name of c.segments) {
      const s = (await this.meta(name))?.summary;
      if (s?.lastCommit && s.lastCommit > time) return parseSegmentName(name, c.backup.source.segmentSize).segno;
    }
    return undefined;
  }

  private async explainNone(target: RecoveryTarget, point: TargetPoint, candidates: Candidate[]): Promise<CairnError> {
    const w = await this.window();
    const oldest = this.backups[0].source;
    if ((point.time && point.time < oldest.stopTime) || (point.lsn !== undefined && point.lsn < parseLsn(oldest.stopLsn))) {
      return new CairnError(`the target is before the earliest recoverable point (${oldest.stopTime}, LSN ${oldest.stopLsn}, the end of the oldest base backup ${this.backups[0].id.slice(0, 8)}); choose a later target`);
    }
    const broken = candidates.find((c) => c.reason.includes("missing segment"));
    if (broken) return new CairnError(`no base backup can reach the target: the WAL chain of ${broken.backup.id.slice(0, 8)} breaks at missing segment ${broken.chain.missing[0]}; recover to an earlier target, or put that segment back into the archive`);
    if (target.kind === "time" || target.kind === "lsn" || target.kind === "xid") {
      return new CairnError(`the target is after the latest recoverable point (${w.latest?.time ?? "?"}, LSN ${w.latest?.lsn ?? "?"}): the archive has no WAL past it yet; choose an earlier target or wait for more WAL to be archived`);
    }
    return new CairnError(`no base backup of system ${this.systemId} can be used: ${candidates.map((c) => `${c.backup.id.slice(0, 8)}: ${c.reason}`).join("; ")}`);
  }
}

interface TargetPoint {
  lsn?: bigint;
  time?: string;
  xid?: bigint;
  /** The segment that holds the target (a restore point, a transaction's commit). */
  segment?: string;
}

/** One base backup weighed for a recovery; fewer segments to replay is better. */
export interface Candidate {
  backup: BaseBackup;
  chain: WalChain;
  usable: boolean;
  reason: string;
  segmentsToReplay: number;
}

async function firstMissingBlob(repo: Repository, tree: string): Promise<string | undefined> {
  try {
    for await (const { path, node } of walkTree(new TreeLoader(repo), tree)) {
      for (const id of node.content ?? []) if (!repo.hasBlob(Buffer.from(id, "hex"))) return `a blob of ${path} is missing`;
    }
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}
