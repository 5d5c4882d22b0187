import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { CairnError } from "../engine/errors.js";
import { streamBinlogs } from "../sources/mysql/binlog-stream.js";
import { binlogArchiverReportSignal, PERMANENT_FAILURES, type BinlogArchiverInput, type BinlogArchiverReport } from "../workflows/messages.js";
import { binlogHost, mysqlFailure, withPlanLogin } from "./mysql.js";
import { allowedDataDir } from "./recovery.js";
import { openRepository, type ActivityDeps } from "./repository.js";

/** The step of binlogArchiverWorkflow. */
export function binlogArchiverActivities(deps: ActivityDeps) {
  return {
    /**
     * Streams the plan's binary log into the spool directory (judged by the execution
     * policy, links followed) and stores it into the plan's repository, sending each
     * look's report to the workflow; returns after `looks` looks, so the workflow's
     * history stays bounded. Cancelled (the archiver stopped), it makes a last store
     * first. Heartbeats all along; a later attempt starts over from the repository.
     */
    async streamPlanBinlogs(input: BinlogArchiverInput, o: { looks: number }): Promise<void> {
      const ctx = Context.current();
      await allowedDataDir(deps, input.spoolDir, "restore", "spoolDir");
      const execution = ctx.info.workflowExecution;
      if (!execution) throw ApplicationFailure.nonRetryable("streamPlanBinlogs runs only as the step of binlogArchiverWorkflow", PERMANENT_FAILURES.invalidRequest);
      const handle = ctx.client.workflow.getHandle(execution.workflowId, execution.runId);
      const report = (r: BinlogArchiverReport) => void handle.signal(binlogArchiverReportSignal, r).catch(() => undefined);
      const beat = setInterval(() => ctx.heartbeat(), 2000);
      const repo = await openRepository(input.repository, deps);
      try {
        await withPlanLogin(input.source, deps, (optionFile) =>
          streamBinlogs(repo, {
            optionFile,
            spool: input.spoolDir,
            intervalSeconds: input.intervalSeconds,
            replicaId: input.replicaId,
            host: binlogHost(input.planId),
            signal: ctx.cancellationSignal,
            looks: o.looks,
            onReport: (r) => report(r),
            onError: (what, err) => report({ error: `${what}: ${err.message.split("\n")[0]}`, at: new Date().toISOString(), reconnect: what === "mariadb-binlog" }),
          }),
        );
      } catch (err) {
        // The status says why the archiver does not stream while the activity is retried.
        report({ error: (err as Error).message.split("\n")[0], at: new Date().toISOString(), reconnect: false });
        if (err instanceof CairnError) throw mysqlFailure(err, input.planName);
        throw err;
      } finally {
        clearInterval(beat);
        await repo.close();
      }
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
    },
  };
}
