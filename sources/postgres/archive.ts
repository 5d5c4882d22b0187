import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { isNotFound } from "../../backends/backend.js";
import { CairnError } from "../../engine/errors.js";
import type { Repository } from "../../engine/repository.js";
import { readSegmentHeader, summarizeSegment, systemIdFromControl, walFileKind, type SegmentHeader, type SegmentSummary, type WalFileKind } from "./wal.js";

/** What the repository records with each archived WAL file (before its bytes, in the same object). */
export interface WalFileMeta {
  name: string;
  kind: WalFileKind;
  systemId: string;
  size: number;
  sha256: string;
  archivedAt: string;
  segmentSize?: number;
  summary?: SegmentSummary;
}

export type PushOutcome = "stored" | "already-archived";

/**
 * The WAL archive of the database clusters backed up into one repository. Each file
 * is one named object, `wal/<cluster>/<file name>`, where `<cluster>` is a keyed
 * hash of the system identifier: found by name without an index, and written once.
 */
export class WalArchive {
  constructor(readonly repo: Repository) {}

  prefix(systemId: string): string {
    return `wal/${this.repo.namedId(`postgres-cluster:${systemId}`)}/`;
  }

  /**
   * Archives one file PostgreSQL hands to archive_command. `pgdata` is the cluster's
   * data directory (archive_command runs in it): its pg_control names the cluster, and
   * a segment written by another cluster is refused.
   */
  async push(file: string, pgdata: string): Promise<{ outcome: PushOutcome; meta: WalFileMeta }> {
    const name = path.basename(file);
    if (!walFileKind(name)) throw new CairnError(`${name} is not a WAL file name PostgreSQL archives (a segment, .history, .backup or .partial file); check archive_command passes %p`);
    const systemId = await clusterSystemId(pgdata);
    let data: Buffer;
    try {
      data = await fs.readFile(path.resolve(pgdata, file));
    } catch (err) {
      throw new CairnError(`cannot read ${file}: ${(err as Error).message}; archive_command must pass %p and run in the data directory (or give --pgdata)`);
    }
    return this.store(name, data, systemId, `the cluster archiving it (${pgdata})`);
  }

  /**
   * Archives a file pg_receivewal streamed for system `systemId`. A `.partial` file is
   * the one object that may be replaced, and only by a longer version of itself (the
   * same segment streamed further): the receiver pushes it each time it stops.
   */
  async pushReceived(file: string, systemId: string): Promise<{ outcome: PushOutcome | "extended"; meta: WalFileMeta }> {
    const name = path.basename(file);
    if (!walFileKind(name)) throw new CairnError(`${file} is not a WAL file pg_receivewal writes`);
    const data = await fs.readFile(file);
    const key = this.prefix(systemId) + name;
    if (walFileKind(name) === "partial") {
      const old = await this.loadExact(systemId, name);
      if (old && old.meta.sha256 !== createHash("sha256").update(data).digest("hex") && extendsWal(old.data, data)) {
        await this.repo.backend.delete(key);
        return { outcome: "extended", meta: (await this.store(name, data, systemId, "the server streaming it")).meta };
      }
    }
    return this.store(name, data, systemId, "the server streaming it");
  }

  private async store(name: string, data: Buffer, systemId: string, from: string): Promise<{ outcome: PushOutcome; meta: WalFileMeta }> {
    const kind = walFileKind(name)!;
    const meta: WalFileMeta = { name, kind, systemId, size: data.length, sha256: createHash("sha256").update(data).digest("hex"), archivedAt: new Date().toISOString() };
    if (kind === "segment" || kind === "partial") {
      const header = readSegmentHeader(data, name);
      if (header.systemId !== systemId) {
        throw new CairnError(`${name} belongs to database system ${header.systemId}, but ${from} is system ${systemId}; refusing to archive a segment of another cluster: check archive_command and what was copied into pg_wal`);
      }
      meta.segmentSize = header.segmentSize;
      meta.summary = summaryOf(data, header);
    }
    const key = this.prefix(systemId) + name;
    const existing = await this.loadMeta(key);
    if (existing) {
      if (existing.sha256 === meta.sha256) return { outcome: "already-archived", meta: existing };
      throw new CairnError(`${name} is already archived for system ${systemId} with different content; two clusters may share this repository and system identifier, or the archive holds a segment from an earlier timeline: stop and compare before removing anything`);
    }
    await this.repo.saveNamed(key, Buffer.from(JSON.stringify(meta)), data);
    return { outcome: "stored", meta };
  }

  /** Writes an archived file to `dest` (atomically); false when the archive does not have it. */
  async fetch(systemId: string, name: string, dest: string, allowPartial = true): Promise<boolean> {
    const file = await this.load(systemId, name, allowPartial);
    if (!file) return false;
    const tmp = `${dest}.cairn-${process.pid}`;
    await fs.writeFile(tmp, file.data);
    await fs.rename(tmp, dest);
    return true;
  }

  /**
   * An archived file. A segment that is not archived whole is served from its
   * `.partial` (what pg_receivewal had streamed of it when it stopped): recovery
   * replays it to its end, as far as the WAL goes.
   */
  async load(systemId: string, name: string, allowPartial = true): Promise<{ meta: WalFileMeta; data: Buffer } | undefined> {
    const file = await this.loadExact(systemId, name);
    return file ?? (allowPartial && walFileKind(name) === "segment" ? this.loadExact(systemId, `${name}.partial`) : undefined);
  }

  private async loadExact(systemId: string, name: string): Promise<{ meta: WalFileMeta; data: Buffer } | undefined> {
    let file: { meta: WalFileMeta; data: Buffer };
    try {
      const { head, body } = await this.repo.loadNamed(this.prefix(systemId) + name);
      file = { meta: JSON.parse(head.toString("utf8")) as WalFileMeta, data: body };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    if (file.meta.name !== name || file.meta.systemId !== systemId) throw new CairnError(`the archive object for ${name} holds ${file.meta.name} of system ${file.meta.systemId}; the repository was tampered with`);
    if (createHash("sha256").update(file.data).digest("hex") !== file.meta.sha256) throw new CairnError(`the archived ${name} is damaged (its checksum does not match); run "cairn pg check"`);
    return file;
  }

  /** Names (and stored sizes) of the cluster's archived files. */
  async list(systemId: string): Promise<Map<string, number>> {
    const prefix = this.prefix(systemId);
    const out = new Map<string, number>();
    for await (const o of this.repo.backend.list(prefix)) out.set(o.key.slice(prefix.length), o.size);
    return out;
  }

  async remove(systemId: string, name: string): Promise<void> {
    await this.repo.backend.delete(this.prefix(systemId) + name);
  }

  /** What the archive recorded about a file (without reading the file); undefined when it is not archived. */
  async meta(systemId: string, name: string): Promise<WalFileMeta | undefined> {
    const meta = await this.loadMeta(this.prefix(systemId) + name);
    return meta ?? (walFileKind(name) === "segment" ? this.loadMeta(this.prefix(systemId) + `${name}.partial`) : undefined);
  }

  private async loadMeta(key: string): Promise<WalFileMeta | undefined> {
    try {
      return JSON.parse((await this.repo.loadNamedHead(key)).toString("utf8")) as WalFileMeta;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}

/** Whether `next` is `previous` streamed further: every byte that differs was still zero (unwritten) in `previous`. */
function extendsWal(previous: Buffer, next: Buffer): boolean {
  if (next.length !== previous.length) return false;
  for (let i = 0; i < previous.length; i++) if (previous[i] !== next[i] && previous[i] !== 0) return false;
  return true;
}

/** The summary only guides restores: a segment it cannot read is archived all the same, without one. */
function summaryOf(data: Buffer, header: SegmentHeader): SegmentSummary | undefined {
  try {
    return summarizeSegment(data, header);
  } catch {
    return undefined;
  }
}

/** The system identifier of the cluster whose data directory is `pgdata`. */
export async function clusterSystemId(pgdata: string): Promise<string> {
  try {
    return systemIdFromControl(await fs.readFile(path.join(pgdata, "global", "pg_control")));
  } catch (err) {
    if (err instanceof CairnError) throw err;
    throw new CairnError(`cannot read ${path.join(pgdata, "global", "pg_control")}: ${(err as Error).message}; run this in the cluster's data directory (archive_command does) or give --pgdata`);
  }
}

/** Where wal-fetch keeps the segments it fetched ahead, inside the data directory being recovered. */
export const PREFETCH_DIR = path.join("pg_wal", "cairn-prefetch");

/**
 * Serves `name` from the segments a previous wal-fetch fetched ahead, without opening
 * the repository; drops prefetched segments recovery has moved past. False when it
 * was not fetched ahead.
 */
export async function takePrefetched(pgdata: string, name: string, dest: string): Promise<boolean> {
  if (walFileKind(name) !== "segment") return false;
  const dir = path.join(pgdata, PREFETCH_DIR);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  for (const n of names) if (n.slice(0, 8) === name.slice(0, 8) && n < name) await fs.rm(path.join(dir, n), { force: true });
  if (!names.includes(name)) return false;
  await fs.rename(path.join(dir, name), dest);
  return true;
}

/**
 * Removes what was fetched ahead. Called when PostgreSQL asks for a timeline history
 * the archive does not have, which it does as recovery ends (looking for a timeline
 * to switch to), so a promoted cluster keeps no prefetched segments.
 */
export async function dropPrefetched(pgdata: string): Promise<void> {
  await fs.rm(path.join(pgdata, PREFETCH_DIR), { recursive: true, force: true });
}
