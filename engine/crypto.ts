import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, randomFillSync, scrypt as scryptCb, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import { release } from "./release.js";

const scrypt = promisify(scryptCb) as (password: string | Buffer, salt: Buffer, keylen: number, options: object) => Promise<Buffer>;

/** Authenticated ciphers a repository can use. */
export type CipherName = "aes-256-gcm" | "chacha20-poly1305";
export const CIPHER_IDS: Record<CipherName, number> = { "aes-256-gcm": 1, "chacha20-poly1305": 2 };
const CIPHER_BY_ID = new Map<number, CipherName>([[1, "aes-256-gcm"], [2, "chacha20-poly1305"]]);

/** Envelope: version(1) cipher(1) epoch(u32 LE) nonce(12) ciphertext tag(16). */
export const ENVELOPE_VERSION = 1;
export const ENVELOPE_HEADER = 18;
export const ENVELOPE_OVERHEAD = ENVELOPE_HEADER + 16;

/** A data key: which epoch it belongs to and the 32 key bytes. */
export interface DataKey {
  epoch: number;
  key: Buffer;
}

/** Raised when authentication fails: wrong key, or the bytes were changed. */
export class IntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IntegrityError";
  }
}

/** Random bytes drawn in bulk: one call to the CSPRNG per 340 nonces instead of one per blob (per thread). */
const noncePool = Buffer.alloc(4080);
let nonceAt = noncePool.length;

/** Writes a fresh random 12-byte nonce at `out[at]`. */
function nonceInto(out: Buffer, at: number): void {
  if (nonceAt + 12 > noncePool.length) {
    randomFillSync(noncePool);
    nonceAt = 0;
  }
  noncePool.copy(out, at, nonceAt, nonceAt + 12);
  nonceAt += 12;
}

/**
 * Encrypts `plaintext` with AEAD. The envelope header is authenticated as
 * associated data, so changing the cipher or epoch byte is detected too.
 */
export function seal(plaintext: Uint8Array, key: DataKey, cipher: CipherName = "aes-256-gcm"): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE_OVERHEAD + plaintext.byteLength);
  out[0] = ENVELOPE_VERSION;
  out[1] = CIPHER_IDS[cipher];
  out.writeUInt32LE(key.epoch, 2);
  nonceInto(out, 6);
  const header = out.subarray(0, ENVELOPE_HEADER);
  const c = createCipheriv(cipher, key.key, out.subarray(6, 18), { authTagLength: 16 } as never) as ReturnType<typeof createCipheriv> & { setAAD(b: Buffer, o?: object): void; getAuthTag(): Buffer };
  c.setAAD(header, { plaintextLength: plaintext.byteLength });
  let pos = ENVELOPE_HEADER;
  // Node's cipher has no update into a given buffer: the ciphertext is copied into the
  // envelope, and its own buffer freed at once (see release.ts).
  const ct = c.update(plaintext);
  const n = ct.copy(out, pos);
  release(ct);
  pos += n;
  pos += c.final().copy(out, pos);
  c.getAuthTag().copy(out, pos);
  return out;
}

/** The epoch an envelope was sealed under, read without decrypting. */
export function envelopeEpoch(envelope: Uint8Array): number {
  if (envelope.byteLength < ENVELOPE_OVERHEAD) throw new IntegrityError("encrypted object is truncated");
  return Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength).readUInt32LE(2);
}

/** Decrypts an envelope; throws IntegrityError when it was not sealed by `keyFor(epoch)` or was changed. */
export function open(envelope: Uint8Array, keyFor: (epoch: number) => Buffer | KeyObject | undefined): Buffer {
  const buf = Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength);
  if (buf.length < ENVELOPE_OVERHEAD) throw new IntegrityError("encrypted object is truncated");
  if (buf[0] !== ENVELOPE_VERSION) throw new IntegrityError(`unknown envelope version ${buf[0]}`);
  const cipher = CIPHER_BY_ID.get(buf[1]);
  if (!cipher) throw new IntegrityError(`unknown cipher id ${buf[1]}`);
  const epoch = buf.readUInt32LE(2);
  const key = keyFor(epoch);
  if (!key) throw new IntegrityError(`no key for epoch ${epoch}`);
  const ct = buf.subarray(ENVELOPE_HEADER, buf.length - 16);
  const d = createDecipheriv(cipher, key, buf.subarray(6, 18), { authTagLength: 16 } as never) as ReturnType<typeof createDecipheriv> & { setAAD(b: Buffer, o?: object): void; setAuthTag(b: Buffer): void };
  d.setAAD(buf.subarray(0, ENVELOPE_HEADER), { plaintextLength: ct.length });
  d.setAuthTag(buf.subarray(buf.length - 16));
  // The plaintext is the buffer update() returns (an AEAD's final() adds nothing): no second buffer, no copy.
  const out = d.update(ct);
  let rest: Buffer;
  try {
    rest = d.final();
  } catch {
    throw new IntegrityError("authentication failed: the object was changed or the key is wrong");
  }
  return rest.length ? Buffer.concat([out, rest]) : out;
}

/** Keyed blob id: HMAC-SHA256 under the repository's id key, so ids reveal nothing about content. */
export function blobId(idKey: Buffer | KeyObject, data: Uint8Array): Buffer {
  return createHmac("sha256", idKey).update(data).digest();
}

export function sha256(data: Uint8Array): Buffer {
  return createHash("sha256").update(data).digest();
}

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export function randomKey(): Buffer {
  return randomBytes(32);
}

/** Password-based key derivation settings, stored in clear in each key file. */
export type KdfParams =
  | { name: "scrypt"; N: number; r: number; p: number }
  | { name: "argon2id"; memoryKiB: number; iterations: number; parallelism: number };

export const DEFAULT_SCRYPT: KdfParams = { name: "scrypt", N: 1 << 15, r: 8, p: 1 };
export const DEFAULT_ARGON2ID: KdfParams = { name: "argon2id", memoryKiB: 65536, iterations: 3, parallelism: 1 };

/** Derives the 32-byte key-wrapping key from a password. */
export async function deriveKey(password: string, salt: Buffer, params: KdfParams): Promise<Buffer> {
  if (params.name === "scrypt") {
    return scrypt(password, salt, 32, { N: params.N, r: params.r, p: params.p, maxmem: 128 * params.N * params.r * params.p + 64 * 1024 * 1024 });
  }
  const { hashRaw, Algorithm } = await import("@node-rs/argon2");
  return Buffer.from(
    await hashRaw(password, {
      algorithm: Algorithm.Argon2id,
      memoryCost: params.memoryKiB,
      timeCost: params.iterations,
      parallelism: params.parallelism,
      outputLen: 32,
      salt,
    }),
  );
}
