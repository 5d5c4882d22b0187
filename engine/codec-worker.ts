import { parentPort, workerData } from "node:worker_threads";
import { Codec, type CodecRequest } from "./codec.js";
import type { CodecWorkerData } from "./codec-pool.js";
import { closeAll } from "./read-seal.js";

const { keys, stopping } = workerData as CodecWorkerData;
const codec = new Codec(keys);

/** Buffers that own their whole ArrayBuffer move back without a copy; pooled small ones are copied. */
function transferList(result: object): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const add = (b: Uint8Array | undefined) => {
    if (b && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) out.add(b.buffer as ArrayBuffer);
  };
  if ("envelope" in result) add(result.envelope as Buffer);
  if ("data" in result) add(result.data as Buffer | undefined);
  if ("ids" in result) add(result.ids as Buffer);
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
  } catch (err) {
    parentPort!.postMessage({ seq: msg.seq, error: { name: (err as Error).name, message: (err as Error).message } });
  }
});
