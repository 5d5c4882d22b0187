import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { Client, Connection, type WorkflowHandle } from "@temporalio/client";
import { defaultPayloadConverter } from "@temporalio/common";
import { bundleWorkflowCode, type WorkflowBundle } from "@temporalio/worker";
import type { temporal } from "@temporalio/proto";
import { loadSecretBox } from "../../engine/secret-box.js";
import { startDevServer, type DevServer } from "../../scripts/temporal.js";
import type { BackupInput } from "../../workflows/messages.js";
import { workflowsPath } from "../../worker.js";
import { PASSWORD, ROOT, cairnOk } from "../helpers.js";
import { testPolicyEnv } from "../policy-fixtures.js";

export { PASSWORD };

/** A dev server on free ports with its state in `dir`/temporal.db, and a client connected to it. */
export async function startTemporal(dir: string): Promise<{ server: DevServer; client: Client; connection: Connection; dbFile: string }> {
  const dbFile = path.join(dir, "temporal.db");
  const server = await startDevServer({ dbFile, headless: true, log: () => undefined });
  const connection = await Connection.connect({ address: server.address });
  return { server, client: new Client({ connection }), connection, dbFile };
}

/** The workflows bundled once per test file (bundling takes a few seconds). */
export function bundle(): Promise<WorkflowBundle> {
  return bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: quietLogger });
}

const quiet = () => undefined;
export const quietLogger = { trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet, log: quiet };

/** A worker process (`node dist/worker.js`), as production runs it. */
export interface WorkerProcess {
  child: ChildProcess;
  /** The worker's identity as Temporal records it (the SDK's default: pid@host). */
  identity: string;
  output: string[];
  ready: Promise<void>;
  stop(): Promise<void>;
}

/** Its execution policy allows the test's temporary directory: the parent of `dataDir`. */
export function spawnWorker(address: string, dataDir: string, env: Record<string, string> = {}): WorkerProcess {
  const child = spawn(process.execPath, [path.join(ROOT, "dist", "worker.js")], {
    env: { ...process.env, TEMPORAL_ADDRESS: address, CAIRN_DATA_DIR: dataDir, ...testPolicyEnv(path.dirname(dataDir)), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  let identity = "";
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output.push(d.toString());
      const m = /polling task queue \S+ at \S+ \(namespace \S+\) as (\S+)/.exec(output.join(""));
      if (m && !identity) {
        identity = m[1];
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`the worker exited (${code}) before polling:\n${output.join("")}`)));
  });
  ready.catch(() => undefined);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    get identity() {
      return identity;
    },
    output,
    ready,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Writes `count` files of random bytes (incompressible) under dir. */
export function randomFiles(dir: string, count: number, size: number): number {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) writeFileSync(path.join(dir, `part-${String(i).padStart(3, "0")}.bin`), randomBytes(size));
  return count * size;
}

/** Creates a repository with the CLI. */
export async function initRepository(repo: string, packSizeMiB = 4): Promise<void> {
  await cairnOk(["-r", repo, "init", "--pack-size", String(packSizeMiB)]);
}

/** A backup plan's workflow input for a local repository; the password is sealed with the platform key in dataDir. */
export async function backupInput(dataDir: string, repo: string, paths: string[], extra: Partial<BackupInput> = {}): Promise<BackupInput> {
  const box = await loadSecretBox(dataDir);
  return {
    planId: "plan-1",
    planName: "test plan",
    repository: { id: "repo-1", url: repo, sealedPassword: box.seal(PASSWORD) },
    source: { type: "files", paths },
    ...extra,
  };
}

/** Pack files stored in a repository, with their sizes. */
export function packFiles(repo: string): Map<string, number> {
  const packs = new Map<string, number>();
  let dirs: string[] = [];
  try {
    dirs = readdirSync(path.join(repo, "data"));
  } catch {
    return packs;
  }
  for (const d of dirs) {
    for (const f of readdirSync(path.join(repo, "data", d))) {
      if (!f.startsWith(".tmp-")) packs.set(f, statSync(path.join(repo, "data", d, f)).size);
    }
  }
  return packs;
}

/** Waits until `check` returns a value (not undefined), polling. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The pending activity of a running workflow with that type, once it has heartbeated. */
export async function heartbeating(handle: WorkflowHandle, activityType: string): Promise<temporal.api.workflow.v1.IPendingActivityInfo | undefined> {
  const { raw } = await handle.describe();
  return raw.pendingActivities?.find((a) => a.activityType?.name === activityType && a.lastHeartbeatTime);
}

/** Identities of the workers that started the workflow's activities. */
export async function activityWorkers(handle: WorkflowHandle): Promise<Set<string>> {
  const history = await handle.fetchHistory();
  const ids = new Set<string>();
  for (const e of history.events ?? []) {
    const identity = e.activityTaskStartedEventAttributes?.identity;
    if (identity) ids.add(identity);
  }
  return ids;
}

/** Every workflow input, result and activity input or result in a history, serialized as Temporal stores it. */
export function historyPayloadSizes(history: temporal.api.history.v1.IHistory): { event: string; bytes: number }[] {
  const sizes: { event: string; bytes: number }[] = [];
  for (const e of history.events ?? []) {
    const groups = [
      ["workflow input", e.workflowExecutionStartedEventAttributes?.input],
      ["workflow result", e.workflowExecutionCompletedEventAttributes?.result],
      [`activity input (${e.activityTaskScheduledEventAttributes?.activityType?.name})`, e.activityTaskScheduledEventAttributes?.input],
      ["activity result", e.activityTaskCompletedEventAttributes?.result],
    ] as const;
    for (const [event, payloads] of groups) {
      for (const p of payloads?.payloads ?? []) sizes.push({ event, bytes: encodedSize(p) });
    }
  }
  return sizes;
}

function encodedSize(p: temporal.api.common.v1.IPayload): number {
  // Decode and encode again with the default converter: the size is what a client or worker would send.
  const value = defaultPayloadConverter.fromPayload(p);
  const again = defaultPayloadConverter.toPayload(value);
  return (again.data?.length ?? 0) + Object.entries(again.metadata ?? {}).reduce((n, [k, v]) => n + k.length + (v?.length ?? 0), 0);
}
