/**
 * A second home for the signed audit checkpoints, away from the API's disk: a
 * storage location given by the operator (CAIRN_AUDIT_REPOSITORY, any repository
 * URL). On S3 its bucket has Object Lock and every checkpoint is written with a
 * retention, so nobody (COMPLIANCE mode: not even the bucket's root user) can
 * delete or replace it before the retention ends; a later version or a delete
 * marker does not hide the first version, which is the one read back.
 *
 * Layout under the location:
 *
 *   audit-keys/<keyId>.pub           the Ed25519 public keys that signed checkpoints here (raw, base64)
 *   audit-checkpoints/<seq>.json     {seq, hash, time, keyId, signature}, as in the checkpoint directory
 *
 * Checkpoints hold no secret (a sequence number, a hash, a time, a signature), so
 * they are stored in clear, and anyone who can read the location can check them.
 */
import { BackendError, isNotFound, type Backend, type ObjectLock } from "../backends/backend.js";
import { openBackend, parseRepositoryUrl, type Env, type LookupFunction } from "../backends/url.js";

const CHECKPOINTS = "audit-checkpoints/";
const KEYS = "audit-keys/";

/** Retention of checkpoints on S3 unless CAIRN_AUDIT_OBJECT_LOCK_DAYS / _MODE say otherwise: a year, COMPLIANCE. */
export const DEFAULT_CHECKPOINT_LOCK: ObjectLock = { mode: "COMPLIANCE", days: 365 };

export function checkpointKey(seq: number): string {
  return `${CHECKPOINTS}${String(seq).padStart(12, "0")}.json`;
}

/** The retention checkpoints get on S3, from CAIRN_AUDIT_OBJECT_LOCK_DAYS (0 for none) and CAIRN_AUDIT_OBJECT_LOCK_MODE. */
export function checkpointLockFrom(env: Env): ObjectLock | undefined {
  const days = env.CAIRN_AUDIT_OBJECT_LOCK_DAYS ?? String(DEFAULT_CHECKPOINT_LOCK.days);
  const mode = (env.CAIRN_AUDIT_OBJECT_LOCK_MODE ?? DEFAULT_CHECKPOINT_LOCK.mode).toUpperCase();
  if (!/^\d+$/.test(days) || Number(days) > 36500) {
    throw new BackendError("permanent", `CAIRN_AUDIT_OBJECT_LOCK_DAYS must be a whole number of days from 0 (no Object Lock) to 36500, got "${days}"`, { reason: "configuration" });
  }
  if (mode !== "GOVERNANCE" && mode !== "COMPLIANCE") {
    throw new BackendError("permanent", `CAIRN_AUDIT_OBJECT_LOCK_MODE must be governance or compliance, got "${env.CAIRN_AUDIT_OBJECT_LOCK_MODE}"`, { reason: "configuration" });
  }
  return Number(days) === 0 ? undefined : { mode, days: Number(days) };
}

/** The checkpoint store at one location: written once per sequence number, read back first version first. */
export class CheckpointRepository {
  private constructor(
    readonly url: string,
    private readonly backend: Backend,
    /** The retention new checkpoints get (S3 with Object Lock); undefined elsewhere. */
    readonly objectLock: ObjectLock | undefined,
  ) {}

  /**
   * Opens the location with credentials from `env` (the usual AWS_*, AZURE_STORAGE_*,
   * CAIRN_GCS_*, CAIRN_SFTP_* variables). On S3 the bucket is created with Object
   * Lock when missing; an existing bucket without it is refused unless
   * CAIRN_AUDIT_OBJECT_LOCK_DAYS=0. `readOnly` (verification) creates nothing.
   */
  static async open(url: string, env: Env, options: { lookup?: LookupFunction; readOnly?: boolean } = {}): Promise<CheckpointRepository> {
    const s3 = parseRepositoryUrl(url).type === "s3";
    const lock = s3 && !options.readOnly ? checkpointLockFrom(env) : undefined;
    const backend = await openBackend(url, { ...env, CAIRN_S3_OBJECT_LOCK_DAYS: lock ? String(lock.days) : undefined, CAIRN_S3_OBJECT_LOCK_MODE: lock?.mode }, {
      lookup: options.lookup,
      ambientCredentials: true,
      // A few quick tries: a checkpoint that fails is sent again with the next one, and a verify should not hang.
      retry: { attempts: 3, maxElapsedMs: 10_000 },
    });
    try {
      if (!options.readOnly) await backend.ensureContainer?.();
    } catch (err) {
      await backend.close?.();
      throw err;
    }
    return new CheckpointRepository(url, backend, lock);
  }

  /** Writes the object unless the key is there already (write-once: a checkpoint or key is never replaced). */
  private async putOnce(key: string, body: string): Promise<void> {
    if (await this.backend.exists(key)) return;
    await this.backend.put(key, Buffer.from(body, "utf8"));
  }

  async putKey(keyId: string, publicKeyBase64: string): Promise<void> {
    await this.putOnce(`${KEYS}${keyId}.pub`, publicKeyBase64 + "\n");
  }

  async putCheckpoint(seq: number, json: string): Promise<void> {
    await this.putOnce(checkpointKey(seq), json);
  }

  /** The sequence numbers of the checkpoints stored here. */
  async storedSeqs(): Promise<Set<number>> {
    const seqs = new Set<number>();
    for await (const o of this.backend.list(CHECKPOINTS)) {
      const m = /^audit-checkpoints\/(\d+)\.json$/.exec(o.key);
      if (m) seqs.add(Number(m[1]));
    }
    return seqs;
  }

  /** The public keys stored here, raw, by key id. */
  async keys(): Promise<Map<string, Buffer>> {
    const keys = new Map<string, Buffer>();
    for await (const o of this.backend.list(KEYS)) {
      const m = /^audit-keys\/([0-9a-f]+)\.pub$/.exec(o.key);
      if (m) keys.set(m[1], Buffer.from((await this.backend.get(o.key)).toString("utf8").trim(), "base64"));
    }
    return keys;
  }

  /** Each stored checkpoint's text (or only the newest's), by the name it is stored under (for messages). */
  async *checkpoints(newestOnly = false): AsyncIterable<{ name: string; text: string }> {
    const seqs = [...(await this.storedSeqs())].sort((a, b) => a - b);
    for (const seq of newestOnly ? seqs.slice(-1) : seqs) {
      const key = checkpointKey(seq);
      try {
        yield { name: `${this.url}/${key}`, text: (await this.backend.get(key)).toString("utf8") };
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  async close(): Promise<void> {
    await this.backend.close?.();
  }
}
