import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "../test/helpers.js";
import { formatKeyring, keyFile, loadSecretBox, rotateKeyFile, SecretBox } from "./secret-box.js";

describe("platform secret key", () => {
  const scratch = tempDir("cairn-secret-box-");
  afterAll(() => scratch.cleanup());

  it("creates the key file readable by its owner only, and refuses one that others may read, with the chmod to run", async () => {
    const dir = path.join(scratch.dir, "a");
    const box = await loadSecretBox(dir);
    expect(statSync(keyFile(dir)).mode & 0o777).toBe(0o600);
    const sealed = box.seal("hunter2");
    chmodSync(keyFile(dir), 0o644);
    await expect(loadSecretBox(dir)).rejects.toThrow(`may be read by others (mode 0644); whoever reads it opens every stored password. Run: chmod 600 ${keyFile(dir)}`);
    chmodSync(keyFile(dir), 0o640);
    await expect(loadSecretBox(dir)).rejects.toThrow(/chmod 600/);
    chmodSync(keyFile(dir), 0o600);
    expect((await loadSecretBox(dir)).open(sealed)).toBe("hunter2");
  });

  it("reads a key file of the first format (one bare base64 key) as epoch 0", async () => {
    const dir = path.join(scratch.dir, "b");
    const key = SecretBox.generateKey();
    const old = new SecretBox(key).seal("s3cret");
    await import("node:fs/promises").then((fs) => fs.mkdir(dir, { recursive: true }));
    writeFileSync(keyFile(dir), key.toString("base64") + "\n", { mode: 0o600 });
    const box = await loadSecretBox(dir);
    expect(box.epoch).toBe(0);
    expect(box.open(old)).toBe("s3cret");
  });

  it("rotates: new values are sealed under the new epoch, old ones still open, and another process picks the new key up", async () => {
    const dir = path.join(scratch.dir, "c");
    const before = await loadSecretBox(dir);
    const old = before.seal("first");
    const rotated = await rotateKeyFile(dir);
    expect(rotated.epoch).toBe(1);
    expect(statSync(keyFile(dir)).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyFile(dir), "utf8")).toBe(formatKeyring(rotated.keyring));
    const fresh = rotated.seal("second");
    expect(SecretBox.sealedEpoch(fresh)).toBe(1);
    expect(rotated.open(old)).toBe("first");
    // `before` was loaded with epoch 0 only: it reloads the file when it meets epoch 1.
    expect(before.open(fresh)).toBe("second");
    expect(before.epoch).toBe(1);
  });
});
