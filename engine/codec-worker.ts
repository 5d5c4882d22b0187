import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { parentPort, workerData } from "node:worker_threads";
import { Codec, type CodecRequest } from "./codec.js";
import type { CodecWorkerData } from "./codec-pool.js";
import { closeAll } from "./read-seal.js";
import { release } from "./release.js";

const { keys, stopping } = workerData as CodecWorkerData;
const codec = new Codec(keys);

/**
 * A read job (a pack range to restore or verify) leaves its buffers dead when it
 * returns: the range it was handed and a decrypted envelope per blob, all outside V8's
 * heap. V8 frees such buffers only at a collection, and this thread's JavaScript
 * allocates so little that its young generation rarely fills: the dead buffers piled
 * up to about 40 MiB per thread before external memory forced a collection, and every
 * new buffer was fresh pages (page faults). A minor collection after each read job
 * (a small heap: well under a millisecond) hands them back to malloc at once, and the
 * next job reuses the same pages.
 */
const collectYoung = youngCollector();

/**
 * V8's `gc`, taken from a context made with --expose-gc on. The flag is process-wide and
 * stays on: threads start at the same time, and one turning it off again could leave
 * another without it. Where it cannot be had, memory is freed as before (later).
 */
function youngCollector(): () => void {
  try {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("typeof gc === 'function' ? gc : undefined") as ((o: { type: "minor" }) => void) | undefined;
    if (gc) return () => gc({ type: "minor" });
  } catch {
    // fall through: no collection on demand
  }
  return () => {};
}

/** Buffers that own their whole ArrayBuffer move back without a copy; pooled small ones are copied. */
function transferList(result: object): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const add = (b: Uint8Array | undefined) => {
    if (b && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) out.add(b.buffer as ArrayBuffer);
  };
  if ("envelope" in result) add(result.envelope as Buffer);
  if ("data" in result) add(result.data as Buffer | undefined);
  if ("ids" in result) add(result.ids as Buffer);
  if ("buffer" in result) add(result.buffer as Buffer);
  if ("items" in result) for (const it of result.items as { data?: Buffer }[]) add(it.data);
  return [...out];
}

parentPort!.on("message", (msg: { seq: number; req: CodecRequest } | { close: true }) => {
  // Sent by CodecPool.close() after every job: closing the port lets this thread end
  // between calls, never in the middle of one.
  if ("close" in msg) return parentPort!.close();
  // The process is ending (stopCodecThreads): do not start on what is still queued.
  if (Atomics.load(stopping, 0)) {
    if (msg.req.op === "readSeal") closeAll(msg.req.fds);
    return parentPort!.postMessage({ seq: msg.seq, error: { name: "Error", message: "the codec threads are stopping" } });
  }
  try {
    const result = codec.run(msg.req);
    parentPort!.postMessage({ seq: msg.seq, result }, transferList(result));
    if (msg.req.op === "restoreRange" || msg.req.op === "openBatch") collectYoung();
    // The bytes a seal job was handed (moved here, see CodecPool.run) are dead once sealed.
    else if (msg.req.op === "seal" || msg.req.op === "sealBatch") release(msg.req.data);
  } catch (err) {
    parentPort!.postMessage({ seq: msg.seq, error: { name: (err as Error).name, message: (err as Error).message } });
  }
});
