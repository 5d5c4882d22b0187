import { readFileSync } from "node:fs";
import type { Command } from "commander";
import type { Backend } from "../backends/backend.js";
import { openBackend } from "../backends/url.js";
import { CairnError } from "../engine/errors.js";
import { withRepositoryAt, type LockRequest } from "../engine/open.js";
import type { OpenOptions, Repository } from "../engine/repository.js";

/** Options every command accepts (declared on the root program). */
export interface GlobalOptions {
  repo?: string;
  passwordFile?: string;
  json?: boolean;
  quiet?: boolean;
  retryLock?: string;
  /** False with --no-lock (commander's negated flag). */
  lock?: boolean;
}

/** A signal aborted when the process gets SIGTERM or SIGINT: long-running commands stop at their next safe point. */
export function untilSignalled(): AbortSignal {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  return controller.signal;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** Opens the backend named by -r / CAIRN_REPOSITORY (a path or a URL, see backends/url.ts), with retries. */
export async function backendFor(location: string | undefined): Promise<Backend> {
  const loc = location ?? process.env.CAIRN_REPOSITORY;
  if (!loc) throw new CairnError("no repository given: use -r PATH or set CAIRN_REPOSITORY", 1);
  return openBackend(loc, process.env);
}

/**
 * The password, from (in order) --password-file, CAIRN_PASSWORD_FILE,
 * CAIRN_PASSWORD, or a prompt when standard input is a terminal.
 */
export async function readPassword(opts: GlobalOptions, purpose = "repository password", confirm = false): Promise<string> {
  const file = opts.passwordFile ?? process.env.CAIRN_PASSWORD_FILE;
  if (file) {
    try {
      return readFileSync(file, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new CairnError(`cannot read the password file ${file}: ${(err as Error).message}`);
    }
  }
  if (process.env.CAIRN_PASSWORD !== undefined) return process.env.CAIRN_PASSWORD;
  if (process.stdin.isTTY) {
    const pw = await prompt(`enter ${purpose}: `);
    if (confirm && (await prompt(`enter ${purpose} again: `)) !== pw) throw new CairnError("the passwords do not match; try again");
    return pw;
  }
  throw new CairnError("no password given: set CAIRN_PASSWORD or CAIRN_PASSWORD_FILE, or use --password-file", 1);
}

/** Reads a line from the terminal without echoing it. */
export function prompt(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode?.(true);
    stdin.resume();
    let value = "";
    const onData = (d: Buffer) => {
      for (const ch of d.toString("utf8")) {
        if (ch === "\r" || ch === "\n") {
          done();
          resolve(value);
          return;
        }
        if (ch === "\u0003") {
          done();
          reject(new CairnError("cancelled"));
          return;
        }
        if (ch === "\u007f") value = value.slice(0, -1);
        else value += ch;
      }
    };
    const done = () => {
      stdin.off("data", onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      process.stderr.write("\n");
    };
    stdin.on("data", onData);
  });
}

/** Parses "90s", "5m", "2h", "3d" (or plain seconds) into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new CairnError(`cannot read the duration "${text}": use a number with a unit, such as 30s, 5m, 2h or 1d`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? "s") as "s"];
  return Number(m[1]) * unit;
}

export type LockMode = "none" | "shared" | "exclusive";

/** Opens the repository, takes a lock, runs `fn`, and always releases and closes. */
export async function withRepository<T>(opts: GlobalOptions, lock: LockMode, operation: string, fn: (repo: Repository) => Promise<T>, openOptions: OpenOptions = {}): Promise<T> {
  const backend = await backendFor(opts.repo);
  const password = await readPassword(opts);
  return withRepositoryAt(backend, password, { ...openOptions, lock: lockRequest(opts, lock, operation) }, fn);
}

/** The lock a command takes: none with "none" or --no-lock; --retry-lock says how long to wait for it. */
export function lockRequest(opts: GlobalOptions, lock: LockMode, operation: string): LockRequest | undefined {
  if (lock === "none" || opts.lock === false) return undefined;
  return { exclusive: lock === "exclusive", operation, retryFor: opts.retryLock ? parseDuration(opts.retryLock) : 0 };
}

/** Thrown by writeStdout once the reader of standard output has gone (`cairn ... | head`): the command ends quietly. */
export class StdoutClosed extends Error {
  constructor() {
    super("standard output was closed");
    this.name = "StdoutClosed";
  }
}

/** What went wrong writing standard output, once something has. */
let stdoutError: NodeJS.ErrnoException | undefined;

/**
 * Notes a failed write to standard output instead of letting it crash the process.
 * A reader that went away (EPIPE) ends the command quietly; any other failure (a full
 * disk under `> file`) is an error the user must see: stdoutFailure() names it.
 */
export function watchStdout(): void {
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    stdoutError ??= err;
  });
}

/** The write error of standard output that is not a reader going away, if any. */
export function stdoutFailure(): Error | undefined {
  return stdoutError && stdoutError.code !== "EPIPE" ? stdoutError : undefined;
}

/** Writes to standard output, waiting while it is full; throws StdoutClosed (or the write error) once it fails. */
export async function writeStdout(data: Uint8Array | string): Promise<void> {
  const failed = () => (stdoutFailure() ? new CairnError(`cannot write to standard output: ${stdoutError!.message}`) : new StdoutClosed());
  if (stdoutError) throw failed();
  if (process.stdout.write(data)) return;
  await new Promise<void>((resolve, reject) => {
    const settle = (err?: unknown) => {
      process.stdout.off("drain", drained);
      process.stdout.off("error", broken);
      process.stdout.off("close", broken);
      if (err) reject(err);
      else resolve();
    };
    const drained = () => settle();
    const broken = () => settle(failed());
    process.stdout.on("drain", drained);
    process.stdout.on("error", broken);
    process.stdout.on("close", broken);
  });
}

/** Writes a result: JSON on stdout with --json, otherwise the human text. Nothing once standard output has failed. */
export function output(opts: GlobalOptions, json: unknown, text: () => string): void {
  if (stdoutError) return;
  if (opts.json) process.stdout.write(JSON.stringify(json) + "\n");
  else if (!opts.quiet) {
    const t = text();
    if (t) process.stdout.write(t.endsWith("\n") ? t : t + "\n");
  }
}

/** The --plan option of every command that picks snapshots: the snapshots of one plan of the Cairn API. */
export const PLAN_OPTION = ["--plan <id-or-name>", "only snapshots made by this Cairn plan, given by id or name"] as const;

/** A text table: each column as wide as its widest cell, the last one unpadded. */
export function formatTable(header: string[], rows: string[][]): string {
  const width = (s: string) => [...s].length;
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ""))));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(widths[i] - width(c)))).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}` : `${m}:${String(sec).padStart(2, "0")}`;
}

/**
 * A one-line progress display on stderr, only when stderr is a terminal and
 * neither --json nor --quiet was given.
 */
export class ProgressLine {
  private readonly enabled: boolean;
  private readonly started = Date.now();
  private shown = false;

  constructor(opts: GlobalOptions) {
    this.enabled = Boolean(process.stderr.isTTY) && !opts.json && !opts.quiet;
  }

  update(p: { filesDone: number; bytesDone: number; bytesTotal?: number; filesTotal?: number }): void {
    if (!this.enabled) return;
    const elapsed = (Date.now() - this.started) / 1000;
    const rate = elapsed > 0 ? p.bytesDone / elapsed : 0;
    const total = p.bytesTotal ?? 0;
    const eta = total > 0 && rate > 0 ? formatDuration((total - p.bytesDone) / rate) : "?";
    const files = p.filesTotal ? `${p.filesDone}/${p.filesTotal}` : `${p.filesDone}`;
    const bytes = total ? `${formatBytes(p.bytesDone)} / ${formatBytes(total)}` : formatBytes(p.bytesDone);
    const line = `[${formatDuration(elapsed)}] ${files} files, ${bytes}, ${formatBytes(rate)}/s, ETA ${eta}`;
    process.stderr.write(`\r\x1b[K${line}`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) process.stderr.write("\r\x1b[K");
  }
}
