import { allHandlersFinished, condition, continueAsNew, setHandler, upsertMemo, workflowInfo } from "@temporalio/workflow";
import { WORKER_REPORTS_MEMO, workerGoneSignal, workerReportSignal, type WorkerReport } from "./messages.js";

/** A worker silent this long (stopped without saying so, its host gone) is no longer listed. */
const FORGET_AFTER_MS = 24 * 3600_000;

/**
 * The workers' register (id cairn-workers): keeps each worker's latest report in
 * its memo, where the API reads it with a describe (no worker needs to answer).
 * Started by the first report (signal-with-start); never ends on its own; continues
 * as new with the reports when its history grows long.
 */
export async function workerRegisterWorkflow(reports: WorkerReport[] = []): Promise<void> {
  const latest = new Map(reports.map((r) => [r.identity, r]));
  let changed = true;
  setHandler(workerReportSignal, (report) => {
    latest.set(report.identity, report);
    changed = true;
  });
  setHandler(workerGoneSignal, (identity) => {
    changed = latest.delete(identity) || changed;
  });
  for (;;) {
    const now = Date.now();
    for (const [identity, report] of latest) {
      if (now - Date.parse(report.at) > FORGET_AFTER_MS) changed = latest.delete(identity) || changed;
    }
    if (changed) upsertMemo({ [WORKER_REPORTS_MEMO]: [...latest.values()] });
    changed = false;
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof workerRegisterWorkflow>([...latest.values()]);
    }
    await condition(() => changed, "1 hour");
  }
}
