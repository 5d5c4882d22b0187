import { hostname, userInfo } from "node:os";
import { randomBytes } from "node:crypto";
import { isNotFound, type Backend } from "../backends/backend.js";
import { deriveKey, IntegrityError, open, randomKey, seal, sha256Hex, type CipherName, type DataKey, type KdfParams } from "./crypto.js";
import { CairnError, RepositoryNotFoundError, WrongPasswordError } from "./errors.js";
import { getVerified, packUnpacked, unpackUnpacked } from "./unpacked.js";

/** A key file (`keys/<id>`): KDF parameters and the master key wrapped by the password-derived key. */
export interface KeyFile {
  version: number;
  created: string;
  host: string;
  username: string;
  kdf: KdfParams;
  salt: string;
  data: string;
}

/** The master key: `encKey` seals data of epoch 0 and the keyring, `idKey` keys blob ids. */
export interface MasterKey {
  encKey: Buffer;
  idKey: Buffer;
}

/** A key file's wrapped payload, as JSON. */
interface WrappedMaster {
  encKey: string;
  idKey: string;
}

/** A keyring file (`keyring/<id>`): the data keys of every epoch after 0. */
interface KeyringFile {
  keys: { epoch: number; key: string; created: string }[];
}

/** A key file for `master` that `password` opens. */
export async function makeKeyFile(master: MasterKey, password: string, kdf: KdfParams): Promise<Buffer> {
  const salt = randomBytes(32);
  const wrapKey = await deriveKey(password, salt, kdf);
  const payload: WrappedMaster = { encKey: master.encKey.toString("base64"), idKey: master.idKey.toString("base64") };
  const data = seal(Buffer.from(JSON.stringify(payload)), { epoch: 0, key: wrapKey });
  const file: KeyFile = {
    version: 1,
    created: new Date().toISOString(),
    host: hostname(),
    username: safeUser(),
    kdf,
    salt: salt.toString("base64"),
    data: data.toString("base64"),
  };
  return Buffer.from(JSON.stringify(file, null, 2));
}

export function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? "");
  }
}

/** Reads every key file and finds the one the password opens. */
export async function unlock(backend: Backend, password: string): Promise<{ master: MasterKey; keyId: string }> {
  if (!(await backend.exists("config"))) throw new RepositoryNotFoundError(backend.location);
  const keys: { id: string; file: KeyFile }[] = [];
  const damaged: string[] = [];
  for await (const obj of backend.list("keys/")) {
    const id = obj.key.slice("keys/".length);
    try {
      const bytes = await backend.get(obj.key);
      if (sha256Hex(bytes) !== id) damaged.push(obj.key);
      keys.push({ id, file: JSON.parse(bytes.toString("utf8")) });
    } catch (err) {
      if (isNotFound(err)) continue;
      if (err instanceof SyntaxError) continue; // a damaged key file cannot open; others may
      throw err;
    }
  }
  if (keys.length === 0 && !damaged.length) throw new CairnError(`the repository at ${backend.location} has no key files left; it cannot be opened`);
  for (const { id, file } of keys) {
    try {
      const wrapKey = await deriveKey(password, Buffer.from(file.salt, "base64"), file.kdf);
      const plain = open(Buffer.from(file.data, "base64"), (e) => (e === 0 ? wrapKey : undefined));
      const m = JSON.parse(plain.toString("utf8")) as WrappedMaster;
      return { master: { encKey: Buffer.from(m.encKey, "base64"), idKey: Buffer.from(m.idKey, "base64") }, keyId: id };
    } catch (err) {
      if (err instanceof IntegrityError || err instanceof SyntaxError || err instanceof TypeError || err instanceof RangeError) continue;
      throw err;
    }
  }
  // A changed key file no longer opens with the right password: say so rather than blame the password.
  if (damaged.length) throw new CairnError(`no key opens with this password, and key file ${damaged.join(", ")} is damaged (its content no longer matches its name); restore it from a copy of the repository, or use another key's password`, 1);
  throw new WrongPasswordError();
}

/**
 * The data keys of every epoch: epoch 0 is the master key's encKey, later epochs
 * come from the keyring files. New data is sealed under the newest epoch; every
 * epoch stays readable.
 */
export class DataKeys {
  private readonly keys = new Map<number, Buffer>();
  private readonly created = new Map<number, string>();
  private current = 0;

  private constructor(private readonly master: MasterKey) {
    this.keys.set(0, master.encKey);
  }

  /** Reads the keyring files (sealed under epoch 0) and checks each against its name. */
  static async load(backend: Backend, master: MasterKey): Promise<DataKeys> {
    const keys = new DataKeys(master);
    for await (const obj of backend.list("keyring/")) {
      const id = obj.key.slice("keyring/".length);
      const plain = unpackUnpacked(open(await getVerified(backend, obj.key, id), (e) => (e === 0 ? master.encKey : undefined)));
      const ring = JSON.parse(plain.toString("utf8")) as KeyringFile;
      for (const k of ring.keys) keys.adopt(k.epoch, Buffer.from(k.key, "base64"), k.created);
    }
    return keys;
  }

  get epoch(): number {
    return this.current;
  }

  /** When an epoch's key was made; undefined for epoch 0, which is as old as the repository. */
  createdAt(epoch: number): string | undefined {
    return this.created.get(epoch);
  }

  get epochs(): number[] {
    return [...this.keys.keys()].sort((a, b) => a - b);
  }

  /** Every key with its epoch, as the codec threads take them. */
  get all(): DataKey[] {
    return [...this.keys].map(([epoch, key]) => ({ epoch, key }));
  }

  keyFor = (epoch: number): Buffer | undefined => this.keys.get(epoch);

  /** The key new data is sealed with. */
  get newest(): DataKey {
    return { epoch: this.current, key: this.keys.get(this.current)! };
  }

  /**
   * Makes a key for the next epoch and stores a keyring file holding it and every
   * earlier one (then deletes the older keyring files). Not used for sealing until
   * adopt(): the caller first finishes what it is writing under the current key.
   */
  async writeNext(backend: Backend, cipher: CipherName): Promise<{ epoch: number; key: Buffer; created: string }> {
    const old: string[] = [];
    for await (const obj of backend.list("keyring/")) old.push(obj.key.slice("keyring/".length));
    const keys: KeyringFile["keys"] = [];
    const now = new Date().toISOString();
    for (const [epoch, key] of this.keys) if (epoch > 0) keys.push({ epoch, key: key.toString("base64"), created: this.created.get(epoch) ?? now });
    const epoch = this.current + 1;
    const key = randomKey();
    keys.push({ epoch, key: key.toString("base64"), created: now });
    // The keyring is sealed under epoch 0 so that every key file's master key opens it.
    const sealed = seal(packUnpacked(Buffer.from(JSON.stringify({ keys } satisfies KeyringFile)), false), { epoch: 0, key: this.master.encKey }, cipher);
    const id = sha256Hex(sealed);
    await backend.put(`keyring/${id}`, sealed);
    for (const o of old) await backend.delete(`keyring/${o}`);
    return { epoch, key, created: now };
  }

  /** Takes a key in; the newest epoch becomes the one new data is sealed with. */
  adopt(epoch: number, key: Buffer, created: string): void {
    this.keys.set(epoch, key);
    this.created.set(epoch, created);
    this.current = Math.max(this.current, epoch);
  }
}
