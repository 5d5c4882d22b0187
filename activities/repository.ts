import { ApplicationFailure } from "@temporalio/common";
import { BackendError, type Backend } from "../backends/backend.js";
import { openBackendWith, unsealCredentials, type Credentials } from "../backends/credentials.js";
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

/**
 * The backend a repository URL names (a path, s3:, sftp:, azure:, gs:), with the
 * repository's stored credentials over this worker's environment. A URL that
 * cannot name a destination fails without retry.
 */
export async function backendFor(url: string, credentials: Credentials = {}): Promise<Backend> {
  try {
    return await openBackendWith(url, credentials);
  } catch (err) {
    if (err instanceof BackendError && err.kind === "permanent") {
      throw ApplicationFailure.nonRetryable(err.message, PERMANENT_FAILURES.unsupportedRepository);
    }
    throw err;
  }
}

/**
 * Opens a target's repository with its unsealed password and credentials. Errors
 * that no retry can fix become non-retryable failures carrying the engine's message.
 */
export async function openRepository(target: RepositoryTarget, deps: ActivityDeps): Promise<Repository> {
  let password: string;
  let credentials: Credentials;
  try {
    password = deps.secretBox.open(target.sealedPassword);
    credentials = unsealCredentials(deps.secretBox, target.sealedCredentials);
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    throw ApplicationFailure.nonRetryable(
      `the password or credentials of repository ${target.id} cannot be unsealed: this worker's platform secret key differs from the API's; ` +
        "give the API and every worker the same CAIRN_SECRET_KEY (or the same <data dir>/secret.key)",
      PERMANENT_FAILURES.secretKeyMismatch,
    );
  }
  let backend: Backend | undefined;
  try {
    backend = await backendFor(target.url, credentials);
    return await Repository.open(backend, password, { threads: deps.threads, ownsBackend: true });
  } catch (err) {
    await backend?.close?.();
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
