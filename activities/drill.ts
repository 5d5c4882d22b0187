import { promises as fs } from "node:fs";
import { createServer } from "node:net";
import * as path from "node:path";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { IntegrityError } from "../engine/crypto.js";
import { CairnError, LockedError } from "../engine/errors.js";
import { Restorer } from "../engine/restorer.js";
import { loadSnapshots, planHost } from "../engine/snapshot.js";
import { realPathRefusal } from "../policy/paths.js";
import { within } from "../policy/policy.js";
import { query } from "../sources/postgres/tools.js";
import { DRILL_FAILED, PERMANENT_FAILURES, SAFE_DATA_DIR, type DrillInput, type DrillResult, type DrillScratch, type RecoveryInput } from "../workflows/messages.js";
import { ProgressReporter } from "./progress.js";
import { recoveredConnection, runningServer } from "./recovery.js";
import { policyFailure, withLockedRepository, type ActivityDeps } from "./repository.js";

/** A drill that found the backup unusable: the job fails with the cause, no retry changes it. */
export function drillFailure(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, DRILL_FAILED);
}

/** The drill's job id, which names its scratch directory. */
function jobOf(ctx: Context): string {
  const id = ctx.info.workflowExecution?.workflowId;
  if (!id) throw ApplicationFailure.nonRetryable("a drill step runs only inside a drill workflow", PERMANENT_FAILURES.invalidRequest);
  return id;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port nothing listens on now, on the worker's loopback. */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * The activities of drillWorkflow. A drill writes only inside one fresh
 * directory under the policy's drill directory (CAIRN_DRILL_DIR, by default
 * <data dir>/drills), named after its job, and removes it at the end whatever
 * happened; it never opens the plan's source for writing, nor connects to it.
 */
export function drillActivities(deps: ActivityDeps) {
  /** The scratch directory of this job, once the policy allows it and it touches none of the plan's own paths. */
  const scratchOf = async (input: DrillInput, workflowId: string): Promise<string> => {
    const dir = path.join(deps.policy.drillDir, workflowId);
    if (!SAFE_DATA_DIR.test(dir)) throw ApplicationFailure.nonRetryable(`the drill directory ${deps.policy.drillDir} has characters PostgreSQL cannot take in a data directory path; set CAIRN_DRILL_DIR to a path of letters, digits, ".", "_", "-" and "/"`, PERMANENT_FAILURES.invalidRequest);
    const refusal = await realPathRefusal(deps.policy, "drill", dir).catch((err: NodeJS.ErrnoException) => {
      throw ApplicationFailure.nonRetryable(`cannot tell where ${dir} leads (${err.code ?? err.message}); the execution policy refuses what it cannot check`, PERMANENT_FAILURES.policyRefused);
    });
    if (refusal) throw policyFailure(refusal);
    if (input.source.type === "files") {
      const touched = input.source.paths.map((p) => path.resolve(p)).find((p) => within(dir, p) || within(p, dir));
      if (touched) throw ApplicationFailure.nonRetryable(`the drill directory ${deps.policy.drillDir} overlaps the plan's source ${touched}; a drill never writes where the plan reads: set CAIRN_DRILL_DIR elsewhere`, PERMANENT_FAILURES.policyRefused);
    }
    return dir;
  };

  return {
    /** Chooses the scratch directory (removing what a crashed earlier attempt left there) and, for a database, a free loopback port. */
    async prepareDrill(input: DrillInput): Promise<DrillScratch> {
      const dir = await scratchOf(input, jobOf(Context.current()));
      await fs.rm(dir, { recursive: true, force: true });
      await fs.mkdir(deps.policy.drillDir, { recursive: true, mode: 0o700 });
      return input.source.type === "postgres" ? { dir, port: await freeLoopbackPort() } : { dir };
    },

    /**
     * Restores the plan's latest snapshot into the scratch directory and reads
     * every file back, comparing each chunk with the content id the snapshot
     * records. Damage (a pack that no longer decrypts, a file that differs)
     * fails the drill with its cause; the directory is removed in every case.
     */
    async drillFiles(input: DrillInput, scratch: DrillScratch): Promise<DrillResult> {
      const ctx = Context.current();
      const dir = await scratchOf(input, jobOf(ctx));
      if (dir !== scratch.dir) throw ApplicationFailure.nonRetryable(`the scratch directory ${scratch.dir} is not this drill's (${dir})`, PERMANENT_FAILURES.invalidRequest);
      const reporter = new ProgressReporter(ctx, (progress) => progress);
      try {
        await fs.rm(dir, { recursive: true, force: true });
        return await withLockedRepository(input.repository, deps, { exclusive: false, operation: `recovery drill of plan ${input.planName}` }, async (repo) => {
          const own = (await loadSnapshots(repo)).filter((s) => s.host === planHost(input.planId));
          const latest = own.at(-1);
          if (!latest) throw drillFailure(`plan ${input.planName} has no snapshot to drill yet; run it (POST /v1/plans/${input.planId}/run) first`);
          const startedAt = new Date();
          let result;
          try {
            result = await new Restorer(repo, { target: dir, verify: true, onProgress: (p) => reporter.update(p) }).restore(latest.tree);
          } catch (err) {
            if (err instanceof IntegrityError || (err instanceof CairnError && !(err instanceof LockedError))) {
              // Paths as the plan knows them: the scratch directory is the drill's business, not the reader's.
              throw drillFailure(`snapshot ${latest.id.slice(0, 8)} of plan ${input.planName} could not be restored: ${err.message.split(dir).join("")}`);
            }
            throw err;
          }
          if (result.verifyErrors.length) {
            const shown = result.verifyErrors.slice(0, 3).map((e) => path.relative(dir, e.split(":")[0]) + e.slice(e.indexOf(":")));
            throw drillFailure(`snapshot ${latest.id.slice(0, 8)} of plan ${input.planName} restored, but ${result.verifyErrors.length} file(s) differ from it: ${shown.join("; ")}`);
          }
          const rtoSeconds = (Date.now() - startedAt.getTime()) / 1000;
          return { planId: input.planId, outcome: "passed", snapshotId: latest.id, startedAt: startedAt.toISOString(), rtoSeconds, filesVerified: result.files, bytes: result.totalBytes, warnings: result.warnings };
        });
      } finally {
        await reporter.stop();
        await fs.rm(dir, { recursive: true, force: true });
      }
    },

    /** Runs the check query on the drill's throwaway server as the plan's user; it must succeed (it may return rows). Returns when it did. */
    async checkDrill(input: RecoveryInput, sql: string): Promise<{ rows: string[]; verifiedAt: string }> {
      if (!input.drill) throw ApplicationFailure.nonRetryable("checkDrill runs only on a drill's throwaway server", PERMANENT_FAILURES.invalidRequest);
      const conn = recoveredConnection(input, deps);
      const rows = await query(conn.url, sql, conn.env).catch((err: Error) => {
        throw drillFailure(`the check query failed on the restored copy of plan ${input.planName}: ${sql}: ${err.message}`);
      });
      return { rows: rows.slice(0, 5).map((r) => r.join("|")), verifiedAt: new Date().toISOString() };
    },

    /** Stops the throwaway server if one runs on the scratch directory, and removes the directory. Only ever a directory under the drill directory. */
    async discardDrill(scratch: DrillScratch): Promise<void> {
      const dir = path.resolve(scratch.dir);
      if (dir === deps.policy.drillDir || !within(dir, deps.policy.drillDir)) throw ApplicationFailure.nonRetryable(`${dir} is not a drill's scratch directory; nothing was removed`, PERMANENT_FAILURES.invalidRequest);
      const pid = await runningServer(dir);
      if (pid) {
        process.kill(pid, "SIGINT");
        for (let i = 0; i < 300 && (await runningServer(dir)); i++) await sleep(200);
        if (await runningServer(dir)) process.kill(pid, "SIGKILL");
      }
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
