import type { Backend } from "../backends/backend.js";
import { RepositoryLock, type LockOptions } from "./locks.js";
import { Repository, type OpenOptions } from "./repository.js";

/** The lock a piece of work holds on a repository: shared (backup, restore, check) or exclusive (prune, forget). */
export type LockRequest = Pick<LockOptions, "exclusive" | "operation" | "retryFor">;

export interface UseOptions extends Omit<OpenOptions, "ownsBackend"> {
  /** The lock to hold while the work runs; none when absent. */
  lock?: LockRequest;
}

/**
 * Opens the repository at `backend`, which it owns from the call on: the backend is
 * closed with the repository, or at once when opening fails.
 */
export async function openRepositoryAt(backend: Backend, password: string, options: Omit<OpenOptions, "ownsBackend"> = {}): Promise<Repository> {
  try {
    return await Repository.open(backend, password, { ...options, ownsBackend: true });
  } catch (err) {
    await backend.close?.();
    throw err;
  }
}

/**
 * Opens the repository at `backend` (which it owns, see openRepositoryAt), holds
 * `options.lock` while `fn` runs, and always closes the repository and the backend.
 * The CLI's commands and the workers' activities all work on a repository this way.
 */
export async function withRepositoryAt<T>(backend: Backend, password: string, options: UseOptions, fn: (repo: Repository) => Promise<T>): Promise<T> {
  const { lock, ...open } = options;
  return useRepository(await openRepositoryAt(backend, password, open), lock, fn);
}

/** Holds `lock` on an open repository while `fn` runs, then closes the repository whatever happened. */
export async function useRepository<T>(repo: Repository, lock: LockRequest | undefined, fn: (repo: Repository) => Promise<T>): Promise<T> {
  try {
    return await withLock(repo, lock, () => fn(repo));
  } finally {
    await repo.close();
  }
}

/**
 * Runs `fn` while holding `lock` on an open repository (nothing when undefined) and
 * releases it afterwards. A release that fails is ignored: the lock's lease ends on
 * its own.
 */
export async function withLock<T>(repo: Repository, lock: LockRequest | undefined, fn: () => Promise<T>): Promise<T> {
  const held = lock && (await RepositoryLock.acquire(repo, lock));
  try {
    return await fn();
  } finally {
    await held?.release().catch(() => undefined);
  }
}
