/**
 * Signed checkpoints of the audit chain, kept outside the catalog so that
 * whoever controls the catalog database cannot rewrite or cut the log unseen.
 *
 * Layout of the checkpoint directory (CAIRN_AUDIT_DIR, default <dataDir>/audit):
 *
 *   keys/<keyId>.pub            the Ed25519 public keys trusted to sign (raw, base64), written once
 *   checkpoints/<seq>.json      {seq, hash, time, keyId, signature}, written once, mode 0444
 *
 * The private key is kept in the catalog sealed with the platform secret key, so
 * every API process of a deployment signs with the same key, and a copy of the
 * catalog alone cannot sign. A key is trusted when its public key is pinned in
 * keys/: pinned when it is made, or on the first start of an empty directory.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import type { SecretBox } from "../engine/secret-box.js";
import { canonicalJson, verifyAuditChain, type AuditVerification, type TrustedCheckpoint } from "./audit-log.js";
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

/** Signs chain heads and writes them, once each, under the checkpoint directory. */
export class AuditSigner {
  constructor(
    readonly keyId: string,
    private readonly privateKey: KeyObject,
    readonly dir: string,
  ) {}

  /** Signs the head and writes checkpoints/<seq>.json (write-once; a file already there for this seq is kept). */
  async checkpoint(head: { seq: number; hash: string }, now = new Date()): Promise<SignedCheckpoint> {
    const unsigned = { seq: head.seq, hash: head.hash, time: now.toISOString(), keyId: this.keyId };
    const checkpoint: SignedCheckpoint = { ...unsigned, signature: sign(null, signedBytes(unsigned), this.privateKey).toString("base64") };
    const dir = path.join(this.dir, "checkpoints");
    await mkdir(dir, { recursive: true });
    try {
      await writeFile(path.join(dir, `${String(head.seq).padStart(12, "0")}.json`), JSON.stringify(checkpoint) + "\n", { flag: "wx", mode: 0o444 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    return checkpoint;
  }
}

/**
 * The signer of this deployment: the catalog's key (made, sealed and pinned on
 * the first start), checked against the keys pinned in `dir`. A catalog key that
 * is not pinned while others are means the catalog's keys were replaced: refused.
 */
export async function loadAuditSigner(catalog: Catalog, secretBox: SecretBox, dir: string): Promise<AuditSigner> {
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
    if (pinned.size > 0) {
      throw new Error(
        `the audit signing key in the catalog (${row.id}) is not one of the keys pinned in ${keysDir}: the catalog's audit keys were replaced. Investigate before starting; to trust it anyway, copy its public key into ${keysDir}/${row.id}.pub`,
      );
    }
    await mkdir(keysDir, { recursive: true });
    await writeFile(path.join(keysDir, `${row.id}.pub`), row.publicKey + "\n", { flag: "wx", mode: 0o444 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
  }
  const privateKey = createPrivateKey({ key: Buffer.from(secretBox.open(row.sealedPrivateKey), "base64"), format: "der", type: "pkcs8" });
  return new AuditSigner(row.id, privateKey, dir);
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
 * The checkpoints under `dir` whose signature verifies with a pinned key, and a
 * sentence for each file that does not (a forged or damaged checkpoint).
 */
export async function readCheckpoints(dir: string): Promise<{ trusted: TrustedCheckpoint[]; problems: string[] }> {
  const keys = await pinnedKeys(dir);
  const trusted: TrustedCheckpoint[] = [];
  const problems: string[] = [];
  let names: string[] = [];
  try {
    names = (await readdir(path.join(dir, "checkpoints"))).filter((n) => n.endsWith(".json")).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  for (const name of names) {
    const file = path.join(dir, "checkpoints", name);
    let c: SignedCheckpoint;
    try {
      c = JSON.parse(await readFile(file, "utf8")) as SignedCheckpoint;
    } catch {
      problems.push(`${file} is not a checkpoint (not JSON)`);
      continue;
    }
    const key = typeof c.keyId === "string" ? keys.get(c.keyId) : undefined;
    if (!key) {
      problems.push(`${file} is signed by key ${String(c.keyId)}, which is not pinned in ${path.join(dir, "keys")}`);
      continue;
    }
    if (!Number.isSafeInteger(c.seq) || typeof c.hash !== "string" || typeof c.time !== "string" || typeof c.signature !== "string" || !verify(null, signedBytes(c), key, Buffer.from(c.signature, "base64"))) {
      problems.push(`${file} has a signature that does not verify: it was changed or forged`);
      continue;
    }
    trusted.push({ seq: c.seq, hash: c.hash, time: c.time });
  }
  return { trusted, problems };
}

/**
 * Verifies the audit log against the signed checkpoints under `dir` (none when
 * `dir` is undefined): the chain itself, then the checkpoints' own signatures.
 */
export async function verifyAuditLog(catalog: Catalog, dir: string | undefined): Promise<AuditVerification> {
  const { trusted, problems } = dir ? await readCheckpoints(dir) : { trusted: [], problems: [] };
  const result = await verifyAuditChain(catalog, trusted);
  if (result.ok && problems.length) return { ...result, ok: false, reason: problems.join("; ") };
  return result;
}
