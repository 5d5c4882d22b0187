import { proxyActivities } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import type { Answer, CheckSourcesInput, DescribeRepositoryInput, ListSnapshotsInput, PreparedRestore, PrepareRestoreInput, RegisterRepositoryInput, RegisterRepositoryResult, RepositoryFacts, SnapshotPage } from "./messages.js";

/**
 * Requests the API waits for: each runs one short activity on a worker and
 * returns its answer, so the API never opens a repository or looks at a path
 * itself. Attempted once: the caller is waiting, and retries itself if it wants.
 */
const { registerRepository, listSnapshots, prepareRestore, checkSources, describeRepository } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "50 seconds",
  retry: { maximumAttempts: 1 },
});

export async function registerRepositoryWorkflow(input: RegisterRepositoryInput): Promise<Answer<RegisterRepositoryResult>> {
  return registerRepository(input);
}

export async function listSnapshotsWorkflow(input: ListSnapshotsInput): Promise<Answer<SnapshotPage>> {
  return listSnapshots(input);
}

export async function prepareRestoreWorkflow(input: PrepareRestoreInput): Promise<Answer<PreparedRestore>> {
  return prepareRestore(input);
}

export async function checkSourcesWorkflow(input: CheckSourcesInput): Promise<Answer<null>> {
  return checkSources(input);
}

/** A repository's facts for a compliance report. */
export async function describeRepositoryWorkflow(input: DescribeRepositoryInput): Promise<Answer<RepositoryFacts>> {
  return describeRepository(input);
}
