import type { Context } from "hono";
import { withoutAmbientCredentials, type Credentials } from "../backends/credentials.js";
import { destinationRefusal, hostRefusal } from "../policy/destinations.js";
import { pathRefusal } from "../policy/paths.js";
import type { ExecutionPolicy, PolicyRefusal } from "../policy/policy.js";
import { ApiError } from "./errors.js";

/**
 * The API's side of the execution policy: every route that names a path or a
 * destination asks here before it asks a worker, so a request the policy
 * refuses is a 403 before anything is touched. These checks see paths as
 * written and resolve host names; workers check again with links followed and
 * at connect time.
 */

/** A policy refusal as the API answers it, naming the field when there is one. */
export function policyProblem(refusal: { message: string }, field?: string): ApiError {
  return new ApiError(403, "Refused by the execution policy", refusal.message, field ? [{ in: "body", path: field, message: "refused by the execution policy" }] : undefined);
}

/** Throws a 403 for the first source path of a plan the policy refuses. */
export function checkSources(policy: ExecutionPolicy, paths: string[]): void {
  for (const [i, p] of paths.entries()) {
    const refusal = pathRefusal(policy, "source", p);
    if (refusal) throw policyProblem(refusal, `source.paths.${i}`);
  }
}

/** Throws a 403 when the policy refuses a restore target. */
export function checkRestoreTarget(policy: ExecutionPolicy, target: string): void {
  const refusal = pathRefusal(policy, "restore", target);
  if (refusal) throw policyProblem(refusal, "target");
}

/**
 * Throws a 403 when the policy refuses a repository location: its kind, a local
 * path outside the repository roots, or a host that is or resolves to an address
 * it refuses (judged with the credentials that will be used, which may name the
 * endpoint). No connection is opened here.
 */
export async function checkRepositoryLocation(policy: ExecutionPolicy, url: string, credentials: Credentials, environmentCredentials: boolean): Promise<void> {
  const env = { ...(environmentCredentials ? process.env : withoutAmbientCredentials(process.env)), ...credentials };
  const refusal: PolicyRefusal | undefined = await destinationRefusal(policy, url, env, { realPaths: false });
  if (refusal) throw policyProblem(refusal, "url");
}

/**
 * Throws a 403 when the policy refuses connections to a database server's host
 * (judged like a repository's host: every address it resolves to). Workers judge
 * it again when they connect, and connect to the address they judged.
 */
export async function checkDatabaseHost(policy: ExecutionPolicy, host: string): Promise<void> {
  const refusal = await hostRefusal(policy, host);
  if (refusal) throw policyProblem(refusal, "source.url");
}

/**
 * Whether the caller may let a repository use the API's and workers' own
 * credentials (their environment, ~/.aws, instance roles, ~/.ssh keys): admins
 * only, whatever permissions a role is given later.
 */
export function mayUseEnvironmentCredentials(c: Context): boolean {
  return c.get("principal").role === "admin";
}
