import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const CLI = path.join(ROOT, "bin", "cairn.js");
export const PASSWORD = "correct horse battery staple";

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = "cairn-test-"): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built `cairn` CLI (dist/, built by `npm test`'s pretest step). */
export function cairn(args: string[], opts: { env?: Record<string, string | undefined>; input?: string | Buffer; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, CAIRN_PASSWORD: PASSWORD, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    child.stdin.end(opts.input ?? "");
  });
}

/** Like cairn() but returns stdout as bytes (for dump). */
export function cairnBytes(args: string[], env: Record<string, string> = {}): { code: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, CAIRN_PASSWORD: PASSWORD, ...env }, maxBuffer: 1 << 30 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Runs cairn and fails the test with its output when the exit code is not the expected one. */
export async function cairnOk(args: string[], opts: Parameters<typeof cairn>[1] = {}, expected = 0): Promise<CliResult> {
  const r = await cairn(args, opts);
  if (r.code !== expected) throw new Error(`cairn ${args.join(" ")} exited ${r.code} (expected ${expected})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}
