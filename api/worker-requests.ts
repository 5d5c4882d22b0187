import { randomBytes } from "node:crypto";
import { ActivityFailure, ApplicationFailure, TimeoutFailure, WorkflowFailedError, type Client } from "@temporalio/client";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  PERMANENT_FAILURES,
  REQUEST_WORKFLOW_TYPES,
  TASK_QUEUE,
  type Answer,
  type CheckSourcesInput,
  type DescribeRepositoryInput,
  type DownloadResult,
  type DownloadSnapshotInput,
  DOWNLOAD_WORKFLOW_TYPE,
  type ListSnapshotsInput,
  type MysqlRecoveryWindow,
  type MysqlRecoveryWindowInput,
  type MysqlRestoreInput,
  type MysqlRestorePreview,
  type PreparedRestore,
  type PrepareRestoreInput,
  type RecoveryWindow,
  type RecoveryWindowInput,
  type RefusalReason,
  type RegisterRepositoryInput,
  type RegisterRepositoryResult,
  type RepositoryFacts,
  type SnapshotDiff,
  type SnapshotDiffInput,
  type SnapshotPage,
  type SnapshotTreeInput,
  type SnapshotTreeListing,
} from "../workflows/messages.js";
import { ApiError } from "./errors.js";
import { policyProblem } from "./policy.js";
import { withTemporal } from "./temporal.js";

/**
 * What the API asks workers to do, because it never opens a repository or looks
 * at a path itself (it may not even share their file system). The same functions
 * a worker registers as activities (activities/requests.ts) implement it.
 */
export interface WorkerRequests {
  registerRepository(input: RegisterRepositoryInput): Promise<Answer<RegisterRepositoryResult>>;
  listSnapshots(input: ListSnapshotsInput): Promise<Answer<SnapshotPage>>;
  prepareRestore(input: PrepareRestoreInput): Promise<Answer<PreparedRestore>>;
  checkSources(input: CheckSourcesInput): Promise<Answer<null>>;
  describeRepository(input: DescribeRepositoryInput): Promise<Answer<RepositoryFacts>>;
  recoveryWindow(input: RecoveryWindowInput): Promise<Answer<RecoveryWindow>>;
  mysqlRecoveryWindow(input: MysqlRecoveryWindowInput): Promise<Answer<MysqlRecoveryWindow>>;
  previewMysqlRestore(input: MysqlRestoreInput): Promise<Answer<MysqlRestorePreview>>;
  snapshotTree(input: SnapshotTreeInput): Promise<Answer<SnapshotTreeListing>>;
  snapshotDiff(input: SnapshotDiffInput): Promise<Answer<SnapshotDiff>>;
  /**
   * Has a worker stream a snapshot's file or folder to `input.upload.url`; settles
   * when the transfer ends (or was refused before it began). Aborting `signal`
   * stops it.
   */
  downloadSnapshot(input: DownloadSnapshotInput, signal?: AbortSignal): Promise<Answer<DownloadResult>>;
}

/** How long a request waits for a worker's answer before it answers 503. */
export const ANSWER_WITHIN_MS = 60_000;

/** Workers reached through Temporal: each request is a short workflow on the task queue, waited for. */
export function temporalWorkerRequests(client: Client): WorkerRequests {
  const ask = async <T>(type: keyof typeof REQUEST_WORKFLOW_TYPES, input: unknown): Promise<Answer<T>> => {
    const workflowId = `request-${type}-${randomBytes(6).toString("hex")}`;
    const handle = await withTemporal(client, () =>
      client.workflow.start(REQUEST_WORKFLOW_TYPES[type], { workflowId, taskQueue: TASK_QUEUE, args: [input], workflowExecutionTimeout: "2 minutes" }),
    );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ApiError(503, "No worker answered", `no worker answered within ${ANSWER_WITHIN_MS / 1000} seconds; start a worker on the task queue ${TASK_QUEUE} (npm start runs one) and retry`)), ANSWER_WITHIN_MS);
    });
    const result = handle.result() as Promise<Answer<T>>;
    try {
      return await Promise.race([result, late]);
    } catch (err) {
      if (err instanceof ApiError) {
        result.catch(() => undefined);
        await handle.terminate("the API stopped waiting for an answer").catch(() => undefined);
        throw err;
      }
      throw workerFailure(err);
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    registerRepository: (input) => ask("registerRepository", input),
    listSnapshots: (input) => ask("listSnapshots", input),
    prepareRestore: (input) => ask("prepareRestore", input),
    checkSources: (input) => ask("checkSources", input),
    describeRepository: (input) => ask("describeRepository", input),
    recoveryWindow: (input) => ask("recoveryWindow", input),
    mysqlRecoveryWindow: (input) => ask("mysqlRecoveryWindow", input),
    previewMysqlRestore: (input) => ask("previewMysqlRestore", input),
    snapshotTree: (input) => ask("snapshotTree", input),
    snapshotDiff: (input) => ask("snapshotDiff", input),
    downloadSnapshot: async (input, signal) => {
      const workflowId = `download-${randomBytes(6).toString("hex")}`;
      const handle = await withTemporal(client, () => client.workflow.start(DOWNLOAD_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input], workflowExecutionTimeout: "25 hours" }));
      const stop = () => void handle.terminate("the API stopped the download (its caller went away or no worker took it)").catch(() => undefined);
      signal?.addEventListener("abort", stop, { once: true });
      try {
        return (await handle.result()) as Answer<DownloadResult>;
      } catch (err) {
        throw workerFailure(err);
      } finally {
        signal?.removeEventListener("abort", stop);
      }
    },
  };
}

/** A request that failed on the worker (not a refusal): what the caller can be told without the worker's internals. */
function workerFailure(err: unknown): unknown {
  if (!(err instanceof WorkflowFailedError)) return err;
  const activity = err.cause instanceof ActivityFailure ? err.cause.cause : err.cause;
  if (activity instanceof ApplicationFailure && activity.type === PERMANENT_FAILURES.secretKeyMismatch) return new ApiError(500, "Worker misconfigured", activity.message);
  if (activity instanceof TimeoutFailure) return new ApiError(504, "Worker too slow", "the worker did not finish the request in time; the destination may be slow or down, retry later");
  console.error("a worker request failed:", err);
  return new ApiError(502, "Worker failed", "the worker failed to answer; its log says why. Retry, and report it if it happens again");
}

const STATUS: Record<RefusalReason, { status: ContentfulStatusCode; title: string }> = {
  policy: { status: 403, title: "Refused by the execution policy" },
  wrongPassword: { status: 422, title: "Wrong repository password" },
  repositoryMissing: { status: 422, title: "Repository missing" },
  notRepository: { status: 422, title: "Not a repository" },
  unusable: { status: 422, title: "Repository unusable" },
  snapshotNotFound: { status: 404, title: "Snapshot not found" },
  snapshotAmbiguous: { status: 400, title: "Ambiguous snapshot id" },
  targetNotEmpty: { status: 409, title: "Target not empty" },
  invalid: { status: 400, title: "Cannot be done as asked" },
  pathNotFound: { status: 404, title: "Path not in the snapshot" },
  wrongFormat: { status: 400, title: "Not available in that form" },
};

/** The value of a worker's answer, or its refusal as the problem the caller gets. */
export function answered<T>(answer: Answer<T>): T {
  if (answer.ok) return answer.value;
  const { reason, message, field } = answer.refusal;
  if (reason === "policy") throw policyProblem(answer.refusal, field);
  const { status, title } = STATUS[reason];
  throw new ApiError(status, title, message, field ? [{ in: "body", path: field, message: title.toLowerCase() }] : undefined);
}
