import { BackendError, type BackendErrorKind, type ByteRange } from "./backend.js";

/** Helpers shared by the remote backends: classifying failures, streaming bodies, running requests side by side. */

/** Network failures worth another try. */
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ECONNABORTED",
  "REQUEST_SEND_ERROR", "TimeoutError", "RequestTimeout", "RequestTimeTooSkewed", "SlowDown", "ServiceUnavailable", "InternalError", "ThrottlingException",
]);

/** Transient for timeouts, throttling, server errors and network failures; permanent otherwise. */
export function statusKind(status: number | undefined, code: string | undefined): BackendErrorKind {
  if (status === 408 || status === 429 || (status !== undefined && status >= 500)) return "transient";
  return code !== undefined && TRANSIENT_CODES.has(code) ? "transient" : "permanent";
}

/**
 * The bytes [start, start+length) of a body given in parts, as views of those
 * parts (nothing is copied).
 */
export function slicesOf(parts: readonly Uint8Array[], start: number, length: number): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  const end = start + length;
  for (const p of parts) {
    const from = Math.max(start, offset);
    const to = Math.min(end, offset + p.byteLength);
    if (from < to) out.push(Buffer.from(p.buffer, p.byteOffset + from - offset, to - from));
    offset += p.byteLength;
    if (offset >= end) break;
  }
  return out;
}

/** Reads a response body of known length into one buffer, without collecting chunks first. */
export async function readInto(stream: AsyncIterable<Uint8Array> | NodeJS.ReadableStream, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  for await (const chunk of stream as AsyncIterable<Uint8Array>) {
    if (got + chunk.byteLength > length) throw new BackendError("transient", `the server sent more than the ${length} bytes it announced`);
    buf.set(chunk, got);
    got += chunk.byteLength;
  }
  if (got !== length) throw new BackendError("transient", `the connection ended after ${got} of ${length} bytes`);
  return buf;
}

/** The error for a range that reaches past the end of an object: asking again will not help. */
export function shortRange(key: string, location: string, range: ByteRange): BackendError {
  return new BackendError("permanent", `reading ${key} at ${location}: the object is shorter than the requested range (${range.offset}+${range.length})`);
}
