import { promises as fs } from "node:fs";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { WalArchive } from "./archive.js";

/**
 * The fast path for WAL archiving. A long-running archiver keeps the repository open
 * and pushes every file PostgreSQL has marked ready (`pg_wal/archive_status/*.ready`),
 * several at once, then leaves `<spool>/<name>.ok`. archive_command (`cairn pg
 * wal-push --spool`) then only waits for that mark, so PostgreSQL's one-at-a-time
 * calls cost a process start instead of a repository open and an upload each.
 * PostgreSQL keeps a segment until archive_command succeeds, so an archiver killed at
 * any point loses nothing: the segment is pushed again, which is idempotent.
 */
export interface SpoolOptions {
  pgdata: string;
  spool: string;
  /** Files pushed at once. */
  parallel?: number;
  pollMs?: number;
  signal?: AbortSignal;
  onPushed?: (name: string, outcome: string) => void;
  onError?: (name: string, err: Error) => void;
}

const PID_FILE = "archiver.pid";

export async function runSpoolArchiver(archive: WalArchive, o: SpoolOptions): Promise<void> {
  await fs.mkdir(o.spool, { recursive: true, mode: 0o770 });
  await fs.writeFile(path.join(o.spool, PID_FILE), `${process.pid}\n`);
  const status = path.join(o.pgdata, "pg_wal", "archive_status");
  const inFlight = new Map<string, Promise<void>>();
  const parallel = o.parallel ?? 4;
  try {
    while (!o.signal?.aborted) {
      const names = await fs.readdir(status).catch(() => [] as string[]);
      const ready = names.filter((n) => n.endsWith(".ready")).map((n) => n.slice(0, -".ready".length));
      // History files first (PostgreSQL archives them first too), then in WAL order.
      ready.sort((a, b) => Number(b.endsWith(".history")) - Number(a.endsWith(".history")) || (a < b ? -1 : 1));
      const readySet = new Set(ready);
      for (const ok of (await fs.readdir(o.spool)).filter((n) => n.endsWith(".ok"))) {
        // A mark whose file PostgreSQL no longer waits on (archived by a direct push) is stale.
        if (!readySet.has(ok.slice(0, -3))) await fs.rm(path.join(o.spool, ok), { force: true });
      }
      for (const name of ready) {
        if (inFlight.size >= parallel) break;
        if (inFlight.has(name) || (await exists(path.join(o.spool, `${name}.ok`)))) continue;
        const job = archive
          .push(path.join("pg_wal", name), o.pgdata)
          .then(async (r) => {
            await fs.writeFile(path.join(o.spool, `${name}.ok`), "");
            o.onPushed?.(name, r.outcome);
          })
          .catch((err: Error) => o.onError?.(name, err))
          .finally(() => inFlight.delete(name));
        inFlight.set(name, job);
      }
      if (inFlight.size >= parallel) await Promise.race(inFlight.values());
      else await sleep(o.pollMs ?? 100, undefined, { signal: o.signal }).catch(() => undefined);
    }
    await Promise.all(inFlight.values());
  } finally {
    await fs.rm(path.join(o.spool, PID_FILE), { force: true });
  }
}

/**
 * For archive_command: when an archiver runs on this spool, waits until it has pushed
 * `name` and consumes its mark (true); false when no archiver runs or it did not push
 * the file in time, so the caller pushes it itself.
 */
export async function awaitSpooled(spool: string, name: string, timeoutMs: number): Promise<boolean> {
  const mark = path.join(spool, `${name}.ok`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await exists(mark)) {
      await fs.rm(mark, { force: true });
      return true;
    }
    if (!(await archiverAlive(spool)) || Date.now() > deadline) return false;
    await sleep(20);
  }
}

async function archiverAlive(spool: string): Promise<boolean> {
  const pid = Number((await fs.readFile(path.join(spool, PID_FILE), "utf8").catch(() => "")).trim());
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}
