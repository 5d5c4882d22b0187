import { browseActivities } from "../activities/browse.js";
import { requestActivities } from "../activities/requests.js";
import type { WorkerRequests } from "../api/worker-requests.js";
import type { SecretBox } from "../engine/secret-box.js";
import { loadPolicy, type ExecutionPolicy } from "../policy/policy.js";

/**
 * The execution policy of a test's deployment: plans, restores and local
 * repositories under `dir` (its temporary directory), and loopback destinations
 * allowed, since the test servers (MinIO, OpenSSH...) listen there.
 */
export function testPolicy(dir: string, dataDir: string, env: Record<string, string> = {}): ExecutionPolicy {
  return loadPolicy({ env: { CAIRN_SOURCE_ROOTS: dir, CAIRN_RESTORE_ROOTS: dir, CAIRN_REPOSITORY_ROOTS: dir, CAIRN_ALLOW_LOOPBACK: "true", ...env }, dataDir });
}

/** The same policy as environment variables, for a worker or API started as a process. */
export function testPolicyEnv(dir: string): Record<string, string> {
  return { CAIRN_SOURCE_ROOTS: dir, CAIRN_RESTORE_ROOTS: dir, CAIRN_REPOSITORY_ROOTS: dir, CAIRN_ALLOW_LOOPBACK: "true" };
}

/**
 * The worker requests run in this process: the functions a worker registers as
 * activities, called directly, for API tests that exercise the API's decisions
 * without a Temporal server (the end-to-end tests go through Temporal).
 */
export function inProcessWorkers(secretBox: SecretBox, policy: ExecutionPolicy): WorkerRequests {
  const deps = { secretBox, policy, threads: 0 };
  return { ...requestActivities(deps), ...browseActivities(deps) };
}
