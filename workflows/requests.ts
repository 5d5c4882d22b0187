import { proxyActivities } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import type { Answer, CheckSourcesInput, DownloadResult, DownloadSnapshotInput, SnapshotDiff, SnapshotDiffInput, SnapshotTreeInput, SnapshotTreeListing, DescribeRepositoryInput, ListSnapshotsInput, PreparedRestore, PrepareRestoreInput, RegisterRepositoryInput, RegisterRepositoryResult, RepositoryFacts, SnapshotPage } from "./messages.js";

/**
 * Requests the API waits for: each runs one short activity on a worker and
 * returns its answer, so the API never opens a repository or looks at a path
 * itself. Attempted once: the caller is waiting, and retries itself if it wants.
 */
const { registerRepository, listSnapshots, prepareRestore, checkSources, describeRepository, snapshotTree, snapshotDiff } = proxyActivities<CairnActivities>({
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

/** One directory of a snapshot. */
export async function snapshotTreeWorkflow(input: SnapshotTreeInput): Promise<Answer<SnapshotTreeListing>> {
  return snapshotTree(input);
}

/** The changes between two snapshots. */
export async function snapshotDiffWorkflow(input: SnapshotDiffInput): Promise<Answer<SnapshotDiff>> {
  return snapshotDiff(input);
}

/**
 * A download runs as long as its caller takes the bytes: no time limit but the
 * heartbeat, which stops a worker that died mid-transfer. Attempted once: a
 * stream cannot resume where another attempt stopped.
 */
const { downloadSnapshot } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "24 hours",
  heartbeatTimeout: "1 minute",
  retry: { maximumAttempts: 1 },
});

/** Streams a snapshot's file or folder to the API's upload address. */
export async function downloadSnapshotWorkflow(input: DownloadSnapshotInput): Promise<Answer<DownloadResult>> {
  return downloadSnapshot(input);
}
