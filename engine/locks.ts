import { hostname } from "node:os";
import { LockedError } from "./errors.js";
import type { Repository } from "./repository.js";

/** A lock file's content. */
export interface LockInfo {
  host: string;
  pid: number;
  time: string;
  /** The lease: after this moment the lock counts as stale, whoever holds it. */
  expires: string;
  exclusive: boolean;
  operation: string;
}

export interface LockOptions {
  exclusive: boolean;
  operation: string;
  /** How long to keep trying when the repository is locked (ms); 0 fails at once. */
  retryFor?: number;
  /** Lease length (ms); the holder refreshes it at a third of this. */
  leaseMs?: number;
  now?: () => number;
}

export const DEFAULT_LEASE_MS = 5 * 60 * 1000;

/** True when a lock no longer protects anything: its lease ran out, or its process on this host is gone. */
export function isStale(lock: LockInfo, now: number, host = hostname()): boolean {
  if (Date.parse(lock.expires) < now) return true;
  if (lock.host === host && !processAlive(lock.pid)) return true;
  return false;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readLocks(repo: Repository): Promise<{ id: string; lock: LockInfo }[]> {
  const out: { id: string; lock: LockInfo }[] = [];
  for (const id of await repo.listIds("locks")) {
    try {
      out.push({ id, lock: await repo.loadJSON<LockInfo>("locks", id) });
    } catch {
      // being replaced or deleted by its holder right now
    }
  }
  return out;
}

/**
 * A held lock. Shared locks (backup, restore, check) coexist; an exclusive lock
 * (prune, forget) excludes every other. The lock file is rewritten before its lease
 * runs out, so a crashed process blocks the repository for one lease at most.
 */
export class RepositoryLock {
  private id?: string;
  private timer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;

  private constructor(private readonly repo: Repository, private readonly options: LockOptions) {}

  static async acquire(repo: Repository, options: LockOptions): Promise<RepositoryLock> {
    const lock = new RepositoryLock(repo, options);
    await lock.take();
    return lock;
  }

  /** Lists locks that are not stale and would conflict with a lock of this kind. */
  static async conflicts(repo: Repository, exclusive: boolean, now = Date.now(), ignore?: string): Promise<{ id: string; lock: LockInfo }[]> {
    const all = await readLocks(repo);
    return all.filter(({ id, lock }) => id !== ignore && !isStale(lock, now) && (exclusive || lock.exclusive));
  }

  /** Deletes stale locks; returns how many were removed. */
  static async removeStale(repo: Repository, now = Date.now()): Promise<number> {
    let n = 0;
    for (const { id, lock } of await readLocks(repo)) {
      if (isStale(lock, now)) {
        await repo.backend.delete(`locks/${id}`);
        n++;
      }
    }
    return n;
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private async take(): Promise<void> {
    const deadline = this.now() + (this.options.retryFor ?? 0);
    let delay = 200;
    for (;;) {
      const before = await RepositoryLock.conflicts(this.repo, this.options.exclusive, this.now());
      if (before.length === 0) {
        this.id = await this.write();
        const after = await RepositoryLock.conflicts(this.repo, this.options.exclusive, this.now(), this.id);
        if (after.length === 0) break;
        await this.repo.backend.delete(`locks/${this.id}`);
        this.id = undefined;
        if (this.now() >= deadline) throw new LockedError(describe(after[0].lock));
      } else if (this.now() >= deadline) {
        throw new LockedError(describe(before[0].lock));
      }
      await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
      delay = Math.min(delay * 2, 5000);
    }
    const lease = this.options.leaseMs ?? DEFAULT_LEASE_MS;
    this.timer = setInterval(() => {
      this.refreshing = this.refresh().catch(() => undefined);
    }, Math.max(1000, lease / 3));
    this.timer.unref();
  }

  private async write(): Promise<string> {
    const now = this.now();
    const info: LockInfo = {
      host: hostname(),
      pid: process.pid,
      time: new Date(now).toISOString(),
      expires: new Date(now + (this.options.leaseMs ?? DEFAULT_LEASE_MS)).toISOString(),
      exclusive: this.options.exclusive,
      operation: this.options.operation,
    };
    return this.repo.saveJSON("locks", info);
  }

  private async refresh(): Promise<void> {
    if (!this.id) return;
    const old = this.id;
    this.id = await this.write();
    await this.repo.backend.delete(`locks/${old}`);
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.refreshing;
    if (this.id) await this.repo.backend.delete(`locks/${this.id}`);
    this.id = undefined;
  }
}

function describe(lock: LockInfo): string {
  return `${lock.exclusive ? "an exclusive" : "a"} lock held by ${lock.operation} (pid ${lock.pid} on ${lock.host}, since ${lock.time}, lease until ${lock.expires})`;
}
