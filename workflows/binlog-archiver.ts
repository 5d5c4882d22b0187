import { ActivityCancellationType, allHandlersFinished, CancellationScope, condition, continueAsNew, isCancellation, proxyActivities, setHandler } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import { binlogArchiverReportSignal, binlogArchiverStatusQuery, PERMANENT_FAILURES, stopBinlogArchiverSignal, type BinlogArchiverInput, type BinlogArchiverStatus } from "./messages.js";
import { ensureSearchAttributes } from "./status.js";

const nonRetryableErrorTypes = Object.values(PERMANENT_FAILURES);

/**
 * Streaming never gives up: a worker that dies stops heartbeating, and the next
 * attempt (on any worker) starts mariadb-binlog again from the oldest log the
 * repository lacks whole. A stop waits for the activity's last store.
 */
const { streamPlanBinlogs } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "2 hours",
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  heartbeatTimeout: "1 minute",
  retry: { initialInterval: "5s", backoffCoefficient: 2, maximumInterval: "1 minute", nonRetryableErrorTypes },
});

/** Looks per activity (each a signal in the history, which continues as new after each activity), and at most about an hour of them. */
const LOOKS_PER_RUN = 200;
const EVENTS_KEPT = 10;

/**
 * A physical MySQL / MariaDB plan's continuous binary log archiver: streams the
 * server's binary log into a spool on a worker and stores each closed log, and the
 * log being written every intervalSeconds, into the plan's repository
 * (sources/mysql/binlog-stream.ts), so point-in-time recovery reaches seconds ago.
 * Its status says where the server is, what is archived, and the lag. A stop signal
 * makes a last store and ends it. Continues as new after each bounded activity.
 */
export async function binlogArchiverWorkflow(input: BinlogArchiverInput): Promise<BinlogArchiverStatus> {
  const status: BinlogArchiverStatus = input.carried ?? { planId: input.planId, phase: "starting", spoolDir: input.spoolDir, intervalSeconds: input.intervalSeconds, logsArchived: 0, reconnects: 0, events: [] };
  ensureSearchAttributes({ kind: "binlog-archiver", plan: input.planId, source: "mysql" });
  let stop = false;
  const record = (message: string) => {
    status.events = [...status.events, message].slice(-EVENTS_KEPT);
  };
  setHandler(binlogArchiverStatusQuery, () => status);
  setHandler(stopBinlogArchiverSignal, () => {
    stop = true;
  });
  setHandler(binlogArchiverReportSignal, (report) => {
    if ("error" in report) {
      if (report.reconnect) {
        status.reconnects++;
        if (status.phase !== "stopping") status.phase = "reconnecting";
      }
      record(`${report.at}: ${report.error}`);
      return;
    }
    const { streaming, closed, ...measured } = report;
    Object.assign(status, measured);
    status.logsArchived += closed.length;
    if (status.phase !== "stopping") status.phase = streaming ? "streaming" : "reconnecting";
  });

  if (!stop) {
    const looks = Math.max(1, Math.min(LOOKS_PER_RUN, Math.floor(3600 / input.intervalSeconds)));
    const scope = new CancellationScope();
    const streaming = scope.run(() => streamPlanBinlogs(input, { looks }));
    const ended = await Promise.race([streaming.then(() => "streamed" as const), condition(() => stop).then(() => "stop" as const)]);
    if (ended === "stop") {
      status.phase = "stopping";
      scope.cancel();
      await streaming.catch((err) => {
        if (!isCancellation(err)) throw err;
      });
    }
  }
  if (!stop) {
    await condition(allHandlersFinished);
    return await continueAsNew<typeof binlogArchiverWorkflow>({ ...input, carried: status });
  }
  status.phase = "stopped";
  await condition(allHandlersFinished);
  return status;
}
