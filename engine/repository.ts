import { hostname, userInfo } from "node:os";
import { randomBytes } from "node:crypto";
import { isNotFound, type Backend, type ObjectLock } from "../backends/backend.js";
import { BlobIndex, BlobType, type BlobLocation } from "./blob-index.js";
import { Chunker, DEFAULT_CHUNK_SIZES, type ChunkerParams } from "./chunker.js";
import { CodecPool } from "./codec-pool.js";
import { Compression, DEFAULT_COMPRESSION, compressBlob, decompressBlob, formatCompression, parseCompression, type CompressionSpec } from "./compression.js";
import { blobId, DEFAULT_SCRYPT, deriveKey, IntegrityError, open, randomKey, seal, sha256Hex, type CipherName, type DataKey, type KdfParams } from "./crypto.js";
import { CairnError, RepositoryNotFoundError, WrongPasswordError } from "./errors.js";
import { compactIndexFile, decodeIndex, encodeIndex, indexSupersedes, type IndexFile } from "./index-file.js";
import { PackBuilder, packKey, type PackEntry } from "./pack.js";

/**
 * Format version of new repositories. Version 2 adds page-mapped files (tree nodes
 * with `pages`, engine/pagemap.ts); a version 1 repository is read as it is and
 * never gets a page-mapped file, so a cairn that reads only version 1 reads it right.
 */
export const FORMAT_VERSION = 2;
/** Every format version this cairn reads. */
const READABLE_VERSIONS = [1, 2];

/** The repository's `config` document. */
export interface RepoConfig {
  version: number;
  id: string;
  created: string;
  chunker: ChunkerParams;
  /** Default compression for new data, e.g. "zstd:3". */
  compression: string;
  cipher: CipherName;
  /** Target pack size in bytes. */
  packSize: number;
  /** Set when the repository was created on immutable storage: the retention its objects get. */
  objectLock?: ObjectLock;
}

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

interface MasterKey {
  encKey: string;
  idKey: string;
}

interface Keyring {
  keys: { epoch: number; key: string; created: string }[];
}

export interface InitOptions {
  kdf?: KdfParams;
  cipher?: CipherName;
  compression?: string;
  chunker?: ChunkerParams;
  /** Blob id key to share with another repository (init --copy-chunker-params), so blob ids and trees are the same in both and copy can send them as they are. */
  idKey?: Buffer;
  packSize?: number;
  threads?: number;
  /** Format version to create (FORMAT_VERSION by default; 1 for a repository older cairns must read). */
  version?: number;
}

export interface OpenOptions {
  threads?: number;
  /** Compression for data written in this session (defaults to the repository's). */
  compression?: string;
  /** Called for a damaged index file, which is then skipped instead of failing the open (check uses it to report the file). */
  onIndexError?: (id: string, err: IntegrityError) => void;
  /** close() also closes the backend (its connections), for callers that opened it only for this repository. */
  ownsBackend?: boolean;
  /** False skips reading the index files: for callers that only read and write named files (WAL archiving), so opening stays cheap as the repository grows. */
  loadIndex?: boolean;
}

/** Directories holding write-once, content-addressed files. */
export type FileKind = "snapshots" | "index" | "keyring" | "locks" | "keys";

/**
 * Data blobs up to SMALL_BLOB bytes are sealed in batches of about BATCH_BYTES on a
 * codec thread: one round trip per blob cost more than the work, so small blobs were
 * sealed on the main thread, which then did all the work of a tree of small files
 * alone while the codec threads idled.
 */
const SMALL_BLOB = 16 * 1024;
const BATCH_BYTES = 256 * 1024;
const INDEX_EVERY_PACKS = 8;
const MAX_SEALING = 8;
const MAX_UPLOADS = 2;
const TREE_PACK_CACHE = 64 * 1024 * 1024;
const MAX_NAMED_HEAD = 16 * 1024 * 1024;

/**
 * An open repository: keys, config, the blob index, and the writer that groups
 * new blobs into packs. Files are write-once; nothing is rewritten in place.
 */
export class Repository {
  readonly index = new BlobIndex();
  readonly chunker: Chunker;
  pool: CodecPool;
  private readonly ownsBackend: boolean;
  readonly indexFiles = new Map<string, IndexFile>();
  compression: CompressionSpec;

  private readonly dataKeys = new Map<number, Buffer>();
  private readonly epochCreated = new Map<number, string>();
  private currentEpoch = 0;
  private packers: Record<number, PackBuilder | undefined> = {};
  private readonly inFlight = new Set<string>();
  private readonly sealing = new Set<Promise<void>>();
  private readonly uploads = new Set<Promise<void>>();
  private pendingIndex: IndexFile["packs"] = [];
  private readonly treePacks = new Map<string, Promise<Buffer>>();
  private treePackBytes = 0;
  private writeError?: unknown;
  /** Small data blobs waiting to be sealed together (see SMALL_BLOB). */
  private batch: { id: Buffer; data: Buffer }[] = [];
  private batchBytes = 0;
  /** Bytes of pack files written in this session (for stats and tests). */
  packBytesWritten = 0;
  packsWritten = 0;

  private constructor(
    readonly backend: Backend,
    readonly config: RepoConfig,
    private readonly master: { encKey: Buffer; idKey: Buffer },
    readonly keyId: string,
    keyring: Keyring[],
    options: OpenOptions,
  ) {
    this.dataKeys.set(0, master.encKey);
    for (const ring of keyring) {
      for (const k of ring.keys) {
        this.dataKeys.set(k.epoch, Buffer.from(k.key, "base64"));
        this.epochCreated.set(k.epoch, k.created);
        this.currentEpoch = Math.max(this.currentEpoch, k.epoch);
      }
    }
    this.chunker = new Chunker(config.chunker);
    this.compression = parseCompression(options.compression ?? config.compression);
    this.pool = this.makePool(options.threads);
    this.ownsBackend = options.ownsBackend ?? false;
  }

  private makePool(threads?: number): CodecPool {
    const dataKeys = [...this.dataKeys].map(([epoch, key]) => ({ epoch, key }));
    return new CodecPool({ idKey: this.master.idKey, dataKeys, epoch: this.currentEpoch, cipher: this.config.cipher }, threads);
  }

  get idKey(): Buffer {
    return this.master.idKey;
  }

  get epoch(): number {
    return this.currentEpoch;
  }

  /** When the current data key was made: at its rotation, or with the repository for the first one. */
  get epochCreatedAt(): string {
    return this.epochCreated.get(this.currentEpoch) ?? this.config.created;
  }

  get epochs(): number[] {
    return [...this.dataKeys.keys()].sort((a, b) => a - b);
  }

  keyFor = (epoch: number): Buffer | undefined => this.dataKeys.get(epoch);

  private get currentKey(): DataKey {
    return { epoch: this.currentEpoch, key: this.dataKeys.get(this.currentEpoch)! };
  }

  /** Creates a new repository at `backend` and opens it. */
  static async init(backend: Backend, password: string, options: InitOptions = {}): Promise<Repository> {
    if (await backend.exists("config")) {
      throw new CairnError(`a repository already exists at ${backend.location}; use it as it is or choose another location`);
    }
    const compression = formatCompression(parseCompression(options.compression ?? formatCompression(DEFAULT_COMPRESSION)));
    const master = { encKey: randomKey(), idKey: options.idKey ?? randomKey() };
    const config: RepoConfig = {
      version: options.version ?? FORMAT_VERSION,
      id: randomBytes(16).toString("hex"),
      created: new Date().toISOString(),
      chunker: options.chunker ?? { ...DEFAULT_CHUNK_SIZES, seed: randomBytes(32).toString("hex") },
      compression,
      cipher: options.cipher ?? "aes-256-gcm",
      packSize: options.packSize ?? 16 * 1024 * 1024,
      objectLock: backend.objectLock?.(),
    };
    new Chunker(config.chunker);
    const keyFile = await makeKeyFile(master, password, options.kdf ?? DEFAULT_SCRYPT);
    await backend.put(`keys/${sha256Hex(keyFile)}`, keyFile);
    await backend.put("config", seal(packUnpacked(Buffer.from(JSON.stringify(config)), false), { epoch: 0, key: master.encKey }, config.cipher));
    return Repository.open(backend, password, { threads: options.threads });
  }

  /** Opens an existing repository with a password; loads its index. */
  static async open(backend: Backend, password: string, options: OpenOptions = {}): Promise<Repository> {
    const { master, keyId } = await unlock(backend, password);
    let config: RepoConfig;
    try {
      config = JSON.parse(unpackUnpacked(open(await backend.get("config"), (e) => (e === 0 ? master.encKey : undefined))).toString("utf8"));
    } catch (err) {
      if (err instanceof IntegrityError) throw new CairnError(`the repository config at ${backend.location} is damaged (${err.message}); restore it from a copy of the repository`, 1);
      throw err;
    }
    if (!READABLE_VERSIONS.includes(config.version)) {
      throw new CairnError(`repository format version ${config.version} is not supported by this cairn (it reads versions ${READABLE_VERSIONS.join(" and ")}); upgrade cairn`);
    }
    // Writes by a client that did not ask for the retention itself still get it.
    if (config.objectLock) backend.useObjectLock?.(config.objectLock);
    const rings: Keyring[] = [];
    for await (const obj of backend.list("keyring/")) {
      const id = obj.key.slice("keyring/".length);
      const plain = unpackUnpacked(open(await getVerified(backend, obj.key, id), (e) => (e === 0 ? master.encKey : undefined)));
      rings.push(JSON.parse(plain.toString("utf8")));
    }
    const repo = new Repository(backend, config, master, keyId, rings, options);
    if (options.loadIndex !== false) await repo.loadIndex(options.onIndexError);
    return repo;
  }

  /** (Re)reads every index file into memory. Superseded index files are skipped. */
  async loadIndex(onIndexError?: OpenOptions["onIndexError"]): Promise<void> {
    const ids: string[] = [];
    for await (const obj of this.backend.list("index/")) ids.push(obj.key.slice("index/".length));
    // Kept encoded until every file is read: decoded objects of all of them at once cost far more.
    const files = new Map<string, { encoded: Buffer; supersedes: string[] }>();
    await mapLimit(ids, 4, async (id) => {
      try {
        const encoded = await this.loadUnpacked("index", id);
        files.set(id, { encoded, supersedes: indexSupersedes(encoded) });
      } catch (err) {
        if (!onIndexError || !(err instanceof IntegrityError)) throw err;
        onIndexError(id, err);
      }
    });
    const superseded = new Set<string>();
    for (const f of files.values()) for (const s of f.supersedes) superseded.add(s);
    this.indexFiles.clear();
    for (const [id, f] of files) {
      if (superseded.has(id)) continue;
      this.indexFiles.set(id, compactIndexFile(f.encoded, f.supersedes));
      for (const pack of decodeIndex(f.encoded).packs) {
        const n = this.index.packNumber(pack.id);
        for (const b of pack.blobs) this.index.add({ ...b, pack: n });
      }
    }
  }

  /** Where a blob is stored, or undefined. */
  lookup(id: Buffer): (BlobLocation & { packId: string }) | undefined {
    const loc = this.index.get(id);
    return loc && { ...loc, packId: this.index.packs[loc.pack] };
  }

  hasBlob(id: Buffer): boolean {
    return this.isStored(id) || this.inFlight.has(id.toString("hex"));
  }

  /**
   * Packs that prune is about to delete. A blob indexed only in one of them counts
   * as absent, so saveBlob stores it again in a new pack: that is how prune repacks.
   */
  readonly packsBeingRemoved = new Set<string>();

  private isStored(id: Buffer): boolean {
    if (this.packsBeingRemoved.size === 0) return this.index.has(id);
    const loc = this.index.get(id);
    return loc !== undefined && !this.packsBeingRemoved.has(this.index.packs[loc.pack]);
  }

  /** Keyed id of a plaintext blob. */
  blobId(data: Uint8Array): Buffer {
    return blobId(this.master.idKey, data);
  }

  /**
   * Stores a blob unless the repository already has it. Returns true when the blob
   * was new. The data is handed to a worker; call flush() to make it durable.
   * `data` must not be modified afterwards (it may be transferred to a worker).
   */
  async saveBlob(type: BlobType, data: Buffer, id: Buffer = this.blobId(data)): Promise<boolean> {
    if (this.writeError) throw this.writeError;
    const hex = id.toString("hex");
    if (this.isStored(id) || this.inFlight.has(hex)) return false;
    this.inFlight.add(hex);
    if (type === BlobType.data && this.pool.threads > 0 && data.length <= SMALL_BLOB) {
      this.batch.push({ id, data });
      this.batchBytes += data.length;
      if (this.batchBytes >= BATCH_BYTES) await this.sealBatch();
      return true;
    }
    const rawLength = data.length;
    // Trees are sealed on this thread: they are a small share of the bytes, and a tree
    // of small files would otherwise start the codec threads (tens of MiB of memory)
    // for them alone.
    const tree = type === BlobType.tree;
    await this.track(() =>
      this.pool
        .seal({ data, compression: tree ? { algorithm: "zstd", level: 3 } : this.compression }, true, tree)
        .then((r) => this.addToPack(type, id, r.envelope, r.compression, rawLength)),
    );
    return true;
  }

  /**
   * Starts a sealing job once fewer than MAX_SEALING are running, and keeps it in
   * `sealing` until it ends; its failure is kept in writeError (the first one wins).
   */
  private async track(start: () => Promise<void>): Promise<void> {
    while (this.sealing.size >= MAX_SEALING) await Promise.race(this.sealing);
    const job: Promise<void> = start()
      .catch((err) => {
        this.writeError ??= err;
      })
      .finally(() => this.sealing.delete(job));
    this.sealing.add(job);
  }

  /** Hands the waiting small data blobs to a codec thread as one job. */
  private async sealBatch(): Promise<void> {
    const blobs = this.batch;
    if (!blobs.length) return;
    this.batch = [];
    const data = Buffer.allocUnsafeSlow(this.batchBytes);
    this.batchBytes = 0;
    let at = 0;
    for (const b of blobs) at += b.data.copy(data, at);
    await this.track(() =>
      this.pool.sealBatch({ data, lengths: blobs.map((b) => b.data.length), compression: this.compression }).then(async (r) => {
        let off = 0;
        for (const [i, b] of blobs.entries()) {
          await this.addToPack(BlobType.data, b.id, r.envelope.subarray(off, off + r.lengths[i]), r.compressions[i], b.data.length);
          off += r.lengths[i];
        }
      }),
    );
  }

  private async addToPack(type: BlobType, id: Buffer, envelope: Buffer, compression: number, rawLength: number): Promise<void> {
    const packer = (this.packers[type] ??= new PackBuilder(type));
    packer.add(envelope, { id, compression, rawLength });
    if (packer.size >= this.config.packSize) {
      this.packers[type] = undefined;
      await this.uploadPack(packer);
    }
  }

  private async uploadPack(packer: PackBuilder): Promise<void> {
    while (this.uploads.size >= MAX_UPLOADS) await Promise.race(this.uploads);
    const { id, parts, size } = packer.finish(this.currentKey, this.config.cipher);
    const job: Promise<void> = (async () => {
      await this.backend.put(packKey(id), parts);
      this.packBytesWritten += size;
      this.packsWritten++;
      const n = this.index.packNumber(id);
      for (const e of packer.entries) {
        this.index.add({ ...e, pack: n });
        this.inFlight.delete(e.id.toString("hex"));
      }
      this.pendingIndex.push({ id, blobs: packer.entries });
      if (this.pendingIndex.length >= INDEX_EVERY_PACKS) await this.writeIndex();
    })()
      .catch((err) => {
        this.writeError ??= err;
      })
      .finally(() => this.uploads.delete(job));
    this.uploads.add(job);
  }

  private async writeIndex(supersedes: string[] = []): Promise<string | undefined> {
    if (this.pendingIndex.length === 0 && supersedes.length === 0) return undefined;
    const encoded = encodeIndex({ supersedes, packs: this.pendingIndex });
    this.pendingIndex = [];
    const id = await this.saveUnpacked("index", encoded);
    this.indexFiles.set(id, compactIndexFile(encoded, supersedes));
    return id;
  }

  /**
   * Writes an index file for the packs uploaded so far (blobs still being packed are
   * not covered), so a backup that dies later does not upload them again: the next
   * run finds their blobs in the index. flush() waits for it as for an upload.
   */
  checkpoint(): Promise<void> {
    const job: Promise<void> = this.writeIndex()
      .then(() => undefined)
      .catch((err) => {
        this.writeError ??= err;
      })
      .finally(() => this.uploads.delete(job));
    this.uploads.add(job);
    return job;
  }

  /**
   * Waits for every pending blob, uploads partial packs and writes the index.
   * `packs` are packs already stored that the new index file lists as well (prune
   * passes every pack it keeps, so one index file supersedes all older ones).
   */
  async flush(options: { supersedes?: string[]; packs?: IndexFile["packs"] } = {}): Promise<string | undefined> {
    await this.sealBatch();
    while (this.sealing.size) await Promise.race(this.sealing);
    for (const type of [BlobType.data, BlobType.tree]) {
      const packer = this.packers[type];
      if (packer && packer.count) {
        this.packers[type] = undefined;
        await this.uploadPack(packer);
      }
    }
    while (this.uploads.size) await Promise.race(this.uploads);
    if (this.writeError) throw this.writeError;
    if (options.packs) this.pendingIndex.push(...options.packs);
    return this.writeIndex(options.supersedes);
  }

  /** Reads, decrypts, decompresses and verifies one blob. */
  async loadBlob(id: Buffer): Promise<Buffer> {
    const loc = this.lookup(id);
    if (!loc) throw new CairnError(`blob ${id.toString("hex").slice(0, 16)} is not in the index; run "cairn check" to see what is damaged`);
    const envelope =
      loc.type === BlobType.tree
        ? (await this.treePack(loc.packId)).subarray(loc.offset, loc.offset + loc.length)
        : await this.backend.get(packKey(loc.packId), { offset: loc.offset, length: loc.length });
    const { data } = await this.pool.open({ envelope, compression: loc.compression, expectId: id }).catch((err: Error) => {
      throw err instanceof IntegrityError ? new IntegrityError(`pack ${loc.packId} is damaged: ${err.message}`) : err;
    });
    return data!;
  }

  /**
   * Tree packs are read whole and kept (up to a bound): walking a snapshot reads
   * many small trees that sit together, and one read serves them all.
   */
  private treePack(packId: string): Promise<Buffer> {
    let hit = this.treePacks.get(packId);
    if (hit) return hit;
    hit = this.backend.get(packKey(packId));
    this.treePacks.set(packId, hit);
    hit.then(
      (buf) => {
        this.treePackBytes += buf.length;
        while (this.treePackBytes > TREE_PACK_CACHE && this.treePacks.size > 1) {
          const [oldest, p] = this.treePacks.entries().next().value!;
          this.treePacks.delete(oldest);
          void p.then((b) => (this.treePackBytes -= b.length), () => undefined);
        }
      },
      () => this.treePacks.delete(packId),
    );
    return hit;
  }

  /** Encrypts and stores a small file under `dir/`; its name is the SHA-256 of the stored bytes. */
  async saveUnpacked(dir: FileKind, plaintext: Buffer): Promise<string> {
    const sealed = seal(packUnpacked(plaintext, true), this.currentKey, this.config.cipher);
    const id = sha256Hex(sealed);
    await this.backend.put(`${dir}/${id}`, sealed);
    return id;
  }

  async loadUnpacked(dir: FileKind, id: string): Promise<Buffer> {
    const bytes = await getVerified(this.backend, `${dir}/${id}`, id);
    try {
      return unpackUnpacked(open(bytes, this.keyFor));
    } catch (err) {
      if (err instanceof IntegrityError) throw new IntegrityError(`${dir}/${id} is damaged: ${err.message}`);
      throw err;
    }
  }

  /**
   * The keyed name of a named file: an HMAC of `label` under the blob id key, so a
   * name such as a database cluster's identifier is not readable from the storage.
   */
  namedId(label: string): string {
    return blobId(this.master.idKey, Buffer.from(label, "utf8")).toString("hex").slice(0, 32);
  }

  /**
   * Stores a file found by its name rather than by its content (a WAL segment under
   * `wal/`): a small head (what the file is) and a body, each encrypted, the body
   * compressed, laid out so the head reads on its own with a short ranged read. The
   * caller keeps names write-once: it decides what an existing name means first.
   */
  async saveNamed(key: string, head: Buffer, body: Buffer): Promise<void> {
    const sealedHead = seal(packUnpacked(head, false), this.currentKey, this.config.cipher);
    const sealedBody = seal(packUnpacked(body, true), this.currentKey, this.config.cipher);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(sealedHead.length);
    await this.backend.put(key, [len, sealedHead, sealedBody]);
  }

  /** The head of a named file; a missing file throws the backend's not-found error. */
  async loadNamedHead(key: string): Promise<Buffer> {
    const len = (await this.backend.get(key, { offset: 0, length: 4 })).readUInt32BE(0);
    if (len > MAX_NAMED_HEAD) throw new IntegrityError(`${key} is damaged: its head length is unreadable`);
    return this.openNamed(key, await this.backend.get(key, { offset: 4, length: len }));
  }

  /** The head and body of a named file. */
  async loadNamed(key: string): Promise<{ head: Buffer; body: Buffer }> {
    const bytes = await this.backend.get(key);
    const len = bytes.length >= 4 ? bytes.readUInt32BE(0) : -1;
    if (len < 0 || 4 + len > bytes.length) throw new IntegrityError(`${key} is damaged: it is shorter than its head`);
    return { head: this.openNamed(key, bytes.subarray(4, 4 + len)), body: this.openNamed(key, bytes.subarray(4 + len)) };
  }

  private openNamed(key: string, sealed: Buffer): Buffer {
    try {
      return unpackUnpacked(open(sealed, this.keyFor));
    } catch (err) {
      if (err instanceof IntegrityError) throw new IntegrityError(`${key} is damaged: ${err.message}`);
      throw err;
    }
  }

  async saveJSON(dir: FileKind, value: unknown): Promise<string> {
    return this.saveUnpacked(dir, Buffer.from(JSON.stringify(value)));
  }

  async loadJSON<T>(dir: FileKind, id: string): Promise<T> {
    return JSON.parse((await this.loadUnpacked(dir, id)).toString("utf8")) as T;
  }

  /** Ids of the files in a directory. */
  async listIds(dir: FileKind): Promise<string[]> {
    const ids: string[] = [];
    for await (const obj of this.backend.list(`${dir}/`)) ids.push(obj.key.slice(dir.length + 1));
    return ids;
  }

  /** Adds a key file for another password (the master key is unchanged, no data is rewritten). */
  async addKey(password: string, kdf: KdfParams = DEFAULT_SCRYPT): Promise<string> {
    const keyFile = await makeKeyFile(this.master, password, kdf);
    const id = sha256Hex(keyFile);
    await this.backend.put(`keys/${id}`, keyFile);
    return id;
  }

  /** Starts a new data-key epoch: data written from now on uses a fresh key; old data stays readable. */
  async rotateDataKey(): Promise<number> {
    const old = await this.listIds("keyring");
    const keys: Keyring["keys"] = [];
    const now = new Date().toISOString();
    for (const [epoch, key] of this.dataKeys) if (epoch > 0) keys.push({ epoch, key: key.toString("base64"), created: this.epochCreated.get(epoch) ?? now });
    const epoch = this.currentEpoch + 1;
    const key = randomKey();
    keys.push({ epoch, key: key.toString("base64"), created: now });
    // The keyring is sealed under epoch 0 so that every key file's master key opens it.
    const sealed = seal(packUnpacked(Buffer.from(JSON.stringify({ keys } satisfies Keyring)), false), { epoch: 0, key: this.master.encKey }, this.config.cipher);
    const id = sha256Hex(sealed);
    await this.backend.put(`keyring/${id}`, sealed);
    for (const o of old) await this.backend.delete(`keyring/${o}`);
    // From now on this open repository writes under the new epoch too.
    if (this.sealing.size || this.uploads.size) await this.flush();
    this.dataKeys.set(epoch, key);
    this.epochCreated.set(epoch, now);
    this.currentEpoch = epoch;
    const previous = this.pool;
    this.pool = this.makePool(previous.threads);
    await previous.close();
    return epoch;
  }

  async close(): Promise<void> {
    await this.pool.close();
    if (this.ownsBackend) await this.backend.close?.();
  }
}

/** Plaintext of an unpacked file: one byte of compression id, then the payload. */
function packUnpacked(payload: Buffer, compress: boolean): Buffer {
  const c = compress ? compressBlob(payload, { algorithm: "zstd", level: 3 }) : { id: Compression.none, data: payload };
  return Buffer.concat([Uint8Array.of(c.id), c.data]);
}

function unpackUnpacked(plain: Buffer): Buffer {
  if (plain.length < 1) throw new IntegrityError("empty file");
  return decompressBlob(plain[0], plain.subarray(1));
}

/** Reads a content-addressed file and checks that its bytes still hash to its name. */
export async function getVerified(backend: Backend, key: string, id: string): Promise<Buffer> {
  const bytes = await backend.get(key);
  if (sha256Hex(bytes) !== id) throw new IntegrityError(`${key} is damaged: its content no longer matches its name`);
  return bytes;
}

async function makeKeyFile(master: { encKey: Buffer; idKey: Buffer }, password: string, kdf: KdfParams): Promise<Buffer> {
  const salt = randomBytes(32);
  const wrapKey = await deriveKey(password, salt, kdf);
  const payload: MasterKey = { encKey: master.encKey.toString("base64"), idKey: master.idKey.toString("base64") };
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
async function unlock(backend: Backend, password: string): Promise<{ master: { encKey: Buffer; idKey: Buffer }; keyId: string }> {
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
      const m = JSON.parse(plain.toString("utf8")) as MasterKey;
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
 * Runs `fn` over `items` with at most `limit` running at once. After the first failure
 * no new item is started (the ones running finish on their own), so a failed job does
 * not go on working behind its caller's back.
 */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (err) {
        next = items.length;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}

export { type PackEntry };
