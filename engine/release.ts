/**
 * Frees the memory of a buffer that is dead now, instead of at V8's next collection.
 *
 * A backup moves its bytes through buffers outside V8's heap (chunk copies, compressed
 * output, envelopes, pack parts). V8 frees such a buffer only when a collection finds
 * its wrapper dead, and a thread whose JavaScript allocates little collects rarely: on
 * the 1 GiB bench set the dead ones reached about 100 MiB per codec thread and 150 MiB
 * on the main thread before a collection came. Detaching the ArrayBuffer
 * (`transfer(0)`) hands its memory back to the allocator at once.
 *
 * Only a buffer that spans its whole ArrayBuffer is freed: a slice of Node's shared
 * pool, or any other view, is left to the collector. The caller MUST hold the only
 * reference in use: every view of the buffer reads as empty afterwards, its length
 * too (read what you need of it first).
 */
export function release(buf: Uint8Array | undefined): void {
  if (!buf || !ownsBuffer(buf)) return;
  const ab = buf.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer; detached?: boolean };
  if (typeof ab.transfer !== "function" || ab.detached) return;
  ab.transfer(0);
}

/** True when `buf` spans its whole ArrayBuffer, so release() would free it. */
export function ownsBuffer(buf: Uint8Array): boolean {
  return buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && buf.buffer instanceof ArrayBuffer;
}

/** The buffers end to end in a new one; each is freed once copied (the caller holds no other reference to them). */
export function joinReleasing(parts: Buffer[], lengths: number[]): Buffer {
  const joined = Buffer.allocUnsafeSlow(lengths.reduce((n, l) => n + l, 0));
  let at = 0;
  for (const p of parts) {
    at += p.copy(joined, at);
    release(p);
  }
  return joined;
}
