import { ApplicationFailure } from "@temporalio/common";
import { BackendError, type Backend } from "../backends/backend.js";
import { credentialProblems, openBackendWith, unsealCredentials, withoutAmbientCredentials, type Credentials } from "../backends/credentials.js";
import { IntegrityError } from "../engine/crypto.js";
import { RepositoryNotFoundError, WrongPasswordError } from "../engine/errors.js";
import { openRepositoryAt, useRepository, type LockRequest } from "../engine/open.js";
import type { Repository } from "../engine/repository.js";
import type { SecretBox } from "../engine/secret-box.js";
import { destinationRefusal, policyLookup } from "../policy/destinations.js";
import type { ExecutionPolicy, PolicyRefusal } from "../policy/policy.js";
import { PERMANENT_FAILURES, type RepositoryTarget } from "../workflows/messages.js";

/** What every activity needs from the worker process. */
export interface ActivityDeps {
  secretBox: SecretBox;
  /** What plans may read, restores write and repositories reach; checked before anything is touched. */
  policy: ExecutionPolicy;
  /** Codec worker threads per open repository (default: the engine's choice). */
  threads?: number;
  /** Jobs that may work at once across all workers (CAIRN_MAX_JOBS); no global limit when absent. Give every worker the same. */
  maxJobs?: number;
}

/** A refusal of the execution policy as a failure no retry changes; details[0] names the rule. */
export function policyFailure(refusal: PolicyRefusal): ApplicationFailure {
  return ApplicationFailure.create({ message: refusal.message, type: PERMANENT_FAILURES.policyRefused, nonRetryable: true, details: [refusal.rule] });
}

/**
 * The backend a repository names (a path, s3:, sftp:, azure:, gs:), with its
 * stored credentials, and this worker's own only when the repository was
 * registered with useEnvironmentCredentials. The execution policy judges the
 * location before anything is opened, and every address a connection resolves to
 * as it connects. A location that cannot be used fails without retry.
 */
export async function backendFor(target: Pick<RepositoryTarget, "url" | "environmentCredentials">, credentials: Credentials, deps: Pick<ActivityDeps, "policy">): Promise<Backend> {
  const ambient = target.environmentCredentials === true;
  const problem = credentialProblems(target.url, credentials, ambient)[0];
  if (problem) throw ApplicationFailure.nonRetryable(`credentials.${problem.variable}: ${problem.message}`, PERMANENT_FAILURES.invalidRequest);
  const env = { ...(ambient ? process.env : withoutAmbientCredentials(process.env)), ...credentials };
  const refusal = await destinationRefusal(deps.policy, target.url, env, { realPaths: true });
  if (refusal) throw policyFailure(refusal);
  try {
    return await openBackendWith(target.url, credentials, process.env, { ambientCredentials: ambient, lookup: policyLookup(deps.policy) });
  } catch (err) {
    if (err instanceof BackendError && err.kind === "permanent") {
      throw ApplicationFailure.nonRetryable(err.message, PERMANENT_FAILURES.unsupportedRepository);
    }
    throw err;
  }
}

/** A target's password and credentials, unsealed; a worker whose secret key differs from the API's fails without retry. */
export function unsealTarget(target: RepositoryTarget, deps: Pick<ActivityDeps, "secretBox">): { password: string; credentials: Credentials } {
  try {
    return { password: deps.secretBox.open(target.sealedPassword), credentials: unsealCredentials(deps.secretBox, target.sealedCredentials) };
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    throw ApplicationFailure.nonRetryable(
      `the password or credentials of repository ${target.id} cannot be unsealed: this worker's platform secret key differs from the API's; ` +
        "give the API and every worker the same CAIRN_SECRET_KEY (or the same <data dir>/secret.key)",
      PERMANENT_FAILURES.secretKeyMismatch,
    );
  }
}

/**
 * Opens a target's repository with its unsealed password and credentials. Errors
 * that no retry can fix become non-retryable failures carrying the engine's message.
 */
export async function openRepository(target: RepositoryTarget, deps: ActivityDeps): Promise<Repository> {
  const { password, credentials } = unsealTarget(target, deps);
  try {
    return await openRepositoryAt(await backendFor(target, credentials, deps), password, { threads: deps.threads });
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
export async function withLockedRepository<T>(target: RepositoryTarget, deps: ActivityDeps, lock: LockRequest, fn: (repo: Repository) => Promise<T>): Promise<T> {
  return useRepository(await openRepository(target, deps), lock, fn);
}

/** Runs `fn` on the open repository without a lock (reads that tolerate a concurrent writer), and always closes it. */
export async function withRepository<T>(target: RepositoryTarget, deps: ActivityDeps, fn: (repo: Repository) => Promise<T>): Promise<T> {
  return useRepository(await openRepository(target, deps), undefined, fn);
}
