import { Readable } from "node:stream";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
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
import { BackendError, bodyParts, type Backend, type Body, type ByteRange, type ObjectInfo } from "./backend.js";
import { inParallel, readInto, shortRange, slicesOf, statusKind } from "./transfer.js";

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
}

/** Objects up to this size go up in one request; larger ones as a multipart upload of such parts. */
const PART = 16 * 1024 * 1024;
const PARTS_AT_ONCE = 4;
/** S3's limit on the parts of one upload. */
const MAX_PARTS = 10_000;

/** Bytes [start, start+length) of the body as a request stream, without copying them. */
const stream = (parts: readonly Uint8Array[], start: number, length: number) => Readable.from(slicesOf(parts, start, length), { objectMode: false });

/**
 * A repository in an S3 bucket (or any S3-compatible service). A PutObject or a
 * completed multipart upload is atomic: readers see the old object or the new one.
 */
export class S3Backend implements Backend {
  readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly region: string;

  constructor(private readonly options: S3Options) {
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? "").replace(/^\/+|\/+$/g, "");
    this.region = options.region ?? "us-east-1";
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
      return new BackendError("permanent", `${where}: the bucket does not exist; create it with "cairn init" or in the provider's console`, { cause: err });
    }
    if (status === 404 || e.name === "NoSuchKey" || e.name === "NotFound") return new BackendError("not-found", `${where}: not found`, { cause: err });
    if (status === 403 || status === 401 || e.name === "InvalidAccessKeyId" || e.name === "SignatureDoesNotMatch") {
      return new BackendError("permanent", `${where}: access denied (${e.name}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy`, { cause: err });
    }
    return new BackendError(statusKind(status, e.code ?? (status === undefined ? e.name : e.Code)), `${where}: ${e.message || e.name}`, { cause: err });
  }

  async put(key: string, body: Body): Promise<void> {
    const parts = bodyParts(body);
    const size = parts.reduce((n, p) => n + p.byteLength, 0);
    const params = { Bucket: this.bucket, Key: this.key(key), StorageClass: this.options.storageClass as StorageClass | undefined };
    try {
      if (size <= PART) await this.client.send(new PutObjectCommand({ ...params, Body: stream(parts, 0, size), ContentLength: size }));
      else await this.putMultipart(params, parts, size);
    } catch (err) {
      throw this.classify(err, `writing ${key}`, true);
    }
  }

  /**
   * A multipart upload whose parts stream straight from the body's buffers.
   * (lib-storage's Upload would gather every part into a fresh buffer first.)
   * Nothing is visible until the upload completes; a failed one is aborted.
   */
  private async putMultipart(params: { Bucket: string; Key: string; StorageClass?: StorageClass }, parts: readonly Uint8Array[], size: number): Promise<void> {
    const partSize = Math.max(PART, Math.ceil(size / MAX_PARTS));
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand(params));
    const target = { Bucket: params.Bucket, Key: params.Key, UploadId };
    try {
      const numbers = Array.from({ length: Math.ceil(size / partSize) }, (_, i) => i + 1);
      const done: { PartNumber: number; ETag?: string }[] = [];
      await inParallel(numbers, PARTS_AT_ONCE, async (PartNumber) => {
        const start = (PartNumber - 1) * partSize;
        const length = Math.min(partSize, size - start);
        const { ETag } = await this.client.send(new UploadPartCommand({ ...target, PartNumber, Body: stream(parts, start, length), ContentLength: length }));
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
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key), Range: range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined }),
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
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return { key, size: head.ContentLength ?? 0 };
    } catch (err) {
      throw this.classify(err, `stat ${key}`);
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.stat(key);
      return true;
    } catch (err) {
      if (err instanceof BackendError && err.kind === "not-found") return false;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    try {
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
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
    } catch (err) {
      const e = this.classify(err, `deleting ${key}`);
      if (e.kind !== "not-found") throw e;
    }
  }

  async ensureContainer(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      const e = this.classify(err, "looking for the bucket");
      if (e.kind !== "not-found") throw e;
    }
    try {
      const location = this.region === "us-east-1" ? undefined : { LocationConstraint: this.region as BucketLocationConstraint };
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket, CreateBucketConfiguration: location }));
    } catch (err) {
      if ((err as Error).name !== "BucketAlreadyOwnedByYou") throw this.classify(err, "creating the bucket", true);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
