/**
 * Signed checkpoints of the audit chain, kept outside the catalog so that
 * whoever controls the catalog database cannot rewrite or cut the log unseen.
 *
 * Layout of the checkpoint directory (CAIRN_AUDIT_DIR, default <dataDir>/audit):
 *
 *   keys/<keyId>.pub            the Ed25519 public keys trusted to sign (raw, base64), written once
 *   checkpoints/<seq>.json      {seq, hash, time, keyId, signature}, written once, mode 0444
 *
 * With a checkpoint repository (CAIRN_AUDIT_REPOSITORY, db/audit-repository.ts)
 * each checkpoint and public key is also written there, write-once (S3 Object
 * Lock), and verification reads both places.
 *
 * The private key is kept in the catalog sealed with the platform secret key, so
 * every API process of a deployment signs with the same key, and a copy of the
 * catalog alone cannot sign. A key is trusted when its public key is pinned in
 * keys/: pinned when it is made, or on the first start of an empty directory.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { BackendError } from "../backends/backend.js";
import type { SecretBox } from "../engine/secret-box.js";
import { canonicalJson, verifyAuditChain, type AuditVerification, type TrustedCheckpoint } from "./audit-log.js";
import type { CheckpointRepository } from "./audit-repository.js";
import type { Catalog } from "./client.js";
import { auditSigningKeys } from "./schema.js";

export interface SignedCheckpoint extends TrustedCheckpoint {
  keyId: string;
  /** Ed25519 over canonical {seq, hash, time, keyId}, base64. */
  signature: string;
}

/** The raw 32 bytes of an Ed25519 public key (the SPKI DER ends with them). */
function rawPublicKey(key: KeyObject): Buffer {
  return key.export({ format: "der", type: "spki" }).subarray(-32);
}

function publicKeyFromRaw(raw: Buffer): KeyObject {
  const spkiPrefix = Buffer.from("302a300506032b6570032100", "hex");
  return createPublicKey({ key: Buffer.concat([spkiPrefix, raw]), format: "der", type: "spki" });
}

function keyIdOf(raw: Buffer): string {
  return createHash("sha256").update(raw).digest("hex").slice(0, 16);
}

function signedBytes(c: Omit<SignedCheckpoint, "signature">): Buffer {
  return Buffer.from(canonicalJson({ seq: c.seq, hash: c.hash, time: c.time, keyId: c.keyId }), "utf8");
}

/** Signs chain heads and writes them, once each, under the checkpoint directory and to the checkpoint repository. */
export class AuditSigner {
  /** Checkpoints the repository did not take yet (it was unreachable), sent again with the next one. */
  private readonly unsent = new Map<number, string>();

  constructor(
    readonly keyId: string,
    private readonly privateKey: KeyObject,
    readonly dir: string,
    readonly repository?: CheckpointRepository,
  ) {}

  /**
   * Signs the head and writes checkpoints/<seq>.json (write-once; a file already
   * there for this seq is kept), then the same to the repository. A repository
   * that fails is reported and tried again at the next checkpoint: the local copy
   * and the chain stand meanwhile, and the request that triggered it goes on.
   */
  async checkpoint(head: { seq: number; hash: string }, now = new Date()): Promise<SignedCheckpoint> {
    const unsigned = { seq: head.seq, hash: head.hash, time: now.toISOString(), keyId: this.keyId };
    const checkpoint: SignedCheckpoint = { ...unsigned, signature: sign(null, signedBytes(unsigned), this.privateKey).toString("base64") };
    const text = JSON.stringify(checkpoint) + "\n";
    const dir = path.join(this.dir, "checkpoints");
    await mkdir(dir, { recursive: true });
    try {
      await writeFile(path.join(dir, `${String(head.seq).padStart(12, "0")}.json`), text, { flag: "wx", mode: 0o444 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    if (this.repository) {
      this.unsent.set(head.seq, text);
      await this.sendUnsent();
    }
    return checkpoint;
  }

  private async sendUnsent(): Promise<void> {
    for (const [seq, text] of [...this.unsent].sort((a, b) => a[0] - b[0])) {
      try {
        await this.repository!.putCheckpoint(seq, text);
        this.unsent.delete(seq);
      } catch (err) {
        console.error(`audit checkpoint ${seq} not written to ${this.repository!.url} (tried again with the next checkpoint): ${(err as Error).message}`);
        return;
      }
    }
  }
}

/**
 * The signer of this deployment: the catalog's key (made, sealed and pinned on
 * the first start), checked against the keys pinned in `dir` and those the
 * checkpoint repository holds. A catalog key that is not pinned while others
 * are means the catalog's keys were replaced: refused. With a repository, its
 * public key and the local checkpoints it lacks are written there.
 */
export async function loadAuditSigner(catalog: Catalog, secretBox: SecretBox, dir: string, repository?: CheckpointRepository): Promise<AuditSigner> {
  let [row] = await catalog.select().from(auditSigningKeys).orderBy(auditSigningKeys.createdAt).limit(1);
  if (!row) {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const raw = rawPublicKey(publicKey);
    const candidate = {
      id: keyIdOf(raw),
      publicKey: raw.toString("base64"),
      sealedPrivateKey: secretBox.seal(privateKey.export({ format: "der", type: "pkcs8" }).toString("base64")),
    };
    // Two API processes starting at once: the first key in wins, the other reads it back.
    await catalog.insert(auditSigningKeys).values(candidate).onConflictDoNothing();
    [row] = await catalog.select().from(auditSigningKeys).orderBy(auditSigningKeys.createdAt).limit(1);
  }
  const pinned = await pinnedKeys(dir);
  const keysDir = path.join(dir, "keys");
  if (!pinned.has(row.id)) {
    const elsewhere = pinned.size > 0 ? keysDir : repository && [...(await repository.keys()).keys()].some((id) => id !== row.id) ? repository.url : undefined;
    if (elsewhere) {
      throw new Error(
        `the audit signing key in the catalog (${row.id}) is not one of the keys that signed the checkpoints in ${elsewhere}: the catalog's audit keys were replaced. Investigate before starting; to trust it anyway, copy its public key into ${keysDir}/${row.id}.pub`,
      );
    }
    await mkdir(keysDir, { recursive: true });
    await writeFile(path.join(keysDir, `${row.id}.pub`), row.publicKey + "\n", { flag: "wx", mode: 0o444 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
  }
  if (repository) await copyToRepository(dir, row, repository);
  const privateKey = createPrivateKey({ key: Buffer.from(secretBox.open(row.sealedPrivateKey), "base64"), format: "der", type: "pkcs8" });
  return new AuditSigner(row.id, privateKey, dir, repository);
}

/** Writes the signing key and every local checkpoint the repository lacks (made before it was configured, or while it was unreachable). */
async function copyToRepository(dir: string, key: { id: string; publicKey: string }, repository: CheckpointRepository): Promise<void> {
  await repository.putKey(key.id, key.publicKey);
  const stored = await repository.storedSeqs();
  for (const name of await checkpointFiles(dir)) {
    const seq = Number(name.slice(0, -5));
    if (!stored.has(seq)) await repository.putCheckpoint(seq, await readFile(path.join(dir, "checkpoints", name), "utf8"));
  }
}

async function checkpointFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(path.join(dir, "checkpoints"))).filter((n) => /^\d+\.json$/.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    return [];
  }
}

async function pinnedKeys(dir: string): Promise<Map<string, KeyObject>> {
  const keys = new Map<string, KeyObject>();
  let names: string[] = [];
  try {
    names = await readdir(path.join(dir, "keys"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  for (const name of names.filter((n) => n.endsWith(".pub"))) {
    const raw = Buffer.from((await readFile(path.join(dir, "keys", name), "utf8")).trim(), "base64");
    if (raw.length === 32 && keyIdOf(raw) === name.slice(0, -4)) keys.set(name.slice(0, -4), publicKeyFromRaw(raw));
  }
  return keys;
}

/**
 * The checkpoints under `dir`, and in the repository when there is one, whose
 * signature verifies with a trusted key (pinned in `dir`, or stored in the
 * write-once repository), one per sequence number; and a sentence for each that
 * does not verify (a forged or damaged checkpoint), or where two disagree.
 * `newestOnly` reads only the newest of each place (the check at start).
 */
export async function readCheckpoints(dir: string, repository?: CheckpointRepository, newestOnly = false): Promise<{ trusted: TrustedCheckpoint[]; problems: string[] }> {
  const keys = await pinnedKeys(dir);
  // The write-once copies first: where the two disagree, the chain is compared with those.
  const sources: { where: string; files: AsyncIterable<{ name: string; text: string }> }[] = [];
  if (repository) {
    for (const [id, raw] of await repository.keys()) if (raw.length === 32 && keyIdOf(raw) === id && !keys.has(id)) keys.set(id, publicKeyFromRaw(raw));
    sources.push({ where: repository.url, files: repository.checkpoints(newestOnly) });
  }
  sources.push({ where: path.join(dir, "checkpoints"), files: localCheckpoints(dir, newestOnly) });
  const bySeq = new Map<number, TrustedCheckpoint>();
  const problems: string[] = [];
  for (const { where, files } of sources) {
    for await (const { name, text } of files) {
      const checked = checkSigned(name, text, keys, dir);
      if (typeof checked === "string") {
        problems.push(checked);
        continue;
      }
      const seen = bySeq.get(checked.seq);
      if (!seen) bySeq.set(checked.seq, { ...checked, where });
      else if (seen.hash !== checked.hash) problems.push(`${name} and the checkpoint in ${seen.where} are both signed but disagree about event ${checked.seq}: the log was cut or rewritten after the first was signed`);
    }
  }
  return { trusted: [...bySeq.values()].sort((a, b) => a.seq - b.seq), problems };
}

async function* localCheckpoints(dir: string, newestOnly: boolean): AsyncIterable<{ name: string; text: string }> {
  let names: string[] = [];
  try {
    names = (await readdir(path.join(dir, "checkpoints"))).filter((n) => n.endsWith(".json")).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  for (const name of newestOnly ? names.slice(-1) : names) {
    const file = path.join(dir, "checkpoints", name);
    yield { name: file, text: await readFile(file, "utf8") };
  }
}

/** The checkpoint `text` holds when a trusted key signed it; otherwise why not. */
function checkSigned(name: string, text: string, keys: Map<string, KeyObject>, dir: string): TrustedCheckpoint | string {
  let c: SignedCheckpoint;
  try {
    c = JSON.parse(text) as SignedCheckpoint;
  } catch {
    return `${name} is not a checkpoint (not JSON)`;
  }
  const key = typeof c.keyId === "string" ? keys.get(c.keyId) : undefined;
  if (!key) return `${name} is signed by key ${String(c.keyId)}, which is not pinned in ${path.join(dir, "keys")}`;
  if (!Number.isSafeInteger(c.seq) || typeof c.hash !== "string" || typeof c.time !== "string" || typeof c.signature !== "string" || !verify(null, signedBytes(c), key, Buffer.from(c.signature, "base64"))) {
    return `${name} has a signature that does not verify: it was changed or forged`;
  }
  return { seq: c.seq, hash: c.hash, time: c.time };
}

/**
 * Verifies the audit log against the signed checkpoints under `dir` (none when
 * `dir` is undefined) and in the checkpoint repository: the chain itself, then
 * the checkpoints' own signatures. A repository that cannot be read fails the
 * verification: its copies are what a rewritten catalog and directory cannot hide.
 */
export async function verifyAuditLog(catalog: Catalog, dir: string | undefined, repository?: CheckpointRepository): Promise<AuditVerification> {
  let read: { trusted: TrustedCheckpoint[]; problems: string[] };
  try {
    read = dir ? await readCheckpoints(dir, repository) : { trusted: [], problems: [] };
  } catch (err) {
    if (!repository) throw err;
    // The destination's own answer may name internal hosts: callers get our sentence, the log the rest.
    console.error(`audit verify: reading the checkpoints in ${repository.url} failed:`, err);
    const why = err instanceof BackendError && err.reason ? err.message : "it did not answer or refused; the log of the process that verified has its answer";
    const chain = await verifyAuditChain(catalog, (await readCheckpoints(dir!)).trusted);
    return { ...chain, ok: false, reason: `cannot read the checkpoints in ${repository.url} (${why}), so the log was not compared with them${chain.ok ? "" : `; besides: ${chain.reason}`}` };
  }
  const result = await verifyAuditChain(catalog, read.trusted);
  if (result.ok && read.problems.length) return { ...result, ok: false, reason: read.problems.join("; ") };
  return result;
}
