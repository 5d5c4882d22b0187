import { randomBytes } from "node:crypto";
import { open, seal } from "./crypto.js";

/**
 * Seals small secrets (repository passwords, cloud credentials) with the
 * platform's secret key, so they are never stored or sent in clear: the catalog
 * and Temporal's history hold only the sealed form.
 */
export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error("the platform secret key must be 32 bytes (base64 in CAIRN_SECRET_KEY)");
  }

  static generateKey(): Buffer {
    return randomBytes(32);
  }

  seal(secret: string): string {
    return seal(Buffer.from(secret, "utf8"), { epoch: 0, key: this.key }).toString("base64");
  }

  open(sealed: string): string {
    return open(Buffer.from(sealed, "base64"), (e) => (e === 0 ? this.key : undefined)).toString("utf8");
  }
}

/**
 * The platform secret key: CAIRN_SECRET_KEY (base64) when set, otherwise
 * `<dataDir>/secret.key`, created (mode 0600) by the first process that needs it.
 * The API and every worker must share it.
 */
export async function loadSecretBox(dataDir: string): Promise<SecretBox> {
  const fromEnv = process.env.CAIRN_SECRET_KEY;
  if (fromEnv) return new SecretBox(Buffer.from(fromEnv, "base64"));
  const { mkdir, readFile, writeFile } = await import("node:fs/promises");
  const path = await import("node:path");
  const file = path.join(dataDir, "secret.key");
  try {
    return new SecretBox(Buffer.from((await readFile(file, "utf8")).trim(), "base64"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(dataDir, { recursive: true });
  try {
    await writeFile(file, SecretBox.generateKey().toString("base64") + "\n", { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err; // another process made it first
  }
  return new SecretBox(Buffer.from((await readFile(file, "utf8")).trim(), "base64"));
}
