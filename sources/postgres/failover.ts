import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { CairnError } from "../../engine/errors.js";
import { pgTool, query, runTool } from "./tools.js";
import { parseLsn } from "./wal.js";

/**
 * The pieces of a PostgreSQL failover that touch servers: is a server there,
 * stop one through its data directory, find where a stopped or crashed
 * primary's WAL ends, run an operator's hook. activities/failover.ts puts them
 * in order; each is safe to run again.
 */

/** The URL with a short connect timeout: a failover must not wait a minute on a dead host. */
export function quickUrl(url: string, seconds = 3): string {
  const u = new URL(url);
  u.searchParams.set("connect_timeout", String(seconds));
  return u.toString();
}

/** The server's answer to `SELECT pg_is_in_recovery()`, or undefined when it does not answer. */
export async function serverState(url: string, env: NodeJS.ProcessEnv): Promise<{ inRecovery: boolean } | undefined> {
  const rows = await query(quickUrl(url), "SELECT pg_is_in_recovery()", env).catch(() => undefined);
  return rows ? { inRecovery: rows[0]?.[0] === "t" } : undefined;
}

/** The postmaster's pid from the data directory's postmaster.pid, when a PostgreSQL process with that pid is alive. */
export async function postmasterPid(dataDir: string): Promise<number | undefined> {
  const text = await fs.readFile(path.join(dataDir, "postmaster.pid"), "utf8").catch(() => undefined);
  const pid = Number(text?.split("\n")[0]);
  if (!pid) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  // A stale pid file whose number a new, unrelated process took is not a server to signal.
  const comm = await fs.readFile(`/proc/${pid}/comm`, "utf8").catch(() => "postgres");
  return /postgres|postmaster/.test(comm) ? pid : undefined;
}

/**
 * Stops the server of a data directory on this host, as pg_ctl stop does
 * (SIGINT: fast, SIGQUIT: immediate), and waits until its postmaster is gone; a
 * fast shutdown that takes longer than `graceMs` becomes immediate. Returns
 * whether a running server was found.
 */
export async function stopServer(dataDir: string, mode: "fast" | "immediate", graceMs = 60_000): Promise<boolean> {
  const pid = await postmasterPid(dataDir);
  if (!pid) return false;
  process.kill(pid, mode === "fast" ? "SIGINT" : "SIGQUIT");
  const deadline = Date.now() + graceMs;
  let escalated = mode === "immediate";
  while (await postmasterPid(dataDir)) {
    if (!escalated && Date.now() > deadline) {
      process.kill(pid, "SIGQUIT");
      escalated = true;
    }
    if (Date.now() > deadline + 30_000) throw new CairnError(`the server of ${dataDir} (pid ${pid}) did not stop within ${Math.round(graceMs / 1000) + 30} s; stop it by hand (pg_ctl -D ${dataDir} stop -m immediate) and start the failover again`);
    await sleep(200);
  }
  return true;
}

/** Where the WAL of a stopped (or crashed) cluster on this host ends, and the time of its last commit. */
export interface WalEnd {
  lsn: string;
  lastCommit?: string;
}

/**
 * Reads the end of a cluster's local WAL with pg_waldump, from its last
 * checkpoint's redo point to the first record that is not there: what the
 * server had written, committed or not, when it stopped.
 */
export async function localWalEnd(dataDir: string): Promise<WalEnd> {
  const control = await runTool("pg_controldata", ["-D", dataDir]);
  const redo = /Latest checkpoint's REDO location:\s*([0-9A-F]+\/[0-9A-F]+)/.exec(control)?.[1];
  if (!redo) throw new CairnError(`pg_controldata did not show the last checkpoint of ${dataDir}`);
  const { stdout, stderr } = await capture(pgTool("pg_waldump"), ["-p", path.join(dataDir, "pg_wal"), "-s", redo, "-r", "Transaction"]);
  let lastCommit: string | undefined;
  for (const m of stdout.matchAll(/desc: COMMIT (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+)/g)) lastCommit = m[1];
  // pg_waldump stops at the first record it cannot read: "invalid record length at 0/3000180" (or "... at" another reason).
  const end = /(?:invalid record length|invalid magic number|record with incorrect prev-link|contrecord is requested by|invalid resource manager ID|record length \d+ at) (?:at )?([0-9A-F]+\/[0-9A-F]+)/.exec(stderr)?.[1] ?? /at ([0-9A-F]+\/[0-9A-F]+)/.exec(stderr.split("\n").filter(Boolean).at(-1) ?? "")?.[1];
  if (!end) throw new CairnError(`cannot tell where the WAL of ${dataDir} ends: ${stderr.trim().slice(-300)}`);
  return { lsn: end, ...(lastCommit ? { lastCommit: toIso(lastCommit) } : {}) };
}

/** pg_waldump's "2026-11-30 16:40:01.123456 UTC" as ISO 8601 (the zone it prints is the server's log_timezone, UTC on Debian's default). */
function toIso(text: string): string {
  const m = /^(\S+) (\S+) (\S+)$/.exec(text);
  if (!m) return text;
  const zone = m[3] === "UTC" || m[3] === "GMT" ? "Z" : /^[+-]\d\d$/.test(m[3]) ? `${m[3]}:00` : "Z";
  const d = new Date(`${m[1]}T${m[2]}${zone}`);
  return Number.isNaN(d.getTime()) ? text : d.toISOString();
}

/** Bytes between two LSNs (a - b), never below zero. */
export function lsnBytes(a: string, b: string): number {
  const d = parseLsn(a) - parseLsn(b);
  return d > 0n ? Number(d) : 0;
}

function capture(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }));
  });
}

/**
 * Runs an operator's hook: the program (checked against the policy by the
 * caller) without a shell, with only PATH and the variables given, for at most
 * `timeoutMs`. Resolves with its exit code and the end of its output.
 */
export function runHook(command: string[], vars: Record<string, string>, timeoutMs = 120_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...vars } });
    let output = "";
    const keep = (d: Buffer) => (output = (output + d.toString("utf8")).slice(-2000));
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new CairnError(`cannot run the hook ${command[0]}: ${err.message}`));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: signal ? null : code, output: output.trim() });
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
