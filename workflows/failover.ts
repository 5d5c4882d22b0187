import { allHandlersFinished, ApplicationFailure, condition, getExternalWorkflowHandle, isCancellation, proxyActivities, setHandler, workflowInfo } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import { failoverStatusQuery, FAILOVER_REFUSED, PERMANENT_FAILURES, releaseStandbySignal, standbyReleasedSignal, type FailoverInput, type FailoverNotificationEvent, type FailoverResult, type FailoverStatus, type FailoverStep, type FailoverStepName, type RecoveryInput } from "./messages.js";
import { innermostMessage, sendToChannels } from "./notifications.js";
import { ensureSearchAttributes } from "./status.js";

const nonRetryableErrorTypes = [...Object.values(PERMANENT_FAILURES), FAILOVER_REFUSED];

/** Checks and switches: quick; a transient error (a connection reset) is tried again, a refusal never. */
const { validateFailover, verifyNewPrimary, validateRecovery, prepareRecovery } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "2 minutes",
  retry: { initialInterval: "1s", maximumAttempts: 3, nonRetryableErrorTypes },
});

/** Waiting for the archive, stopping a server, promoting: minutes at most, heartbeating. */
const { archiveLastWal, fenceOldPrimary, promoteNewPrimary, cutOver } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "15 minutes",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "1s", maximumAttempts: 3, nonRetryableErrorTypes },
});

/** Without a standby, the latest state is restored first: long, as a recovery's restore and replay are. */
const { restoreRecovery, startRecovery } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "12 hours",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "5s", backoffCoefficient: 2, maximumAttempts: 3, nonRetryableErrorTypes },
});

/** Each channel of the plan is one call, retried on its own for a few minutes; a refusal (4xx, the policy) is not retried. */
const { sendNotification } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "1 minute",
  retry: { initialInterval: "5s", backoffCoefficient: 2, maximumInterval: "1 minute", maximumAttempts: 6, nonRetryableErrorTypes: Object.values(PERMANENT_FAILURES) },
});

/** How long the standby workflow has to stop its watch once asked to release the standby. */
const RELEASE_WAIT = "2 minutes";

/**
 * A PostgreSQL failover as named steps, each an activity with its own retries
 * and timeouts: validate (servers, policy, lag against the RPO limit) -> archive
 * (the old primary, if it answers, stops taking writes and its last WAL reaches
 * the archive) -> fence (stopped, and confirmed not answering, or nothing is
 * promoted) -> [restore the latest state, without a standby] -> promote ->
 * verify (a write, the operator's checks) -> cut over -> notify. A dry run
 * validates and reports what each step would do.
 */
export async function failoverWorkflow(input: FailoverInput): Promise<FailoverResult> {
  ensureSearchAttributes({ plan: input.planId, source: "postgres" });
  const status: FailoverStatus = { phase: "validate", steps: [], dryRun: !!input.dryRun };
  setHandler(failoverStatusQuery, () => status);
  let released: string | undefined;
  setHandler(standbyReleasedSignal, ({ standbyWorkflowId }) => {
    released = standbyWorkflowId;
  });
  try {
    return await runFailover(input, status, () => released);
  } catch (err) {
    // The plan's channels hear of a failed failover too (not of a dry run); the failover fails with its own cause whatever they answer.
    if (!isCancellation(err) && !input.dryRun && input.notifications?.length) {
      await notifyChannels(input, { status: "failed", error: innermostMessage(err), steps: status.steps.map(({ name, outcome }) => ({ name, outcome })) }).catch(() => undefined);
    }
    throw err;
  }
}

async function runFailover(input: FailoverInput, status: FailoverStatus, released: () => string | undefined): Promise<FailoverResult> {
  const started = workflowInfo().startTime.getTime();
  const warnings: string[] = [];

  const step = async <T>(name: FailoverStepName, run: () => Promise<T>, outcome: (value: T) => string): Promise<T> => {
    status.phase = name;
    const at = Date.now();
    const entry: FailoverStep = { name, startedAt: new Date(at).toISOString(), ms: 0, outcome: "running" };
    status.steps.push(entry);
    try {
      const value = await run();
      entry.ms = Date.now() - at;
      entry.outcome = outcome(value);
      return value;
    } catch (err) {
      entry.ms = Date.now() - at;
      entry.outcome = `failed: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`;
      status.phase = "failed";
      throw err;
    }
  };

  const recovery: RecoveryInput | undefined = input.into ? { planId: input.planId, planName: input.planName, repository: input.repository, source: input.source, target: { latest: true }, into: input.into } : undefined;
  const validation = await step("validate", async () => {
    const v = await validateFailover(input);
    if (recovery) await validateRecovery(recovery);
    return v;
  }, (v) => (v.standby ? `standby replayed to ${v.standby.replayLsn}, ${v.standby.lagBytes} bytes behind the ${v.standby.lagAgainst === "primary" ? "old primary" : "archive"}` : `the old primary ${v.oldPrimary.answers ? "answers" : "does not answer"}; no standby: the latest state will be restored`));

  if (input.dryRun) {
    status.phase = "done";
    await condition(allHandlersFinished);
    return { dryRun: true, rtoMs: null, rpo: { bytes: null, seconds: null, basis: "dry run: nothing was done" }, steps: status.steps, newPrimary: null, validation, warnings };
  }

  const archived = await step("archive", () => archiveLastWal(input, validation.systemId), (a) => a.skipped ? `skipped: ${a.skipped}` : `the old primary is read-only; ${a.segment} archived (WAL ends at ${a.lsn})`);
  warnings.push(...archived.warnings);
  const fenced = await step("fence", () => fenceOldPrimary(input), (f) => `${f.method === "hook" ? "the fencing hook exited 0" : f.stopped ? "the old primary was stopped" : "the old primary was not running"}; it does not answer${f.walEnd ? `; its local WAL ends at ${f.walEnd.lsn}` : ""}`);

  if (recovery) {
    await step("restore", async () => {
      const choice = await validateRecovery(recovery);
      await prepareRecovery(recovery);
      await restoreRecovery(recovery, choice);
      return startRecovery(recovery);
    }, (landing) => `restored and replayed the archive to ${landing.lsn}`);
  }
  const promoted = await step("promote", async () => {
    if (input.standbyWorkflowId) {
      // The platform's standby workflow would keep watching, and start PostgreSQL again if it stopped: release it first.
      // Only inputs with standbyWorkflowId (new since the release signal) send it, so older histories replay as before.
      const id = input.standbyWorkflowId;
      await getExternalWorkflowHandle(id).signal(releaseStandbySignal, { failoverId: workflowInfo().workflowId }).catch((err) => {
        throw ApplicationFailure.create({ type: FAILOVER_REFUSED, nonRetryable: true, message: `the standby workflow ${id} could not be told to release the standby (${innermostMessage(err)}); nothing was promoted. GET /v1/standbys/${input.planId} says whether it still runs; fail over with standby {dataDir, port} when it does not` });
      });
      if (!(await condition(() => released() === id, RELEASE_WAIT))) {
        throw ApplicationFailure.create({ type: FAILOVER_REFUSED, nonRetryable: true, message: `the standby workflow ${id} did not release the standby within ${RELEASE_WAIT} (no worker running it, or it is being stopped); nothing was promoted. Check GET /v1/standbys/${input.planId} and a worker, then fail over again` });
      }
    }
    return promoteNewPrimary(input);
  }, (p) => `${input.standbyWorkflowId ? `the standby workflow ${input.standbyWorkflowId} released the standby (it no longer watches or restarts it); ` : ""}accepting writes on timeline ${p.timeline}; replayed to ${p.replayLsn}`);
  const verified = await step("verify", () => verifyNewPrimary(input), (v) => `a write succeeded${v.checks.length ? `; ${v.checks.length} check quer${v.checks.length === 1 ? "y" : "ies"} passed` : ""}`);

  let accepting = { at: verified.acceptingAt, path: "direct" as "cutover" | "direct" };
  if (input.cutover) {
    const cut = await step("cutover", () => cutOver(input), (c) => c.detail);
    if (cut.acceptingAt) accepting = { at: cut.acceptingAt, path: "cutover" };
  } else {
    warnings.push("no cut-over was given: point clients at 127.0.0.1:" + (input.standby ?? input.into)!.port + " by hand");
  }

  // RPO: the old primary's end (its WAL when it answered or is on this host) against what the new primary replayed.
  const oldEnd = archived.lsn ?? fenced.walEnd?.lsn;
  const bytes = oldEnd ? Math.max(0, lsnDiff(oldEnd, promoted.replayLsn)) : null;
  let seconds: number | null = null;
  let basis = "unknown: the old primary did not answer and its WAL is not on this host";
  if (archived.heartbeat && promoted.heartbeat) {
    seconds = Math.max(0, (Date.parse(archived.heartbeat.at) - Date.parse(promoted.heartbeat.at)) / 1000);
    basis = `heartbeat ${archived.heartbeat.seq} on the old primary against ${promoted.heartbeat.seq} on the new`;
  } else if (fenced.walEnd?.lastCommit) {
    seconds = promoted.lastReplayedCommit ? Math.max(0, (Date.parse(fenced.walEnd.lastCommit) - Date.parse(promoted.lastReplayedCommit)) / 1000) : null;
    basis = `the old primary's last commit in its local WAL (${fenced.walEnd.lastCommit}) against the last commit the new primary replayed (${promoted.lastReplayedCommit ?? "none"})`;
  } else if (oldEnd) {
    basis = "bytes from the old primary's WAL end; no heartbeat or commit time to tell seconds";
  }

  const rtoMs = Date.parse(accepting.at) - started;
  const newPrimary = { host: "127.0.0.1", port: (input.standby ?? input.into)!.port };
  // Only inputs with channels send anything (older histories carried none), so they replay as before.
  const channels = input.notifications ?? [];
  await step(
    "notify",
    async () => {
      if (!channels.length) return [];
      return notifyChannels(input, { status: "succeeded", rtoMs, rtoPath: accepting.path, rpo: { bytes, seconds, basis }, newPrimary, steps: status.steps.map(({ name, outcome }) => ({ name, outcome })), warnings });
    },
    (problems) => {
      warnings.push(...problems);
      if (!channels.length) return "result recorded; the plan has no notification channels";
      return `result recorded; sent to ${channels.length - problems.length} of ${channels.length} notification channel${channels.length === 1 ? "" : "s"}`;
    },
  );
  status.phase = "done";
  await condition(allHandlersFinished);
  return {
    dryRun: false,
    rtoMs,
    rtoPath: accepting.path,
    rpo: { bytes, seconds, basis },
    steps: status.steps,
    newPrimary,
    validation,
    warnings,
  };
}

/** Sends the failover's outcome to every channel of the plan, in parallel; returns why each one that could not be reached failed. */
async function notifyChannels(input: FailoverInput, what: Omit<FailoverNotificationEvent, "type" | "failoverId" | "planId" | "planName" | "reason" | "at">): Promise<string[]> {
  const channels = input.notifications ?? [];
  const event: FailoverNotificationEvent = { type: "failover", failoverId: workflowInfo().workflowId, planId: input.planId, planName: input.planName, reason: input.reason, at: new Date().toISOString(), ...what };
  return sendToChannels(sendNotification, channels, event);
}

/** a - b for two LSNs written X/Y (workflows cannot import the WAL module: it needs Node). */
function lsnDiff(a: string, b: string): number {
  const n = (t: string) => {
    const [hi, lo] = t.split("/");
    return parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16);
  };
  return n(a) - n(b);
}
