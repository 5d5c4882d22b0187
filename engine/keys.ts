import { isNotFound } from "../backends/backend.js";
import { deriveKey, DEFAULT_SCRYPT, IntegrityError, open, type KdfParams } from "./crypto.js";
import { CairnError } from "./errors.js";
import type { KeyFile } from "./keyring.js";
import type { Repository } from "./repository.js";
import { getVerified } from "./unpacked.js";

/** What `cairn key list` shows about one key file; none of it is secret. */
export interface KeyInfo {
  id: string;
  created: string;
  host: string;
  username: string;
  kdf: KdfParams;
  /** True for the key that opened this repository session. */
  current: boolean;
}

/** Reads the clear-text metadata of every key file. */
export async function listKeys(repo: Repository): Promise<KeyInfo[]> {
  const out: KeyInfo[] = [];
  for (const id of await repo.listIds("keys")) {
    let file: KeyFile;
    try {
      file = JSON.parse((await repo.backend.get(`keys/${id}`)).toString("utf8")) as KeyFile;
    } catch (err) {
      if (isNotFound(err)) continue; // removed by another process while we listed
      throw err;
    }
    out.push({ id, created: file.created, host: file.host, username: file.username, kdf: file.kdf, current: id === repo.keyId });
  }
  return out.sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : 0));
}

/** Resolves a key id prefix to the one key file it names. */
export async function findKey(repo: Repository, prefix: string): Promise<KeyInfo> {
  if (!/^[0-9a-f]{4,64}$/.test(prefix)) throw new CairnError(`"${prefix}" is not a key id: give at least 4 hex characters of an id from "cairn key list"`);
  const found = (await listKeys(repo)).filter((k) => k.id.startsWith(prefix));
  if (found.length === 0) throw new CairnError(`no key with id ${prefix}; list them with "cairn key list"`);
  if (found.length > 1) throw new CairnError(`key id prefix ${prefix} is ambiguous (${found.length} keys); give more characters`);
  return found[0];
}

/**
 * Deletes a key file. Refuses the key that opened this session (the caller would
 * lock themselves out mid-way) and the last key (nobody could open the repository
 * again). Only the key file goes: data, index and snapshots are untouched.
 */
export async function removeKey(repo: Repository, id: string): Promise<void> {
  const keys = await listKeys(repo);
  if (!keys.some((k) => k.id === id)) throw new CairnError(`no key with id ${id.slice(0, 8)}; list them with "cairn key list"`);
  if (keys.length <= 1) throw new CairnError(`key ${id.slice(0, 8)} is the repository's last key; without it no one could open the repository again. Add another key first with "cairn key add"`);
  if (id === repo.keyId) {
    throw new CairnError(`key ${id.slice(0, 8)} is the one this password opened the repository with; to remove it, run this command with another key's password, or use "cairn key passwd" to replace it`);
  }
  await repo.backend.delete(`keys/${id}`);
}

/**
 * Adds a key file for `password` and checks, by reading it back and unwrapping
 * it, that it opens this repository's master key. Returns the new key's id.
 */
export async function addVerifiedKey(repo: Repository, password: string, kdf: KdfParams = DEFAULT_SCRYPT): Promise<string> {
  const id = await repo.addKey(password, kdf);
  const file = JSON.parse((await getVerified(repo.backend, `keys/${id}`, id)).toString("utf8")) as KeyFile;
  const wrapKey = await deriveKey(password, Buffer.from(file.salt, "base64"), file.kdf);
  const master = JSON.parse(open(Buffer.from(file.data, "base64"), (e) => (e === 0 ? wrapKey : undefined)).toString("utf8")) as { encKey: string; idKey: string };
  if (!Buffer.from(master.encKey, "base64").equals(repo.keyFor(0)!) || !Buffer.from(master.idKey, "base64").equals(repo.idKey)) {
    throw new IntegrityError(`the new key file keys/${id} does not hold this repository's master key`);
  }
  return id;
}

/** Replaces the key that opened this session with one for `password`: the new key is added and checked before the old one goes. */
export async function changePassword(repo: Repository, password: string, kdf: KdfParams = DEFAULT_SCRYPT): Promise<{ added: string; removed: string }> {
  const added = await addVerifiedKey(repo, password, kdf);
  await repo.backend.delete(`keys/${repo.keyId}`);
  return { added, removed: repo.keyId };
}
