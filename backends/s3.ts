import { createHash } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { Readable } from "node:stream";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  UploadPartCommand,
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  S3Client,
  paginateListObjectsV2,
  type BucketLocationConstraint,
  type StorageClass,
} from "@aws-sdk/client-s3";
import { mapLimit } from "../engine/concurrency.js";
import { BackendError, bodyParts, existsByStat, type Backend, type Body, type ByteRange, type ObjectInfo, type ObjectLock } from "./backend.js";
import { readInto, shortRange, slicesOf, statusKind } from "./transfer.js";
import type { LookupFunction } from "./url.js";

export interface S3Options {
  bucket: string;
  /** Folder inside the bucket; empty for the bucket's root. */
  prefix?: string;
  /** An S3-compatible service (MinIO, R2, B2…); AWS itself when absent. */
  endpoint?: string;
  region?: string;
  /** bucket in the path instead of the host name; needed by MinIO and most self-hosted services. */
  forcePathStyle?: boolean;
  /** Without them, the SDK's usual chain (environment, ~/.aws, instance role) applies. */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** e.g. STANDARD_IA or GLACIER_IR for new objects; the bucket's default when absent. */
  storageClass?: string;
  /**
   * Object Lock retention for every new object but lock files. ensureContainer creates
   * the bucket with Object Lock; a bucket without it refuses such writes.
   */
  objectLock?: ObjectLock;
  /** Resolves the service's host names for each connection (the execution policy's check); dns.lookup when absent. */
  lookup?: LookupFunction;
}

/** Lock files are deleted when the operation that holds them ends, so they never get retention. */
const lockable = (key: string) => !key.startsWith("locks/");

const DAY_MS = 24 * 60 * 60 * 1000;

/** One stored version of an object. */
interface Version {
  versionId: string;
  size: number;
}

/** Parts of a multipart upload. */
const PART = 16 * 1024 * 1024;
/**
 * Objects up to this size go up in one request. Above the default pack size
 * (16 MiB, which a full pack slightly exceeds), so a pack is one PUT, not four requests.
 */
const SINGLE_PUT_MAX = 64 * 1024 * 1024;
const PARTS_AT_ONCE = 4;
/** S3's limit on the parts of one upload. */
const MAX_PARTS = 10_000;

type PutParams = { Bucket: string; Key: string; StorageClass?: StorageClass; ObjectLockMode?: ObjectLock["mode"]; ObjectLockRetainUntilDate?: Date };

/** Base64 MD5 of bytes [start, start+length) of the body. */
function md5Of(parts: readonly Uint8Array[], start: number, length: number): string {
  const hash = createHash("md5");
  for (const slice of slicesOf(parts, start, length)) hash.update(slice);
  return hash.digest("base64");
}

/** Bytes [start, start+length) of the body as a request stream, without copying them. */
const stream = (parts: readonly Uint8Array[], start: number, length: number) => Readable.from(slicesOf(parts, start, length), { objectMode: false });

/**
 * A repository in an S3 bucket (or any S3-compatible service). A PutObject or a
 * completed multipart upload is atomic: readers see the old object or the new one.
 *
 * In a bucket with Object Lock (which keeps every version of every object) the
 * backend reads, lists and stats the FIRST version of each key: Cairn writes each
 * key once, so a later version or a delete marker is someone else's overwrite or
 * delete, and must not hide the locked original. A delete removes every version.
 */
export class S3Backend implements Backend {
  readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly region: string;
  private lock: ObjectLock | undefined;
  /** Whether the bucket has Object Lock, asked once. */
  private lockedBucket: Promise<boolean> | undefined;
  /** The first version of keys seen in a bucket with Object Lock. */
  private readonly originals = new Map<string, Version>();

  constructor(private readonly options: S3Options) {
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? "").replace(/^\/+|\/+$/g, "");
    this.region = options.region ?? "us-east-1";
    this.lock = options.objectLock;
    this.location = `s3:${options.endpoint ? `${options.endpoint.replace(/\/+$/, "")}/` : ""}${this.bucket}${this.prefix ? `/${this.prefix}` : ""}`;
    this.client = new S3Client({
      region: this.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      credentials:
        options.accessKeyId && options.secretAccessKey
          ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey, sessionToken: options.sessionToken }
          : undefined,
      // The RetryBackend around this one decides about retries; the SDK's own would multiply them.
      maxAttempts: 1,
      // Checksums only where S3 demands them: several S3-compatible services reject the newer trailers.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      ...(options.lookup
        ? { requestHandler: { httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 50, lookup: options.lookup }), httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 50, lookup: options.lookup }) } }
        : {}),
    });
  }

  private key(key: string): string {
    if (key.split("/").some((part) => part === ".." || part === "")) throw new BackendError("permanent", `invalid object key ${JSON.stringify(key)}`);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private classify(err: unknown, what: string, write = false): BackendError {
    if (err instanceof BackendError) return err;
    const e = err as Error & { $metadata?: { httpStatusCode?: number }; code?: string; Code?: string };
    const status = e.$metadata?.httpStatusCode;
    const where = `${what} at ${this.location}`;
    if (e.name === "NoSuchBucket" && write) {
      return new BackendError("permanent", `${where}: the bucket does not exist; create it with "cairn init" or in the provider's console`, { cause: err, reason: "container-missing" });
    }
    if (status === 404 || e.name === "NoSuchKey" || e.name === "NotFound") return new BackendError("not-found", `${where}: not found`, { cause: err });
    if (status === 403 || status === 401 || e.name === "InvalidAccessKeyId" || e.name === "SignatureDoesNotMatch") {
      return new BackendError("permanent", `${where}: access denied (${e.name}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy`, { cause: err, reason: "access-denied" });
    }
    return new BackendError(statusKind(status, e.code ?? (status === undefined ? e.name : e.Code)), `${where}: ${e.message || e.name}`, { cause: err });
  }

  async put(key: string, body: Body): Promise<void> {
    const parts = bodyParts(body);
    const size = parts.reduce((n, p) => n + p.byteLength, 0);
    try {
      const retention = lockable(key) ? await this.retention() : undefined;
      const params: PutParams = { Bucket: this.bucket, Key: this.key(key), StorageClass: this.options.storageClass as StorageClass | undefined, ...retention };
      // S3 demands a checksum on writes with retention.
      const md5 = retention ? (start: number, length: number) => md5Of(parts, start, length) : () => undefined;
      if (size <= SINGLE_PUT_MAX) await this.client.send(new PutObjectCommand({ ...params, Body: stream(parts, 0, size), ContentLength: size, ContentMD5: md5(0, size) }));
      else await this.putMultipart(params, parts, size, md5);
      this.originals.delete(key);
    } catch (err) {
      throw this.classify(err, `writing ${key}`, true);
    }
  }

  /** The Object Lock headers for a new object, when objects get retention. */
  private async retention(): Promise<Pick<PutParams, "ObjectLockMode" | "ObjectLockRetainUntilDate"> | undefined> {
    if (!this.lock) return undefined;
    if (!(await this.hasObjectLock())) {
      // A retention the repository config asks for, on a copy in a bucket without Object Lock, does not apply there.
      if (!this.options.objectLock) return undefined;
      throw new BackendError(
        "permanent",
        `the bucket ${this.bucket} has no Object Lock, so objects cannot get the retention asked for; run "cairn init" with --object-lock-days on a new bucket, or unset CAIRN_S3_OBJECT_LOCK_DAYS`,
      );
    }
    return { ObjectLockMode: this.lock.mode, ObjectLockRetainUntilDate: new Date(Date.now() + this.lock.days * DAY_MS) };
  }

  /**
   * A multipart upload whose parts stream straight from the body's buffers.
   * (lib-storage's Upload would gather every part into a fresh buffer first.)
   * Nothing is visible until the upload completes; a failed one is aborted.
   */
  private async putMultipart(params: PutParams, parts: readonly Uint8Array[], size: number, md5: (start: number, length: number) => string | undefined): Promise<void> {
    const partSize = Math.max(PART, Math.ceil(size / MAX_PARTS));
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand(params));
    const target = { Bucket: params.Bucket, Key: params.Key, UploadId };
    try {
      const numbers = Array.from({ length: Math.ceil(size / partSize) }, (_, i) => i + 1);
      const done: { PartNumber: number; ETag?: string }[] = [];
      await mapLimit(numbers, PARTS_AT_ONCE, async (PartNumber) => {
        const start = (PartNumber - 1) * partSize;
        const length = Math.min(partSize, size - start);
        const { ETag } = await this.client.send(new UploadPartCommand({ ...target, PartNumber, Body: stream(parts, start, length), ContentLength: length, ContentMD5: md5(start, length) }));
        done.push({ PartNumber, ETag });
      });
      done.sort((a, b) => a.PartNumber - b.PartNumber);
      await this.client.send(new CompleteMultipartUploadCommand({ ...target, MultipartUpload: { Parts: done } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand(target)).catch(() => undefined);
      throw err;
    }
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const what = `reading ${key}`;
    try {
      if (range?.length === 0) {
        if ((await this.stat(key)).size < range.offset) throw shortRange(key, this.location, range);
        return Buffer.alloc(0);
      }
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.key(key),
          VersionId: await this.originalVersion(key),
          Range: range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined,
        }),
      );
      const length = res.ContentLength ?? 0;
      const stream = res.Body as Readable;
      if (range && length !== range.length) {
        stream.destroy();
        throw shortRange(key, this.location, range);
      }
      return await readInto(stream, length);
    } catch (err) {
      if (range && (err as Error).name === "InvalidRange") throw shortRange(key, this.location, range);
      throw this.classify(err, what);
    }
  }

  async stat(key: string): Promise<ObjectInfo> {
    try {
      if (await this.hasObjectLock()) return { key, size: (await this.original(key)).size };
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return { key, size: head.ContentLength ?? 0 };
    } catch (err) {
      throw this.classify(err, `stat ${key}`);
    }
  }

  exists(key: string): Promise<boolean> {
    return existsByStat(this, key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    try {
      if (await this.hasObjectLock()) {
        yield* this.listOriginals(prefix);
        return;
      }
      for await (const page of paginateListObjectsV2({ client: this.client }, { Bucket: this.bucket, Prefix: this.prefix ? `${this.prefix}/${prefix}` : prefix })) {
        for (const o of page.Contents ?? []) yield { key: o.Key!.slice(strip), size: o.Size ?? 0 };
      }
    } catch (err) {
      if ((err as Error).name === "NoSuchBucket") return;
      throw this.classify(err, `listing ${prefix}`);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      if (await this.hasObjectLock()) return await this.deleteVersions(key);
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
    } catch (err) {
      const e = this.classify(err, `deleting ${key}`);
      if (e.kind !== "not-found") throw e;
    }
  }

  async ensureContainer(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      if (this.options.objectLock && !(await this.hasObjectLock())) {
        throw new BackendError(
          "permanent",
          `the bucket ${this.bucket} at ${this.location} exists without Object Lock, which S3 turns on only when a bucket is created; choose a new bucket name for an immutable repository`,
        );
      }
      return;
    } catch (err) {
      const e = this.classify(err, "looking for the bucket");
      if (e.kind !== "not-found") throw e;
    }
    try {
      const location = this.region === "us-east-1" ? undefined : { LocationConstraint: this.region as BucketLocationConstraint };
      await this.client.send(
        new CreateBucketCommand({ Bucket: this.bucket, CreateBucketConfiguration: location, ObjectLockEnabledForBucket: this.options.objectLock ? true : undefined }),
      );
    } catch (err) {
      if ((err as Error).name !== "BucketAlreadyOwnedByYou") throw this.classify(err, "creating the bucket", true);
    } finally {
      this.lockedBucket = undefined;
    }
  }

  objectLock(): ObjectLock | undefined {
    return this.lock;
  }

  useObjectLock(lock: ObjectLock): void {
    this.lock ??= lock;
  }

  async retainedUntil(key: string): Promise<Date | undefined> {
    try {
      if (!(await this.hasObjectLock())) return undefined;
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key), VersionId: (await this.original(key)).versionId }));
      const until = head.ObjectLockRetainUntilDate;
      return until && until.getTime() > Date.now() ? until : undefined;
    } catch (err) {
      const e = this.classify(err, `reading the retention of ${key}`);
      if (e.kind === "not-found") return undefined;
      throw e;
    }
  }

  /** Asks the bucket once whether it has Object Lock; a bucket that does not exist yet has not. */
  private hasObjectLock(): Promise<boolean> {
    this.lockedBucket ??= this.client.send(new GetObjectLockConfigurationCommand({ Bucket: this.bucket })).then(
      (res) => res.ObjectLockConfiguration?.ObjectLockEnabled === "Enabled",
      (err) => {
        const e = this.classify(err, "reading the bucket's Object Lock configuration");
        if (e.kind === "transient") {
          this.lockedBucket = undefined;
          throw e;
        }
        // No configuration, no bucket, or a service without Object Lock.
        return false;
      },
    );
    return this.lockedBucket;
  }

  /** The version id to read, in a bucket with Object Lock; undefined (the latest) otherwise. */
  private async originalVersion(key: string): Promise<string | undefined> {
    return (await this.hasObjectLock()) ? (await this.original(key)).versionId : undefined;
  }

  /** The first version of a key; not-found when it has none (delete markers do not count). */
  private async original(key: string): Promise<Version> {
    const known = this.originals.get(key);
    if (known) return known;
    for await (const [k, v] of this.originalsUnder(this.key(key))) if (k === this.key(key)) this.originals.set(key, v);
    const found = this.originals.get(key);
    if (!found) throw new BackendError("not-found", `${key} at ${this.location}: not found`);
    return found;
  }

  private async *listOriginals(prefix: string): AsyncIterable<ObjectInfo> {
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    for await (const [full, v] of this.originalsUnder(this.prefix ? `${this.prefix}/${prefix}` : prefix)) {
      const key = full.slice(strip);
      this.originals.set(key, v);
      yield { key, size: v.size };
    }
  }

  /** [full key, first version] of every key under the prefix that has a version. */
  private async *originalsUnder(prefix: string): AsyncIterable<[string, Version]> {
    // Versions come sorted by key, newest first: the last one listed for a key is its first.
    let current: [string, Version] | undefined;
    for await (const v of this.versionsUnder(prefix)) {
      if (v.deleteMarker) continue;
      if (current && current[0] !== v.key) yield current;
      current = [v.key, { versionId: v.versionId, size: v.size }];
    }
    if (current) yield current;
  }

  /** Every version and delete marker under the prefix, sorted by key, newest first. */
  private async *versionsUnder(prefix: string): AsyncIterable<Version & { key: string; deleteMarker: boolean; modified: number }> {
    let KeyMarker: string | undefined;
    let VersionIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker, VersionIdMarker }));
      const entries = [
        ...(page.Versions ?? []).map((v) => ({ key: v.Key!, versionId: v.VersionId!, size: v.Size ?? 0, deleteMarker: false, modified: v.LastModified?.getTime() ?? 0 })),
        ...(page.DeleteMarkers ?? []).map((d) => ({ key: d.Key!, versionId: d.VersionId!, size: 0, deleteMarker: true, modified: d.LastModified?.getTime() ?? 0 })),
      ];
      // A page holds versions and delete markers apart; put them back in listing order.
      entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : b.modified - a.modified));
      yield* entries;
      if (!page.IsTruncated) return;
      KeyMarker = page.NextKeyMarker;
      VersionIdMarker = page.NextVersionIdMarker;
    }
  }

  /** Deletes every version of a key, newest first, unless its first version is under retention. */
  private async deleteVersions(key: string): Promise<void> {
    const until = await this.retainedUntil(key);
    if (until) {
      throw new BackendError(
        "permanent",
        `cannot delete ${key} at ${this.location}: the object is under retention until ${until.toISOString()} (S3 Object Lock); it can be deleted after that`,
        { retainedUntil: until },
      );
    }
    const full = this.key(key);
    for await (const v of this.versionsUnder(full)) {
      if (v.key === full) await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: full, VersionId: v.versionId }));
    }
    this.originals.delete(key);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
