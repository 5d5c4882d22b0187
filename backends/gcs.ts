import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Storage, type Bucket } from "@google-cloud/storage";
import { BackendError, bodyParts, type Backend, type Body, type ByteRange, type ObjectInfo } from "./backend.js";
import { shortRange, slicesOf, statusKind } from "./transfer.js";

export interface GcsOptions {
  bucket: string;
  /** Folder inside the bucket; empty for the bucket's root. */
  prefix?: string;
  /** Another endpoint than Google's, such as an emulator (CAIRN_GCS_ENDPOINT). */
  apiEndpoint?: string;
  /** The project new buckets belong to. */
  projectId?: string;
  /** A service account key file; Application Default Credentials otherwise (GOOGLE_APPLICATION_CREDENTIALS). */
  keyFilename?: string;
  /** A service account key given as text (CAIRN_GCS_KEY) instead of a file. */
  credentials?: { client_email: string; private_key: string };
}

/** Larger objects use a resumable upload session, as Google recommends; smaller ones one request. */
const RESUMABLE_ABOVE = 16 * 1024 * 1024;
const PAGE = 1000;

/**
 * A repository in a Google Cloud Storage bucket. An object appears only when its
 * upload is finalized, so puts are atomic.
 */
export class GcsBackend implements Backend {
  readonly location: string;
  private readonly storage: Storage;
  private readonly bucket: Bucket;
  private readonly prefix: string;

  constructor(options: GcsOptions) {
    this.prefix = (options.prefix ?? "").replace(/^\/+|\/+$/g, "");
    this.location = `gs:${options.bucket}${this.prefix ? `/${this.prefix}` : ""}`;
    // The RetryBackend around this one decides about retries; the client's own would multiply them.
    this.storage = new Storage({ apiEndpoint: options.apiEndpoint, projectId: options.projectId, keyFilename: options.keyFilename, credentials: options.credentials, retryOptions: { autoRetry: false } });
    this.bucket = this.storage.bucket(options.bucket);
  }

  private name(key: string): string {
    if (key.split("/").some((part) => part === ".." || part === "")) throw new BackendError("permanent", `invalid object key ${JSON.stringify(key)}`);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private classify(err: unknown, what: string, write = false): BackendError {
    if (err instanceof BackendError) return err;
    const e = err as Error & { code?: number | string };
    const status = typeof e.code === "number" ? e.code : undefined;
    const where = `${what} at ${this.location}`;
    if (status === 404 && write) {
      return new BackendError("permanent", `${where}: the bucket does not exist; create it with "cairn init" or in the Cloud console`, { cause: err, reason: "container-missing" });
    }
    if (status === 404) return new BackendError("not-found", `${where}: not found`, { cause: err });
    if (status === 401 || status === 403) {
      return new BackendError("permanent", `${where}: access denied (HTTP ${status}); check GOOGLE_APPLICATION_CREDENTIALS or CAIRN_GCS_KEY and the account's roles on the bucket`, { cause: err, reason: "access-denied" });
    }
    return new BackendError(statusKind(status, typeof e.code === "string" ? e.code : undefined), `${where}: ${e.message}`, { cause: err });
  }

  async put(key: string, body: Body): Promise<void> {
    const parts = bodyParts(body);
    const size = parts.reduce((n, p) => n + p.byteLength, 0);
    try {
      const upload = this.bucket.file(this.name(key)).createWriteStream({ resumable: size > RESUMABLE_ABOVE, metadata: { contentType: "application/octet-stream" } });
      await pipeline(Readable.from(slicesOf(parts, 0, size), { objectMode: false }), upload);
    } catch (err) {
      throw this.classify(err, `writing ${key}`, true);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    try {
      if (range?.length === 0) {
        if ((await this.stat(key)).size < range.offset) throw shortRange(key, this.location, range);
        return Buffer.alloc(0);
      }
      const stream = this.bucket.file(this.name(key)).createReadStream({
        validation: false,
        decompress: false,
        ...(range && { start: range.offset, end: range.offset + range.length - 1 }),
      });
      return await this.readBody(stream, key, range);
    } catch (err) {
      if (range && (err as { code?: number }).code === 416) throw shortRange(key, this.location, range);
      throw this.classify(err, `reading ${key}`);
    }
  }

  /** Reads a download into one buffer sized by its Content-Length, without collecting chunks first. */
  private async readBody(stream: Readable, key: string, range?: ByteRange): Promise<Buffer> {
    let announced: number | undefined;
    stream.once("response", (res: { headers: Record<string, string | undefined> }) => {
      const length = Number(res.headers["content-length"]);
      if (Number.isSafeInteger(length)) announced = length;
    });
    let buf: Buffer | undefined;
    let got = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (!buf) {
        if (announced === undefined) throw new BackendError("transient", `reading ${key} at ${this.location}: the server did not say how long the object is`);
        if (range && announced !== range.length) {
          stream.destroy();
          throw shortRange(key, this.location, range);
        }
        buf = Buffer.allocUnsafe(announced);
      }
      if (got + chunk.length > buf.length) throw new BackendError("transient", `reading ${key} at ${this.location}: the server sent more than the ${buf.length} bytes it announced`);
      chunk.copy(buf, got);
      got += chunk.length;
    }
    if (!buf) {
      if (range) throw shortRange(key, this.location, range);
      return Buffer.alloc(0);
    }
    if (got !== buf.length) throw new BackendError("transient", `reading ${key} at ${this.location}: the connection ended after ${got} of ${buf.length} bytes`);
    return buf;
  }

  async stat(key: string): Promise<ObjectInfo> {
    try {
      const [metadata] = await this.bucket.file(this.name(key)).getMetadata();
      return { key, size: Number(metadata.size ?? 0) };
    } catch (err) {
      throw this.classify(err, `stat ${key}`);
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await this.bucket.file(this.name(key)).exists())[0];
    } catch (err) {
      const e = this.classify(err, `looking for ${key}`);
      if (e.kind === "not-found") return false;
      throw e;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    let query: { prefix: string; autoPaginate: false; maxResults: number; pageToken?: string } | undefined = {
      prefix: this.prefix ? `${this.prefix}/${prefix}` : prefix,
      autoPaginate: false,
      maxResults: PAGE,
    };
    while (query) {
      let files, next;
      try {
        [files, next] = await this.bucket.getFiles(query);
      } catch (err) {
        if ((err as { code?: number }).code === 404) return;
        throw this.classify(err, `listing ${prefix}`);
      }
      for (const f of files) yield { key: f.name.slice(strip), size: Number(f.metadata.size ?? 0) };
      query = next as typeof query;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.bucket.file(this.name(key)).delete({ ignoreNotFound: true });
    } catch (err) {
      const e = this.classify(err, `deleting ${key}`);
      if (e.kind !== "not-found") throw e;
    }
  }

  async ensureContainer(): Promise<void> {
    try {
      if (!(await this.bucket.exists())[0]) await this.bucket.create();
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw this.classify(err, "creating the bucket", true);
    }
  }
}
