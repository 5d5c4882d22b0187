import type { Context } from "@temporalio/activity";
import { progressSignal, type JobProgress } from "../workflows/messages.js";

const HEARTBEAT_MS = 1000;

/**
 * Time between two progress signals: every 2 s at first, stretching to once a
 * minute as the step goes on. Each signal adds events to the workflow's history,
 * so a 24-hour backup must not send one a second (history is capped at 50K events).
 */
function signalInterval(elapsedMs: number): number {
  return Math.min(60_000, Math.max(2_000, elapsedMs / 20));
}

export interface ProgressCounts {
  filesDone: number;
  bytesDone: number;
  bytesTotal: number;
}

/**
 * Reports a running activity's progress: a heartbeat about once a second (which is
 * also how Temporal delivers a cancellation to the activity), and every few seconds
 * a progress signal to the workflow, so its status query can answer while the step runs.
 */
export class ProgressReporter<D> {
  private counts: ProgressCounts = { filesDone: 0, bytesDone: 0, bytesTotal: 0 };
  private readonly started = Date.now();
  private readonly timer: NodeJS.Timeout;
  private lastSignal = Date.now();
  private running?: Promise<void>;
  private stopped = false;

  /** `details` turns the progress into the heartbeat details (it may take a checkpoint first). */
  constructor(private readonly ctx: Context, private readonly details: (p: JobProgress) => D | Promise<D>) {
    this.timer = setInterval(() => {
      this.running ??= this.tick().finally(() => (this.running = undefined));
    }, HEARTBEAT_MS);
    // A user who cancels a job sees, in its log and status, when the worker has the cancellation in hand:
    // until then the step works on; from then it stops at its next safe point (between packs, files).
    const heard = () => {
      if (!this.stopped && ctx.cancellationDetails?.cancelRequested) void this.signal({ ...this.progress(), stopping: true });
    };
    if (ctx.cancellationSignal.aborted) heard();
    else ctx.cancellationSignal.addEventListener("abort", heard, { once: true });
  }

  update(counts: ProgressCounts): void {
    this.counts = counts;
  }

  progress(): JobProgress {
    const { filesDone, bytesDone, bytesTotal } = this.counts;
    const seconds = (Date.now() - this.started) / 1000;
    const bytesPerSecond = seconds > 0 ? Math.round(bytesDone / seconds) : 0;
    const etaSeconds = bytesTotal > bytesDone && bytesPerSecond > 0 ? Math.round((bytesTotal - bytesDone) / bytesPerSecond) : null;
    return { filesDone, bytesDone, bytesTotal, bytesPerSecond, etaSeconds };
  }

  /**
   * Stops reporting; waits for a heartbeat in progress so none is sent after the
   * activity returns. A cancelled step sends its workflow its last progress, so the
   * cancelled job shows how far it got.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
    if (this.ctx.cancellationSignal.aborted) await this.signal({ ...this.progress(), ...(this.ctx.cancellationDetails?.cancelRequested ? { stopping: true } : {}) });
  }

  private async tick(): Promise<void> {
    try {
      const progress = this.progress();
      const details = await this.details(progress);
      if (this.stopped) return;
      this.ctx.heartbeat(details);
      const now = Date.now();
      if (now - this.lastSignal >= signalInterval(now - this.started)) {
        this.lastSignal = now;
        await this.signal(progress);
      }
    } catch (err) {
      this.ctx.log.warn("progress report failed", { error: (err as Error).message });
    }
  }

  private async signal(progress: JobProgress): Promise<void> {
    const execution = this.ctx.info.workflowExecution;
    if (!execution) return;
    // Progress is a courtesy: a workflow that already moved on or a client hiccup must not fail the step.
    await this.ctx.client.workflow
      .getHandle(execution.workflowId, execution.runId)
      .signal(progressSignal, progress)
      .catch(() => undefined);
  }
}
