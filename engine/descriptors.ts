import { promises as fs, openSync } from "node:fs";
import { CairnError } from "./errors.js";

/** How long an open waits for a free file descriptor before it gives up. */
const OPEN_PATIENCE_MS = 60_000;

/** EMFILE / ENFILE: the process or the whole system is out of file descriptors for now. */
export function outOfDescriptors(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === "EMFILE" || code === "ENFILE";
}

/**
 * fs.open that rides out a shortage of file descriptors (EMFILE, ENFILE): it waits,
 * with a growing pause, for other handles to close instead of failing the job. Only
 * when none becomes free for a minute does it fail, saying what to do.
 */
export async function openPatiently(file: string, flags: number, mode?: number): Promise<fs.FileHandle> {
  const started = Date.now();
  for (let pause = 1; ; pause = Math.min(pause * 2, 250)) {
    try {
      return await fs.open(file, flags, mode);
    } catch (err) {
      if (!outOfDescriptors(err)) throw err;
      if (Date.now() - started > OPEN_PATIENCE_MS) throw noDescriptorFreed(file, err);
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * openPatiently for a worker thread that has nothing else to do meanwhile (the
 * restore writer): the same patience and the same error, waiting in Atomics.wait.
 * The error keeps the errno code, since a worker's failure crosses to the main
 * thread as its message and code.
 */
export function openPatientlySync(file: string, flags: number, mode?: number): number {
  const started = Date.now();
  for (let pause = 1; ; pause = Math.min(pause * 2, 250)) {
    try {
      return openSync(file, flags, mode);
    } catch (err) {
      if (!outOfDescriptors(err)) throw err;
      if (Date.now() - started > OPEN_PATIENCE_MS) throw Object.assign(noDescriptorFreed(file, err), { code: (err as NodeJS.ErrnoException).code });
      Atomics.wait(sleeper, 0, 0, pause);
    }
  }
}

function noDescriptorFreed(file: string, err: unknown): CairnError {
  return new CairnError(
    `cannot open ${file}: ${(err as Error).message}; no file descriptor became free for ${OPEN_PATIENCE_MS / 1000} s. ` +
      `Raise the open-file limit (ulimit -n) or stop the processes that hold many files open`,
  );
}
