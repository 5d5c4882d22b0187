import { randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { envelopeEpoch, open, seal } from "./crypto.js";

/** One platform key: its epoch (0 for the first, one more at each rotation) and its 32 bytes. */
export interface PlatformKey {
  epoch: number;
  key: Buffer;
}

/**
 * Seals small secrets (repository passwords, cloud credentials, the audit
 * signing key) with the platform's secret key, so they are never stored or sent
 * in clear: the catalog and Temporal's history hold only the sealed form.
 *
 * The box holds a keyring: it seals with the newest key and opens what any of
 * its keys sealed, so values sealed before a rotation (in Temporal's schedules
 * and running workflows) still open. `reload` re-reads the keyring when a value
 * names an epoch this process does not know yet (another process rotated the key).
 */
export class SecretBox {
  private keys = new Map<number, Buffer>();
  private current!: PlatformKey;

  constructor(
    key: Buffer | PlatformKey[],
    private readonly reload?: () => PlatformKey[],
  ) {
    this.load(Buffer.isBuffer(key) ? [{ epoch: 0, key }] : key);
  }

  private load(keys: PlatformKey[]): void {
    if (!keys.length) throw new Error("the platform keyring holds no key");
    for (const k of keys) {
      if (k.key.length !== 32) throw new Error("the platform secret key must be 32 bytes (base64 in CAIRN_SECRET_KEY)");
    }
    this.keys = new Map(keys.map((k) => [k.epoch, k.key]));
    const epoch = Math.max(...keys.map((k) => k.epoch));
    this.current = { epoch, key: this.keys.get(epoch)! };
  }

  static generateKey(): Buffer {
    return randomBytes(32);
  }

  /** The epoch new values are sealed under. */
  get epoch(): number {
    return this.current.epoch;
  }

  /** The keyring, newest first, as the key file holds it. */
  get keyring(): PlatformKey[] {
    return [...this.keys].map(([epoch, key]) => ({ epoch, key })).sort((a, b) => b.epoch - a.epoch);
  }

  seal(secret: string): string {
    return seal(Buffer.from(secret, "utf8"), this.current).toString("base64");
  }

  open(sealed: string): string {
    const envelope = Buffer.from(sealed, "base64");
    const epoch = envelopeEpoch(envelope);
    if (!this.keys.has(epoch) && this.reload) this.load(this.reload());
    return open(envelope, (e) => this.keys.get(e)).toString("utf8");
  }

  /** The epoch a sealed value was sealed under. */
  static sealedEpoch(sealed: string): number {
    return envelopeEpoch(Buffer.from(sealed, "base64"));
  }
}

/** Reads a keyring: lines of "<epoch> <base64 key>", or one bare base64 key (epoch 0, the format before rotation). */
export function parseKeyring(text: string, where: string): PlatformKey[] {
  const lines = text
    .split(/[\n,]/)
    .map((l) => l.trim())
    .filter(Boolean);
  const keys = lines.map((line) => {
    const m = /^(?:(\d+)\s+)?([A-Za-z0-9+/=]+)$/.exec(line);
    if (!m) throw new Error(`${where} is not a platform keyring: each line is "<epoch> <base64 key>"`);
    return { epoch: Number(m[1] ?? 0), key: Buffer.from(m[2], "base64") };
  });
  if (!keys.length) throw new Error(`${where} holds no key`);
  return keys;
}

export function formatKeyring(keys: PlatformKey[]): string {
  return keys.map((k) => `${k.epoch} ${k.key.toString("base64")}\n`).join("");
}

/**
 * The platform secret key: CAIRN_SECRET_KEY (base64, or a keyring) when set,
 * otherwise `<dataDir>/secret.key`, created (mode 0600) by the first process
 * that needs it. An existing file that others could read is refused with the
 * chmod to run. The API and every worker must share it.
 */
export async function loadSecretBox(dataDir: string): Promise<SecretBox> {
  const fromEnv = process.env.CAIRN_SECRET_KEY;
  if (fromEnv) return new SecretBox(parseKeyring(fromEnv, "CAIRN_SECRET_KEY"));
  const { mkdir, writeFile } = await import("node:fs/promises");
  const file = keyFile(dataDir);
  const read = () => readKeyFile(file);
  try {
    return new SecretBox(read(), read);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(dataDir, { recursive: true });
  try {
    await writeFile(file, formatKeyring([{ epoch: 0, key: SecretBox.generateKey() }]), { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err; // another process made it first
  }
  return new SecretBox(read(), read);
}

/** Where the platform keyring lives when CAIRN_SECRET_KEY is not set. */
export function keyFile(dataDir: string): string {
  return path.join(dataDir, "secret.key");
}

/**
 * Adds a new newest key to the keyring file (the old ones stay, to open what was
 * sealed before) and returns the box that seals with it. Written to a temporary
 * file (0600) and renamed over the old one, so a crash leaves one or the other.
 */
export async function rotateKeyFile(dataDir: string): Promise<SecretBox> {
  if (process.env.CAIRN_SECRET_KEY) {
    throw new Error("the platform key comes from CAIRN_SECRET_KEY, which this command cannot change: unset it to rotate the key file, or put a new keyring in the variable of every process yourself");
  }
  const { chmod, rename, writeFile } = await import("node:fs/promises");
  const file = keyFile(dataDir);
  const box = new SecretBox(readKeyFile(file));
  const next = [{ epoch: box.epoch + 1, key: SecretBox.generateKey() }, ...box.keyring];
  const tmp = `${file}.rotating`;
  await writeFile(tmp, formatKeyring(next), { mode: 0o600 });
  await chmod(tmp, 0o600); // a file left by an interrupted rotation keeps its mode otherwise
  await rename(tmp, file);
  return new SecretBox(next);
}

/** Reads the key file, refusing one that its group or others may read: whoever reads it opens every sealed secret. */
function readKeyFile(file: string): PlatformKey[] {
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) {
    throw Object.assign(
      new Error(`the platform secret key ${file} may be read by others (mode ${mode.toString(8).padStart(4, "0")}); whoever reads it opens every stored password. Run: chmod 600 ${file}`),
      { code: "EKEYMODE" },
    );
  }
  return parseKeyring(readFileSync(file, "utf8"), file);
}
