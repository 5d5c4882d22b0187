import { ApplicationFailure } from "@temporalio/common";
import { LocalBackend } from "../backends/local.js";
import type { Backend } from "../backends/backend.js";
import { IntegrityError } from "../engine/crypto.js";
import { RepositoryNotFoundError, WrongPasswordError } from "../engine/errors.js";
import { RepositoryLock, type LockOptions } from "../engine/locks.js";
import { Repository } from "../engine/repository.js";
import type { SecretBox } from "../engine/secret-box.js";
import { PERMANENT_FAILURES, type RepositoryTarget } from "../workflows/messages.js";

/** What every activity needs from the worker process. */
export interface ActivityDeps {
  secretBox: SecretBox;
  /** Codec worker threads per open repository (default: the engine's choice). */
  threads?: number;
}

/** The backend a repository URL names: a local path, or `local:<path>`. */
export function backendFor(url: string): Backend {
  if (/^[a-z0-9]+:/i.test(url) && !url.startsWith("local:")) {
    throw ApplicationFailure.nonRetryable(
      `repository URL ${url} names a backend this worker does not support yet; use a local path`,
      PERMANENT_FAILURES.unsupportedRepository,
    );
  }
  return new LocalBackend(url.replace(/^local:/, ""));
}

/**
 * Opens a target's repository with its unsealed password. Errors that no retry can
 * fix become non-retryable failures carrying the engine's message.
 */
export async function openRepository(target: RepositoryTarget, deps: ActivityDeps): Promise<Repository> {
  let password: string;
  try {
    password = deps.secretBox.open(target.sealedPassword);
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    throw ApplicationFailure.nonRetryable(
      `the password of repository ${target.id} cannot be unsealed: this worker's platform secret key differs from the API's; ` +
        "give the API and every worker the same CAIRN_SECRET_KEY (or the same <data dir>/secret.key)",
      PERMANENT_FAILURES.secretKeyMismatch,
    );
  }
  try {
    return await Repository.open(backendFor(target.url), password, { threads: deps.threads });
  } catch (err) {
    throw permanentOrSame(err);
  }
}

/** Maps the engine's permanent errors to non-retryable failures; anything else is returned as it is. */
export function permanentOrSame(err: unknown): unknown {
  if (err instanceof WrongPasswordError || err instanceof RepositoryNotFoundError) {
    return ApplicationFailure.nonRetryable(err.message, err.name);
  }
  return err;
}

/**
 * Runs `fn` on the open repository under a lock, and always releases the lock and
 * closes the repository. A conflicting lock is waited for `retryFor` at most (the
 * activity keeps heartbeating meanwhile); then the attempt fails with LockedError
 * and Temporal retries it with backoff.
 */
export async function withLockedRepository<T>(
  target: RepositoryTarget,
  deps: ActivityDeps,
  lock: Pick<LockOptions, "exclusive" | "operation" | "retryFor">,
  fn: (repo: Repository) => Promise<T>,
): Promise<T> {
  const repo = await openRepository(target, deps);
  let held: RepositoryLock | undefined;
  try {
    held = await RepositoryLock.acquire(repo, lock);
    return await fn(repo);
  } finally {
    await held?.release().catch(() => undefined);
    await repo.close();
  }
}
