import type { Backend } from "../backends/backend.js";
import { Compression, compressBlob, decompressBlob } from "./compression.js";
import { IntegrityError, sha256Hex } from "./crypto.js";

/**
 * Plaintext of an unpacked file (config, keyring, index, snapshot, lock, named file):
 * one byte of compression id, then the payload.
 */
export function packUnpacked(payload: Buffer, compress: boolean): Buffer {
  const c = compress ? compressBlob(payload, { algorithm: "zstd", level: 3 }) : { id: Compression.none, data: payload };
  return Buffer.concat([Uint8Array.of(c.id), c.data]);
}

/** The payload of an unpacked file's plaintext. */
export function unpackUnpacked(plain: Buffer): Buffer {
  if (plain.length < 1) throw new IntegrityError("empty file");
  return decompressBlob(plain[0], plain.subarray(1));
}

/** Reads a content-addressed file and checks that its bytes still hash to its name. */
export async function getVerified(backend: Backend, key: string, id: string): Promise<Buffer> {
  const bytes = await backend.get(key);
  if (sha256Hex(bytes) !== id) throw new IntegrityError(`${key} is damaged: its content no longer matches its name`);
  return bytes;
}
