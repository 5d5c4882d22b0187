import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { DEFAULT_ARGON2ID, deriveKey, IntegrityError, open, seal, type CipherName } from "./crypto.js";

describe("AEAD envelope", () => {
  for (const cipher of ["aes-256-gcm", "chacha20-poly1305"] as CipherName[]) {
    it(`${cipher}: round-trips and detects a change to any byte`, () => {
      const key = { epoch: 3, key: randomBytes(32) };
      const plain = randomBytes(300);
      const env = seal(plain, key, cipher);
      expect(open(env, (e) => (e === 3 ? key.key : undefined)).equals(plain)).toBe(true);
      for (let i = 0; i < env.length; i++) {
        const bad = Buffer.from(env);
        bad[i] ^= 0x01;
        expect(() => open(bad, (e) => (e === 3 ? key.key : undefined))).toThrow(IntegrityError);
      }
    });
  }

  it("refuses the wrong key and a truncated envelope", () => {
    const key = { epoch: 0, key: randomBytes(32) };
    const env = seal(Buffer.from("secret"), key);
    expect(() => open(env, () => randomBytes(32))).toThrow(IntegrityError);
    expect(() => open(env.subarray(0, 20), () => key.key)).toThrow(IntegrityError);
  });

  it("derives the same argon2id key for the same password and salt, another for another password", async () => {
    const salt = randomBytes(32);
    const params = { ...DEFAULT_ARGON2ID, memoryKiB: 8192, iterations: 1 };
    const a = await deriveKey("pw", salt, params);
    expect(a.equals(await deriveKey("pw", salt, params))).toBe(true);
    expect(a.equals(await deriveKey("pw2", salt, params))).toBe(false);
  });
});
