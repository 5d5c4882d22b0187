import { randomBytes } from "node:crypto";
import type { Backend, ObjectLock } from "../backends/backend.js";
import { BlobType, type BlobIndex, type BlobLocation } from "./blob-index.js";
import { Chunker, DEFAULT_CHUNK_SIZES, type ChunkerParams } from "./chunker.js";
import { CodecPool } from "./codec-pool.js";
import { DEFAULT_COMPRESSION, formatCompression, parseCompression, type CompressionSpec } from "./compression.js";
import { blobId, DEFAULT_SCRYPT, IntegrityError, open, randomKey, seal, sha256Hex, type CipherName, type KdfParams } from "./crypto.js";
import { CairnError } from "./errors.js";
import type { IndexFile } from "./index-file.js";
import { IndexStore } from "./index-store.js";
import { DataKeys, makeKeyFile, unlock, type MasterKey } from "./keyring.js";
import { packKey } from "./pack.js";
import { PackWriter } from "./pack-writer.js";
import { TREE_WINDOW, TreePackCache } from "./tree-cache.js";
import { getVerified, packUnpacked, unpackUnpacked } from "./unpacked.js";

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

/** Bytes of tree pack windows kept (tree-cache.ts): four windows. */
const TREE_PACK_CACHE = 4 * TREE_WINDOW;
const MAX_NAMED_HEAD = 16 * 1024 * 1024;

/**
 * An open repository: keys, config, the blob index, and the writer that groups
 * new blobs into packs. Files are write-once; nothing is rewritten in place.
 * The work is done by its parts: DataKeys (keyring.ts), IndexStore
 * (index-store.ts), PackWriter (pack-writer.ts) and TreePackCache (tree-cache.ts).
 */
export class Repository {
  readonly chunker: Chunker;
  pool: CodecPool;
  private readonly ownsBackend: boolean;
  private readonly keys: DataKeys;
  private readonly store = new IndexStore();
  private readonly writer: PackWriter;
  private readonly treePacks: TreePackCache;

  private constructor(
    readonly backend: Backend,
    readonly config: RepoConfig,
    private readonly master: MasterKey,
    readonly keyId: string,
    keys: DataKeys,
    options: OpenOptions,
  ) {
    this.keys = keys;
    this.chunker = new Chunker(config.chunker);
    this.pool = this.makePool(options.threads);
    this.ownsBackend = options.ownsBackend ?? false;
    this.treePacks = new TreePackCache(backend, TREE_PACK_CACHE);
    this.writer = new PackWriter(
      {
        backend,
        index: this.store,
        packSize: config.packSize,
        cipher: config.cipher,
        pool: () => this.pool,
        key: () => this.keys.newest,
        saveIndex: (encoded) => this.saveUnpacked("index", encoded),
      },
      parseCompression(options.compression ?? config.compression),
    );
  }

  private makePool(threads?: number): CodecPool {
    return new CodecPool({ idKey: this.master.idKey, dataKeys: this.keys.all, epoch: this.keys.epoch, cipher: this.config.cipher }, threads);
  }

  /** The in-memory blob index. */
  get index(): BlobIndex {
    return this.store.blobs;
  }

  /** Index files in force, by id; the entries (`packs`) of those read by the open are not kept: see indexFilesWithEntries. */
  get indexFiles(): Map<string, IndexFile> {
    return this.store.files;
  }

  /** Index files in force with their entries, read again where the open dropped them (check and prune need them; nothing else does). */
  indexFilesWithEntries(): Promise<Map<string, IndexFile>> {
    return this.store.withEntries((id) => this.loadUnpacked("index", id));
  }

  /**
   * Packs that prune is about to delete. A blob indexed only in one of them counts
   * as absent, so saveBlob stores it again in a new pack: that is how prune repacks.
   */
  get packsBeingRemoved(): Set<string> {
    return this.store.packsBeingRemoved;
  }

  /** Compression for data written in this session. */
  get compression(): CompressionSpec {
    return this.writer.compression;
  }

  set compression(spec: CompressionSpec) {
    this.writer.compression = spec;
  }

  /** Bytes of pack files written in this session (for stats and tests). */
  get packBytesWritten(): number {
    return this.writer.packBytesWritten;
  }

  get packsWritten(): number {
    return this.writer.packsWritten;
  }

  get idKey(): Buffer {
    return this.master.idKey;
  }

  get epoch(): number {
    return this.keys.epoch;
  }

  /** When the current data key was made: at its rotation, or with the repository for the first one. */
  get epochCreatedAt(): string {
    return this.keys.createdAt(this.keys.epoch) ?? this.config.created;
  }

  get epochs(): number[] {
    return this.keys.epochs;
  }

  keyFor = (epoch: number): Buffer | undefined => this.keys.keyFor(epoch);

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
    const keys = await DataKeys.load(backend, master);
    const repo = new Repository(backend, config, master, keyId, keys, options);
    if (options.loadIndex !== false) await repo.loadIndex(options.onIndexError);
    return repo;
  }

  /** (Re)reads every index file into memory. Superseded index files are skipped. */
  async loadIndex(onIndexError?: OpenOptions["onIndexError"]): Promise<void> {
    await this.store.load(await this.listIds("index"), (id) => this.loadUnpacked("index", id), onIndexError);
  }

  /** Where a blob is stored, or undefined. */
  lookup(id: Buffer): (BlobLocation & { packId: string }) | undefined {
    return this.store.lookup(id);
  }

  hasBlob(id: Buffer): boolean {
    return this.store.isStored(id) || this.writer.isPending(id);
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
  saveBlob(type: BlobType, data: Buffer, id: Buffer = this.blobId(data)): Promise<boolean> {
    return this.writer.saveBlob(type, data, id);
  }

  /**
   * Adds a data blob already sealed on a codec thread (CodecPool.readSeal) with this
   * session's key and compression, unless the repository has it; true when it was new.
   */
  saveSealed(id: Buffer, envelope: Buffer, compression: number, rawLength: number): Promise<boolean> {
    return this.writer.addSealed(id, envelope, compression, rawLength);
  }

  /**
   * Writes an index file for the packs uploaded so far (blobs still being packed are
   * not covered), so a backup that dies later does not upload them again: the next
   * run finds their blobs in the index. flush() waits for it as for an upload.
   */
  checkpoint(): Promise<void> {
    return this.writer.checkpoint();
  }

  /**
   * Waits for every pending blob, uploads partial packs and writes the index.
   * `packs` are packs already stored that the new index file lists as well (prune
   * passes every pack it keeps, so one index file supersedes all older ones).
   */
  flush(options: { supersedes?: string[]; packs?: IndexFile["packs"] } = {}): Promise<string | undefined> {
    return this.writer.flush(options);
  }

  /** Reads, decrypts, decompresses and verifies one blob. */
  async loadBlob(id: Buffer): Promise<Buffer> {
    const loc = this.lookup(id);
    if (!loc) throw new CairnError(`blob ${id.toString("hex").slice(0, 16)} is not in the index; run "cairn check" to see what is damaged`);
    const envelope =
      loc.type === BlobType.tree
        ? await this.treePacks.get(loc.packId, loc.offset, loc.length)
        : await this.backend.get(packKey(loc.packId), { offset: loc.offset, length: loc.length });
    // Trees are opened on this thread, as they are sealed: an unchanged re-backup reads
    // a parent tree per directory and nothing else, and codec threads started for those
    // alone cost about 43 MiB of peak memory and 1 s of CPU on 200,000 files in 200 directories.
    const { data } = await this.pool.open({ envelope, compression: loc.compression, expectId: id }, loc.type === BlobType.tree).catch((err: Error) => {
      throw err instanceof IntegrityError ? new IntegrityError(`pack ${loc.packId} is damaged: ${err.message}`) : err;
    });
    return data!;
  }

  /** Encrypts and stores a small file under `dir/`; its name is the SHA-256 of the stored bytes. */
  async saveUnpacked(dir: FileKind, plaintext: Buffer): Promise<string> {
    const sealed = seal(packUnpacked(plaintext, true), this.keys.newest, this.config.cipher);
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
    const sealedHead = seal(packUnpacked(head, false), this.keys.newest, this.config.cipher);
    const sealedBody = seal(packUnpacked(body, true), this.keys.newest, this.config.cipher);
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
    const next = await this.keys.writeNext(this.backend, this.config.cipher);
    // From now on this open repository writes under the new epoch too.
    if (this.writer.busy) await this.flush();
    this.keys.adopt(next.epoch, next.key, next.created);
    const previous = this.pool;
    this.pool = this.makePool(previous.threads);
    await previous.close();
    return next.epoch;
  }

  async close(): Promise<void> {
    await this.writer.abandon();
    await this.pool.close();
    if (this.ownsBackend) await this.backend.close?.();
  }
}

