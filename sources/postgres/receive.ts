import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CairnError } from "../../engine/errors.js";
import type { WalArchive } from "./archive.js";
import { pgTool, query, runTool } from "./tools.js";
import { walFileKind } from "./wal.js";

/**
 * Streaming WAL archiving: pg_receivewal writes the WAL into a spool directory as the
 * server writes it (through a replication slot, so the server keeps what was not
 * received yet), and every segment it completes is pushed into the archive. The
 * segment in progress is `<name>.partial` in the spool; it is pushed when the
 * receiver stops, and again, longer, the next time, until the whole segment is.
 */
export interface ReceiveOptions {
  url: string;
  slot: string;
  spool: string;
  env?: NodeJS.ProcessEnv;
  pollMs?: number;
  signal?: AbortSignal;
  /** Called once pg_receivewal streams (after the slot exists). */
  onStreaming?: (info: { systemId: string; slot: string; slotCreated: boolean }) => void;
  onPushed?: (name: string, outcome: string) => void;
  /** A push that failed (retried at the next poll) or pg_receivewal that stopped (restarted). */
  onError?: (what: string, err: Error) => void;
}

const SLOT_NAME = /^[a-z0-9_]{1,63}$/;
const MARK = "cairn-receive.json";
const RESTART_MS = 5000;

export async function runReceiver(archive: WalArchive, o: ReceiveOptions): Promise<{ pushed: string[] }> {
  if (!SLOT_NAME.test(o.slot)) throw new CairnError(`--slot ${o.slot}: a replication slot name is 1 to 63 lower-case letters, digits and underscores`);
  const [[systemId]] = await query(o.url, "SELECT system_identifier FROM pg_control_system()", o.env);
  await claimSpool(o.spool, systemId);
  const slotCreated = await ensureSlot(o, systemId);
  o.onStreaming?.({ systemId, slot: o.slot, slotCreated });

  const pushed: string[] = [];
  const push = async (name: string) => {
    const r = await archive.pushReceived(path.join(o.spool, name), systemId);
    pushed.push(name);
    o.onPushed?.(name, r.outcome);
    // The whole segment supersedes what was archived of it before.
    if (walFileKind(name) === "segment") {
      const partials = await archive.list(systemId).then((files) => files.has(`${name}.partial`));
      if (partials) await archive.remove(systemId, `${name}.partial`);
    }
  };
  const done = new Set<string>();
  /** Pushes completed segments and history files; keeps the newest completed segment in the spool, where pg_receivewal finds where to resume. */
  const sweep = async () => {
    const names = (await fs.readdir(o.spool)).sort();
    const complete = names.filter((n) => walFileKind(n) === "segment" || walFileKind(n) === "history");
    for (const name of complete) {
      if (done.has(name)) continue;
      try {
        await push(name);
        done.add(name);
      } catch (err) {
        o.onError?.(name, err as Error);
        return;
      }
    }
    const segments = complete.filter((n) => walFileKind(n) === "segment");
    for (const name of segments.slice(0, -1)) {
      await fs.rm(path.join(o.spool, name), { force: true });
      done.delete(name);
    }
  };

  while (!o.signal?.aborted) {
    const child = spawn(pgTool("pg_receivewal"), ["-d", o.url, "-D", o.spool, "--slot", o.slot, "--synchronous", "--no-loop", "--status-interval", "1"], {
      env: { ...(o.env ?? process.env), PGAPPNAME: "cairn receive" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const exited = new Promise<number | null>((resolve) => {
      child.once("error", () => resolve(-1));
      child.once("close", (code) => resolve(code));
    });
    const stop = () => child.kill("SIGINT");
    o.signal?.addEventListener("abort", stop, { once: true });
    let code: number | null | undefined;
    void exited.then((c) => (code = c));
    while (code === undefined && !o.signal?.aborted) {
      await sweep();
      await sleep(o.pollMs ?? 500, undefined, { signal: o.signal }).catch(() => undefined);
    }
    await exited;
    o.signal?.removeEventListener("abort", stop);
    await sweep();
    if (o.signal?.aborted) break;
    o.onError?.("pg_receivewal", new CairnError(`pg_receivewal stopped (exit ${code}): ${stderr.trim().split("\n").slice(-3).join("\n")}; starting it again in ${RESTART_MS / 1000} s`));
    await sleep(RESTART_MS, undefined, { signal: o.signal }).catch(() => undefined);
  }
  // What was streamed of the segment in progress goes into the archive too, as its .partial.
  for (const name of (await fs.readdir(o.spool)).filter((n) => walFileKind(n) === "partial")) {
    await push(name);
  }
  return { pushed };
}

/** A spool belongs to one cluster: pg_receivewal resumes from what it finds there. */
async function claimSpool(spool: string, systemId: string): Promise<void> {
  await fs.mkdir(spool, { recursive: true, mode: 0o700 });
  const mark = path.join(spool, MARK);
  const text = await fs.readFile(mark, "utf8").catch(() => undefined);
  if (text !== undefined) {
    const owner = (JSON.parse(text) as { systemId: string }).systemId;
    if (owner !== systemId) throw new CairnError(`the spool ${spool} holds WAL of database system ${owner}, but the server is system ${systemId}; give each cluster its own --spool`);
    return;
  }
  await fs.writeFile(mark, JSON.stringify({ systemId }) + "\n");
}

/** Creates the physical replication slot when it does not exist; refuses a logical slot of that name. */
async function ensureSlot(o: ReceiveOptions, systemId: string): Promise<boolean> {
  const rows = await query(o.url, `SELECT slot_type FROM pg_replication_slots WHERE slot_name = '${o.slot}'`, o.env);
  if (rows.length) {
    if (rows[0][0] !== "physical") throw new CairnError(`replication slot ${o.slot} on system ${systemId} is a ${rows[0][0]} slot; pg_receivewal needs a physical one: choose another --slot`);
    return false;
  }
  await runTool("pg_receivewal", ["-d", o.url, "--slot", o.slot, "--create-slot", "--if-not-exists"], o.env);
  return true;
}
