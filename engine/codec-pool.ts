import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { Codec, type CodecKeys, type CodecRequest, type OpenBatchRequest, type OpenBatchResult, type OpenRequest, type OpenResult, type SealBatchRequest, type SealBatchResult, type SealRequest, type SealResult } from "./codec.js";
import { IntegrityError } from "./crypto.js";
import { closeAll, type ReadSealRequest, type ReadSealResult } from "./read-seal.js";
import type { RestoreRangeRequest, RestoreRangeResult } from "./restore-writer.js";

const INLINE_MAX = 16 * 1024;
/** Young generation of each codec thread, MiB (see start()). */
const YOUNG_MB = 4;
/**
 * Jobs that seal what a backup reads get a second (third, ...) thread only once every
 * running one has this many waiting: a backup of small files is bound by the main
 * thread (reading, chunking, hashing), which one codec thread keeps up with, and each
 * thread costs memory. 200,000 files of 0-8 KiB, first backup, two runs each: two
 * threads 152-153 MiB, one 136 MiB, in the same time (12.0-16.7 s, noisy); the 1 GiB
 * set's large files still start both threads. A restore or check starts the threads it
 * asks for at once: with one thread a restore of the 200,000 files took 19-22 s
 * instead of 16-18.
 */
const SEAL_BACKLOG = 4;
const SEALS = new Set<CodecRequest["op"]>(["seal", "sealBatch", "readSeal"]);
/** How long close() lets a worker finish the jobs it holds before terminating it. */
const CLOSE_GRACE_MS = 10_000;

/** Pools whose threads are running, for stopCodecThreads(). */
const live = new Set<CodecPool>();

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/**
 * Runs codec work on worker threads so compression and encryption use every core
 * while the main thread reads, chunks and hashes. With `threads: 0` everything runs
 * inline (handy for unit tests and tiny jobs).
 */
export class CodecPool {
  private readonly workers: Worker[] = [];
  /** Small jobs run here: a round trip to a worker costs more than the work. */
  private readonly inline: Codec;
  private readonly pending = new Map<number, Pending>();
  private readonly load: number[] = [];
  private seq = 0;
  /** Shared with the threads: once set, they skip the jobs still queued and answer them with an error. */
  private readonly stopping = new Int32Array(new SharedArrayBuffer(4));
  readonly threads: number;

  constructor(private readonly keys: CodecKeys, threads = defaultThreads()) {
    this.threads = Math.max(0, threads);
    this.inline = new Codec(keys);
  }

  /** Starts worker threads on first use, up to `count`, so commands that never need them (or need fewer) do not pay for them. */
  private start(count: number): void {
    // Run from TypeScript sources (unit tests), the worker is the compiled copy in dist/.
    const self = import.meta.url;
    const file = new URL(self.endsWith(".ts") ? "../dist/engine/codec-worker.js" : "./codec-worker.js", self);
    const data: CodecWorkerData = { keys: this.keys, stopping: this.stopping };
    live.add(this);
    for (let i = this.workers.length; i < count; i++) {
      // A small young generation: a codec thread makes short-lived buffers at a high rate, and a
      // large nursery only turns that into resident memory (about 25 MiB a thread by default).
      // trackUnmanagedFds off: a readSeal job closes descriptors the main thread opened,
      // which a tracking thread reports as a warning for every file.
      const w = new Worker(file, { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_MB }, trackUnmanagedFds: false });
      // Idle workers do not keep the process alive; a busy one does (see run()), because a
      // thread torn down in the middle of a zstd call aborts the whole process
      // ("terminate called after throwing an instance of 'Napi::Error'").
      w.unref();
      w.on("message", (msg: { seq: number; result?: unknown; error?: { name: string; message: string } }) => {
        const p = this.pending.get(msg.seq);
        if (!p) return;
        this.pending.delete(msg.seq);
        if (--this.load[i] === 0) w.unref();
        if (msg.error) {
          const e = msg.error.name === "IntegrityError" ? new IntegrityError(msg.error.message) : new Error(msg.error.message);
          p.reject(e);
        } else p.resolve(asBuffers(msg.result as Record<string, unknown>));
      });
      w.on("error", (err) => {
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        this.load[i] = 0;
        w.unref();
      });
      this.workers.push(w);
      this.load.push(0);
    }
  }

  /** Codec threads started so far. */
  get started(): number {
    return this.workers.length;
  }

  /** Jobs sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** With `inline`, the job runs on this thread whatever its size (see Repository.saveBlob). */
  seal(req: Omit<SealRequest, "op">, transfer = false, inline = false): Promise<SealResult> {
    return this.run({ op: "seal", ...req }, transfer ? req.data : undefined, inline) as Promise<SealResult>;
  }

  /** Seals many small blobs in one job (one round trip to a thread instead of one each). `req.data` is moved to the worker. */
  sealBatch(req: Omit<SealBatchRequest, "op">): Promise<SealBatchResult> {
    return this.run({ op: "sealBatch", ...req }, req.data) as Promise<SealBatchResult>;
  }

  /** With `inline`, the job runs on this thread whatever its size (see Repository.loadBlob). */
  open(req: Omit<OpenRequest, "op">, inline = false): Promise<OpenResult> {
    return this.run({ op: "open", ...req }, undefined, inline) as Promise<OpenResult>;
  }

  /**
   * Opens every listed blob of one buffer in a single job. With `transfer`, the
   * buffer is moved to the worker (the caller must not use it afterwards).
   */
  openBatch(req: Omit<OpenBatchRequest, "op">, transfer = false): Promise<OpenBatchResult> {
    return this.run({ op: "openBatch", ...req }, transfer ? req.buffer : undefined) as Promise<OpenBatchResult>;
  }

  /**
   * Like openBatch, but the job goes to the least busy of the first `threads` codec threads
   * only while that one holds fewer than `depth` jobs; otherwise it runs here, on the
   * calling thread, which would only have waited. A caller that does its share this way
   * keeps the threads it does not need unstarted (see checker.ts).
   */
  openBatchShared(req: Omit<OpenBatchRequest, "op">, threads: number, depth: number, transfer = false): Promise<OpenBatchResult> {
    const n = Math.min(Math.max(1, threads), this.threads);
    const busy = this.workers.length >= n && this.load.slice(0, n).every((l) => l >= depth);
    return this.run({ op: "openBatch", ...req }, transfer ? req.buffer : undefined, busy, n) as Promise<OpenBatchResult>;
  }

  /**
   * Opens the blobs of one pack range and writes them into their files on a codec
   * thread (see restore-writer.ts). With `transfer`, the buffer is moved to the worker.
   */
  restoreRange(req: Omit<RestoreRangeRequest, "op">, transfer = false): Promise<RestoreRangeResult> {
    return this.run({ op: "restoreRange", ...req }, transfer ? req.buffer : undefined) as Promise<RestoreRangeResult>;
  }

  /**
   * Reads, hashes and seals small files from descriptors opened on this thread (see
   * read-seal.ts); every descriptor is closed, also when the job fails or never runs.
   */
  readSeal(req: Omit<ReadSealRequest, "op">): Promise<ReadSealResult> {
    if (Atomics.load(this.stopping, 0)) {
      closeAll(req.fds);
      return Promise.reject(new Error("the codec threads are stopping"));
    }
    return this.run({ op: "readSeal", ...req }) as Promise<ReadSealResult>;
  }

  /** `threads`: the job goes to one of the first this many codec threads (started as needed). */
  private run(req: CodecRequest, transferable?: Uint8Array, inline = false, threads = this.threads): Promise<unknown> {
    const payload = req.op === "readSeal" ? undefined : req.op === "seal" || req.op === "sealBatch" ? req.data : req.op === "open" ? req.envelope : req.buffer;
    // A readSeal job carries no bytes, only descriptors: it always goes to a thread.
    const size = payload ? payload.byteLength : Infinity;
    if (inline || this.threads === 0 || size <= INLINE_MAX) {
      try {
        return Promise.resolve(this.inline.run(req));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (Atomics.load(this.stopping, 0)) return Promise.reject(new Error("the codec threads are stopping"));
    if (this.workers.length < threads) {
      if (!SEALS.has(req.op)) this.start(threads);
      else if (this.workers.length === 0 || this.load[this.leastBusy(threads)] >= SEAL_BACKLOG) this.start(this.workers.length + 1);
    }
    const best = this.leastBusy(threads);
    const seq = ++this.seq;
    if (this.load[best]++ === 0) this.workers[best].ref();
    // Structured clone copies a view's WHOLE underlying buffer (a 16 MiB pack for a
    // 1 MiB blob), so a view is first copied into a buffer of its own and moved.
    // Only a buffer the caller handed over (`transferable`) is moved without a copy.
    let message: CodecRequest = req;
    const transfer: ArrayBuffer[] = [];
    if (payload) {
      const owned = payload === transferable && payload.byteOffset === 0 && payload.byteLength === payload.buffer.byteLength;
      const moved = owned ? payload : copyOf(payload);
      message = req.op === "seal" || req.op === "sealBatch" ? { ...req, data: moved } : req.op === "open" ? { ...req, envelope: moved } : { ...req, buffer: moved } as CodecRequest;
      transfer.push(moved.buffer as ArrayBuffer);
    }
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.workers[best].postMessage({ seq, req: message }, transfer);
    });
  }

  /** The started thread, among the first `threads`, with the fewest jobs (0 when none is started). */
  private leastBusy(threads: number): number {
    let best = 0;
    for (let i = 1; i < this.workers.length && i < threads; i++) if (this.load[i] < this.load[best]) best = i;
    return best;
  }

  /** From now on the threads skip the jobs still queued and no new job is taken (see stopCodecThreads). */
  skipQueued(): void {
    Atomics.store(this.stopping, 0, 1);
  }

  /**
   * Stops the workers once they have answered every job already sent: each gets a close
   * message after its queue and ends on its own. Terminating a thread in the middle of a
   * zstd call aborts the process, so terminate() is only the fallback for a thread that
   * does not end within CLOSE_GRACE_MS.
   */
  async close(): Promise<void> {
    live.delete(this);
    const workers = this.workers.splice(0);
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const fallback = setTimeout(() => void w.terminate(), CLOSE_GRACE_MS);
            w.once("exit", () => {
              clearTimeout(fallback);
              resolve();
            });
            w.postMessage({ close: true });
          }),
      ),
    );
  }
}

/** What each codec thread is started with. */
export interface CodecWorkerData {
  keys: CodecKeys;
  /** Non-zero once the pool is stopping (see stopCodecThreads). */
  stopping: Int32Array;
}

/**
 * Ends every codec thread of the process soon, for a process about to exit: queued
 * jobs are skipped (answered with an error), each thread ends once the call it is in
 * returns, never in the middle of one (that would abort the process, see close()).
 * Resolves when they have ended or after `patienceMs`, whichever comes first.
 */
export async function stopCodecThreads(patienceMs: number): Promise<void> {
  const pools = [...live];
  for (const p of pools) p.skipQueued();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(pools.map((p) => p.close())),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, patienceMs))),
  ]);
  clearTimeout(timer);
}

/** A copy in a buffer of its own (Buffer#copy is a memcpy; the Uint8Array constructor is far slower). */
function copyOf(view: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(view.byteLength);
  Buffer.from(view.buffer, view.byteOffset, view.byteLength).copy(out);
  return out;
}

/** Structured clone turns Buffers into plain Uint8Arrays; give callers Buffers back. */
function asBuffers(result: Record<string, unknown>): Record<string, unknown> {
  for (const k of ["envelope", "data", "ids", "buffer"]) {
    const v = result[k];
    if (v instanceof Uint8Array && !Buffer.isBuffer(v)) result[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  if (Array.isArray(result.items)) for (const it of result.items as Record<string, unknown>[]) asBuffers(it);
  return result;
}

function defaultThreads(): number {
  const env = Number(process.env.CAIRN_THREADS);
  if (Number.isInteger(env) && env >= 0) return env;
  return Math.max(1, availableParallelism());
}
