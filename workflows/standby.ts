import { allHandlersFinished, CancellationScope, condition, continueAsNew, getExternalWorkflowHandle, isCancellation, proxyActivities, setHandler, workflowInfo } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import type { StandbyRestored } from "../activities/standby.js";
import { PERMANENT_FAILURES, releaseStandbySignal, standbyReleasedSignal, standbyReportSignal, standbyStatusQuery, stopStandbySignal, type StandbyInput, type StandbyStatus } from "./messages.js";
import { ensureSearchAttributes } from "./status.js";

const nonRetryableErrorTypes = Object.values(PERMANENT_FAILURES);

/** Writing the data directory reads a whole base backup: long, heartbeating, resumed elsewhere if a worker dies. */
const { restoreStandby } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "24 hours",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "10s", backoffCoefficient: 2, maximumInterval: "5 minutes", maximumAttempts: 5, nonRetryableErrorTypes },
});

/**
 * Watching never gives up: a worker that dies stops heartbeating, and the next
 * attempt (on any worker of the host) finds PostgreSQL running or starts it.
 */
const { watchStandby } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "2 hours",
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "5s", backoffCoefficient: 2, maximumInterval: "1 minute", nonRetryableErrorTypes },
});

const { stopStandby } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "5 minutes",
  retry: { initialInterval: "2s", maximumAttempts: 5, nonRetryableErrorTypes },
});

/** Measurements per watch activity: each is a signal in the history, which continues as new after each watch. */
const POLLS_PER_RUN = 200;
/** Events kept in the status (the newest). */
const EVENTS_KEPT = 10;

/**
 * A warm standby of a physical plan: restore the latest base backup into the data
 * directory as a standby that replays archived WAL (restore_command = cairn pg
 * wal-fetch), start PostgreSQL, then watch it for good: heartbeats, restarts if it
 * died, lag in bytes and seconds in the status. A stop signal shuts PostgreSQL down
 * cleanly; the data directory stays unless discarded. Continues as new after each
 * bounded watch, carrying its status.
 */
export async function standbyWorkflow(input: StandbyInput): Promise<StandbyStatus> {
  const status: StandbyStatus = input.carried ?? { planId: input.planId, phase: "restore", dataDir: input.dataDir, port: input.port, restarts: 0, warnings: [], events: [] };
  ensureSearchAttributes({ kind: "standby", plan: input.planId, source: "postgres" });
  let stop: { discard: boolean } | undefined;
  let release: { failoverId: string } | undefined;
  const record = (message: string) => {
    status.events = [...(status.events ?? []), message].slice(-EVENTS_KEPT);
  };
  setHandler(standbyStatusQuery, () => status);
  setHandler(stopStandbySignal, (request) => {
    if (!release) stop ??= request;
  });
  // A failover about to promote the standby: stop watching (no restarts of a server that becomes a primary), leave it running.
  setHandler(releaseStandbySignal, (request) => {
    if (!stop) release ??= request;
  });
  setHandler(standbyReportSignal, (report) => {
    const { restarted, warnings, ...measured } = report;
    if (restarted) {
      status.restarts++;
      record(`${measured.lastCheckedAt}: ${restarted}`);
    }
    Object.assign(status, measured, { warnings });
    // Replaying once the standby itself answered (it accepts read-only connections once consistent).
    if (status.phase === "start" && measured.replayLsn) status.phase = "replaying";
  });

  let restored: StandbyRestored | undefined = status.systemId && status.snapshotId && status.segmentSize ? { systemId: status.systemId, snapshotId: status.snapshotId, segmentSize: status.segmentSize } : undefined;
  try {
    if (!restored) {
      status.phase = "restore";
      restored = await restoreStandby(input);
      status.systemId = restored.systemId;
      status.snapshotId = restored.snapshotId;
      status.segmentSize = restored.segmentSize;
      status.phase = "start";
    }
    if (!stop && !release) {
      const scope = new CancellationScope();
      const watching = scope.run(() => watchStandby(input, restored!, { polls: POLLS_PER_RUN, firstStart: status.phase === "start" }));
      const ended = await Promise.race([watching.then(() => "watched" as const), condition(() => stop !== undefined || release !== undefined).then(() => "stop" as const)]);
      if (ended === "stop") {
        scope.cancel();
        await watching.catch((err) => {
          if (!isCancellation(err)) throw err;
        });
      }
    }
    if (!stop && !release) {
      await condition(allHandlersFinished);
      return await continueAsNew<typeof standbyWorkflow>({ ...input, carried: status });
    }
  } catch (err) {
    // A standby that cannot be watched any more (refused by the policy, its directory gone) is stopped, not left running unwatched.
    if (status.phase !== "restore") await CancellationScope.nonCancellable(() => stopStandby(input, false)).catch(() => undefined);
    throw err;
  }
  if (release) {
    // Not stopped: the failover promotes this server next. Only histories with a release signal reach here (replay-safe).
    status.phase = "released";
    status.releasedTo = release.failoverId;
    status.warnings = [];
    record(`${new Date().toISOString()}: released to failover ${release.failoverId}: no longer watched; PostgreSQL left running to be promoted`);
    await getExternalWorkflowHandle(release.failoverId).signal(standbyReleasedSignal, { standbyWorkflowId: workflowInfo().workflowId }).catch(() => undefined);
    await condition(allHandlersFinished);
    return status;
  }
  status.phase = "stopping";
  const { discarded } = await stopStandby(input, stop!.discard);
  if (discarded) record(`the data directory ${input.dataDir} was removed (discard)`);
  status.phase = "stopped";
  await condition(allHandlersFinished);
  return status;
}
