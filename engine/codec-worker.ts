import { parentPort, workerData } from "node:worker_threads";
import { Codec, type CodecKeys, type CodecRequest } from "./codec.js";

const codec = new Codec(workerData as CodecKeys);

parentPort!.on("message", (msg: { seq: number; req: CodecRequest }) => {
  try {
    const result = codec.run(msg.req);
    const transfer: ArrayBuffer[] = [];
    const out = "envelope" in result ? result.envelope : "data" in result ? result.data : undefined;
    // Transfer only buffers that own their whole ArrayBuffer; pooled small buffers are copied.
    if (out && out.byteOffset === 0 && out.byteLength === out.buffer.byteLength) transfer.push(out.buffer as ArrayBuffer);
    parentPort!.postMessage({ seq: msg.seq, result }, transfer);
  } catch (err) {
    parentPort!.postMessage({ seq: msg.seq, error: { name: (err as Error).name, message: (err as Error).message } });
  }
});
