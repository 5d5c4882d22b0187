import { promises as fs } from "node:fs";
import * as path from "node:path";
import { PREFETCH_DIR, type WalArchive } from "./archive.js";
import { parseSegmentName, segmentName, walFileKind } from "./wal.js";

/**
 * The WAL prefetcher of one recovery: a process that keeps the repository open for as
 * long as PostgreSQL recovers, the way pgBackRest's asynchronous archive-get keeps a
 * queue. Starting Node and opening the repository for each WAL file costs far more than
 * the file; here restore_command (a few lines of shell, restore.ts) talks to this
 * process through files in PREFETCH_DIR of the data directory:
 *
 *   <segment>          a whole segment fetched ahead; restore_command moves it into place
 *   <name>.want        restore_command asks for <name> now (any WAL file name)
 *   <name>.ready       the answer: the archived file, for this request only (it may be
 *                      served from a .partial, as wal-fetch does, so it never stands in
 *                      for a later request)
 *   <name>.missing     the answer: the archive does not have <name> (checked after the
 *                      request came, never from an earlier look)
 *   <name>.error       the answer: reading failed; restore_command falls back to
 *                      `cairn pg wal-fetch`, which reports it
 *   pid                this process's id while it runs
 *
 * A file here is only ever the archive's file of exactly its name for this cluster, and
 * ahead-fetched segments are whole ones: nothing is handed to PostgreSQL for another
 * name or timeline. It stops, removing the directory, shortly after recovery ends (no
 * recovery.signal or standby.signal), when the server stops (no postmaster.pid), the
 * directory is removed, or nothing was asked for IDLE_MS.
 *
 * `cairn pg restore` starts one before the server runs (awaitServer), so that the
 * server's first requests (the next timeline's history, which must be looked up in the
 * archive) find the repository open instead of starting Node. Until the server has
 * started it waits, and if it ends first (IDLE_MS) it leaves the segments fetched so
 * far for the server's first wal-fetch.
 */
export const PREFETCH_PID = "pid";

/** How long the prefetcher waits for a request before it ends (a recovery paused at its target, say). */
const IDLE_MS = 5 * 60_000;
/** How long requests are still answered once recovery has ended. */
const AFTER_RECOVERY_MS = 5000;
/** Pause between looks at the directory. */
const POLL_MS = 15;
/** How long a segment the archive did not have is left before asking again. */
const RETRY_MISSING_MS = 1000;
/** Segments fetched at once. */
const PARALLEL = 2;

export interface PrefetcherOptions {
  pgdata: string;
  systemId: string;
  /** Whole segments kept ready ahead of the newest one PostgreSQL took. */
  window: number;
  signal?: AbortSignal;
  /** Started before the server: a missing postmaster.pid does not end it until the server has run. */
  awaitServer?: boolean;
  /** Called once the pid file is written: restore_command asks this process from then on. */
  onClaimed?: () => void;
}

/** Whether a prefetcher with the pid in `dir`/pid runs (a pid file left by a killed one does not count). */
export async function prefetcherRunning(pgdata: string): Promise<boolean> {
  const pid = Number(await fs.readFile(path.join(pgdata, PREFETCH_DIR, PREFETCH_PID), "utf8").catch(() => ""));
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether `pgdata` is being recovered: PostgreSQL removes the signal file when recovery ends. */
export async function inRecovery(pgdata: string): Promise<boolean> {
  for (const f of ["recovery.signal", "standby.signal"]) if (await exists(path.join(pgdata, f))) return true;
  return false;
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

export class WalPrefetcher {
  private readonly dir: string;
  /** The newest segment PostgreSQL asked for or took: the window starts after it. */
  private last?: { name: string; segmentSize: number };
  /** Segments this process wrote ahead (present, or taken since). */
  private readonly fetched = new Set<string>();
  private readonly notBefore = new Map<string, number>();
  private lastActivity = Date.now();
  private stopped = false;
  /** When the signal file was found gone. */
  private endedAt?: number;
  /** Segments being fetched ahead now. */
  private readonly inFlight = new Map<string, Promise<boolean>>();
  /** Whether postmaster.pid was seen: the server has started on the directory. */
  private serverSeen = false;
  /** Requests being answered now: fetching ahead waits for them (both read and decrypt on this thread). */
  private answering = 0;
  /** Whether a request was answered: a prefetcher started before the server fetches nothing ahead until then. */
  private answeredOne = false;

  constructor(
    private readonly archive: WalArchive,
    private readonly o: PrefetcherOptions,
  ) {
    this.dir = path.join(o.pgdata, PREFETCH_DIR);
  }

  /** Serves requests and fetches ahead until recovery ends; false when another prefetcher already runs here. */
  async run(): Promise<boolean> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (!(await this.claim())) return false;
    this.o.onClaimed?.();
    try {
      await this.position();
      const ahead = this.fetchAhead();
      while (await this.alive()) {
        const served = await this.serveRequests();
        if (served) this.lastActivity = Date.now();
        else await new Promise((r) => setTimeout(r, POLL_MS));
      }
      this.stopped = true;
      await ahead;
    } finally {
      this.stopped = true;
      if ((await fs.readFile(path.join(this.dir, PREFETCH_PID), "utf8").catch(() => "")) === String(process.pid)) {
        // A server that never started will need what was fetched: only the pid file goes.
        if (this.o.awaitServer && !this.serverSeen) await fs.rm(path.join(this.dir, PREFETCH_PID), { force: true });
        else await fs.rm(this.dir, { recursive: true, force: true });
      }
    }
    return true;
  }

  /**
   * Writes the pid file; takes over one left by a prefetcher that no longer runs. The
   * file appears with its content (linked from a file written first): restore_command
   * that read it empty, between its creation and its write, would start cairn instead.
   */
  private async claim(): Promise<boolean> {
    const file = path.join(this.dir, PREFETCH_PID);
    const written = `${file}.${process.pid}`;
    await fs.writeFile(written, String(process.pid), { mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          await fs.link(written, file);
          return true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST" || (await prefetcherRunning(this.o.pgdata))) return false;
          await fs.rm(file, { force: true });
        }
      }
      return false;
    } finally {
      await fs.rm(written, { force: true });
    }
  }

  /** Starts the window after the newest whole segment already in the directory (what `cairn pg restore` or an earlier call fetched). */
  private async position(): Promise<void> {
    const segments = (await this.names()).filter((n) => walFileKind(n) === "segment").sort();
    for (const n of segments) this.fetched.add(n);
    const newest = segments.at(-1);
    // The window starts after it; the ones before are still to be asked for.
    const segmentSize = newest && (await this.archive.meta(this.o.systemId, newest))?.segmentSize;
    if (newest && segmentSize) this.last = { name: newest, segmentSize };
  }

  private async moveTo(name: string): Promise<void> {
    if (this.last && this.last.name.slice(0, 8) === name.slice(0, 8) && name <= this.last.name) return;
    const segmentSize = this.last?.segmentSize ?? (await this.archive.meta(this.o.systemId, name))?.segmentSize;
    if (!segmentSize) return;
    this.last = { name, segmentSize };
    // Segments before it on its timeline, and any on another timeline, will not be asked for again.
    for (const n of await this.names()) {
      if (walFileKind(n) === "segment" && (n.slice(0, 8) !== name.slice(0, 8) || n < name)) {
        await fs.rm(path.join(this.dir, n), { force: true });
        this.fetched.delete(n);
      }
    }
  }

  private async names(): Promise<string[]> {
    return fs.readdir(this.dir).catch(() => []);
  }

  private async alive(): Promise<boolean> {
    if (this.o.signal?.aborted || Date.now() - this.lastActivity > IDLE_MS) return false;
    if ((await fs.readFile(path.join(this.dir, PREFETCH_PID), "utf8").catch(() => "")) !== String(process.pid)) return false;
    if (await exists(path.join(this.o.pgdata, "postmaster.pid"))) this.serverSeen = true;
    else if (this.serverSeen || !this.o.awaitServer) return false;
    if (await inRecovery(this.o.pgdata)) return true;
    // PostgreSQL removes the signal file before its last requests (the parent timeline's
    // history, as it writes the new one): those are still answered for a moment, and
    // nothing fetched ahead is needed any more.
    if (this.endedAt === undefined) {
      this.endedAt = Date.now();
      this.stopped = true;
      for (const n of await this.names()) if (walFileKind(n) === "segment") await fs.rm(path.join(this.dir, n), { force: true });
    }
    return Date.now() - this.endedAt < AFTER_RECOVERY_MS;
  }

  /** Answers every `.want`; true when there was one, or a segment fetched ahead was taken. */
  private async serveRequests(): Promise<boolean> {
    const names = await this.names();
    const present = new Set(names);
    let any = false;
    for (const n of [...this.fetched]) {
      if (!present.has(n) && !present.has(`${n}.want`)) {
        // Taken by restore_command: the window moves on.
        any = true;
        await this.moveTo(n);
        this.fetched.delete(n);
      }
    }
    const wants = names.filter((n) => n.endsWith(".want")).map((n) => n.slice(0, -".want".length));
    this.answering += wants.length;
    try {
      await Promise.all(wants.map((name) => this.answer(name, present)));
    } finally {
      this.answering -= wants.length;
    }
    if (wants.length) this.answeredOne = true;
    return any || wants.length > 0;
  }

  private async answer(name: string, present: Set<string>): Promise<void> {
    const base = path.join(this.dir, name);
    try {
      const kind = walFileKind(name);
      if (!kind || kind === "partial") throw new Error(`${name} is not a WAL file restore_command asks for`);
      if (kind === "segment") await this.moveTo(name);
      // A segment on its way ahead is awaited rather than read twice; restore_command takes it when it lands.
      const ahead = kind === "segment" && !present.has(name) ? this.inFlight.get(name) : undefined;
      const there = (kind === "segment" && present.has(name)) || (ahead && (await ahead));
      if (!there && !(await this.archive.fetch(this.o.systemId, name, `${base}.ready`))) await fs.writeFile(`${base}.missing`, "");
    } catch (err) {
      await fs.writeFile(`${base}.error`, (err as Error).message).catch(() => undefined);
    }
    await fs.rm(`${base}.want`, { force: true });
  }

  /** Keeps the window after `last` filled with whole segments, PARALLEL at a time. */
  private async fetchAhead(): Promise<void> {
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (!this.stopped) {
          // The server waits on a request; a segment fetched ahead is needed only later. Started by pg restore,
          // the window is not filled before the server's first request, which would otherwise wait behind it.
          const next = this.answering > 0 || (this.o.awaitServer && !this.answeredOne) ? undefined : this.nextToFetch();
          if (next) await this.fetchOne(next);
          else await new Promise((r) => setTimeout(r, POLL_MS * 4));
        }
      }),
    );
  }

  private nextToFetch(): string | undefined {
    if (!this.last || this.o.window <= 0) return undefined;
    const { timeline, segno } = parseSegmentName(this.last.name, this.last.segmentSize);
    for (let i = 1; i <= this.o.window; i++) {
      const n = segmentName(timeline, segno + BigInt(i), this.last.segmentSize);
      if (this.fetched.has(n) || this.inFlight.has(n)) continue;
      if ((this.notBefore.get(n) ?? 0) > Date.now()) return undefined;
      return n;
    }
    return undefined;
  }

  private async fetchOne(name: string): Promise<boolean> {
    const dest = path.join(this.dir, name);
    // Whole segments only: a .partial served now would stand in for the whole segment archived later.
    const fetching = this.archive.fetch(this.o.systemId, name, dest, false).catch(() => false);
    this.inFlight.set(name, fetching);
    const ok = await fetching;
    this.inFlight.delete(name);
    if (ok) {
      this.fetched.add(name);
      this.notBefore.delete(name);
      // Moved past while it was on its way: it will not be asked for.
      if (this.last && (name.slice(0, 8) !== this.last.name.slice(0, 8) || name < this.last.name)) await fs.rm(dest, { force: true });
    } else {
      // Not archived (yet), or the directory went away as recovery ended: a request for it will say which.
      this.notBefore.set(name, Date.now() + RETRY_MISSING_MS);
    }
    return ok;
  }
}
