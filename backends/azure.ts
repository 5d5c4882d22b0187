import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { BlobServiceClient, StorageSharedKeyCredential, type ContainerClient } from "@azure/storage-blob";
import { mapLimit } from "../engine/concurrency.js";
import { BackendError, bodyParts, type Backend, type Body, type ByteRange, type ObjectInfo } from "./backend.js";
import { readInto, shortRange, slicesOf, statusKind } from "./transfer.js";

export interface AzureOptions {
  container: string;
  /** Folder inside the container; empty for the container's root. */
  prefix?: string;
  /** AZURE_STORAGE_CONNECTION_STRING; otherwise account and key. */
  connectionString?: string;
  account?: string;
  accountKey?: string;
  /** Blob endpoint for the account and key; defaults to https://<account>.blob.core.windows.net. */
  endpoint?: string;
}

/** Objects up to this size go up in one request; larger ones as blocks of BLOCK bytes. */
const SINGLE_PUT = 64 * 1024 * 1024;
const BLOCK = 16 * 1024 * 1024;
const BLOCKS_AT_ONCE = 4;
/** Listing page size: Azure's default is 5,000; 1,000 keeps each response small. */
const PAGE = 1000;

/**
 * A repository in an Azure Blob Storage container. A block blob becomes visible
 * only when its upload (or block list) is committed, so puts are atomic.
 */
export class AzureBackend implements Backend {
  readonly location: string;
  private readonly container: ContainerClient;
  private readonly prefix: string;

  constructor(options: AzureOptions) {
    this.prefix = (options.prefix ?? "").replace(/^\/+|\/+$/g, "");
    this.location = `azure:${options.container}${this.prefix ? `/${this.prefix}` : ""}`;
    // The RetryBackend around this one decides about retries; the SDK's own would multiply them.
    const pipeline = { retryOptions: { maxTries: 1 } };
    let service: BlobServiceClient;
    if (options.connectionString) service = BlobServiceClient.fromConnectionString(options.connectionString, pipeline);
    else if (options.account && options.accountKey) {
      const endpoint = options.endpoint ?? `https://${options.account}.blob.core.windows.net`;
      service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(options.account, options.accountKey), pipeline);
    } else {
      throw new BackendError("permanent", `no credentials for ${this.location}: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY`, { reason: "no-credentials" });
    }
    this.container = service.getContainerClient(options.container);
  }

  private name(key: string): string {
    if (key.split("/").some((part) => part === ".." || part === "")) throw new BackendError("permanent", `invalid object key ${JSON.stringify(key)}`);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private classify(err: unknown, what: string, write = false): BackendError {
    if (err instanceof BackendError) return err;
    const e = err as Error & { statusCode?: number; code?: string };
    const where = `${what} at ${this.location}`;
    if (e.code === "ContainerNotFound" && write) {
      return new BackendError("permanent", `${where}: the container does not exist; create it with "cairn init" or in the Azure portal`, { cause: err, reason: "container-missing" });
    }
    if (e.statusCode === 404) return new BackendError("not-found", `${where}: not found`, { cause: err });
    if (e.statusCode === 403 || e.statusCode === 401) {
      return new BackendError("permanent", `${where}: access denied (${e.code ?? e.statusCode}); check AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT / AZURE_STORAGE_KEY`, { cause: err, reason: "access-denied" });
    }
    return new BackendError(statusKind(e.statusCode, e.code), `${where}: ${e.message}`, { cause: err });
  }

  async put(key: string, body: Body): Promise<void> {
    const blob = this.container.getBlockBlobClient(this.name(key));
    const parts = bodyParts(body);
    const size = parts.reduce((n, p) => n + p.byteLength, 0);
    try {
      if (size <= SINGLE_PUT) {
        await blob.upload(() => Readable.from(slicesOf(parts, 0, size), { objectMode: false }), size);
        return;
      }
      // Block ids are unique per upload: two writers of one key never commit each other's blocks.
      const upload = randomBytes(6).toString("hex");
      const ids: string[] = [];
      for (let at = 0, i = 0; at < size; at += BLOCK, i++) ids.push(Buffer.from(`${upload}-${String(i).padStart(6, "0")}`).toString("base64"));
      await mapLimit(ids, BLOCKS_AT_ONCE, (id, i) => {
        const start = i * BLOCK;
        const length = Math.min(BLOCK, size - start);
        return blob.stageBlock(id, () => Readable.from(slicesOf(parts, start, length), { objectMode: false }), length);
      });
      await blob.commitBlockList(ids);
    } catch (err) {
      throw this.classify(err, `writing ${key}`, true);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const what = `reading ${key}`;
    try {
      const res = await this.container.getBlobClient(this.name(key)).download(range?.offset ?? 0, range?.length);
      const length = res.contentLength ?? 0;
      if (range && length !== range.length) throw shortRange(key, this.location, range);
      return await readInto(res.readableStreamBody!, length);
    } catch (err) {
      if (range && (err as { statusCode?: number }).statusCode === 416) throw shortRange(key, this.location, range);
      throw this.classify(err, what);
    }
  }

  async stat(key: string): Promise<ObjectInfo> {
    try {
      const props = await this.container.getBlobClient(this.name(key)).getProperties();
      return { key, size: props.contentLength ?? 0 };
    } catch (err) {
      throw this.classify(err, `stat ${key}`);
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      return await this.container.getBlobClient(this.name(key)).exists();
    } catch (err) {
      throw this.classify(err, `looking for ${key}`);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const full = this.prefix ? `${this.prefix}/${prefix}` : prefix;
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    try {
      for await (const page of this.container.listBlobsFlat({ prefix: full }).byPage({ maxPageSize: PAGE })) {
        for (const item of page.segment.blobItems) yield { key: item.name.slice(strip), size: item.properties.contentLength ?? 0 };
      }
    } catch (err) {
      if ((err as { code?: string }).code === "ContainerNotFound") return;
      throw this.classify(err, `listing ${prefix}`);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.container.getBlobClient(this.name(key)).deleteIfExists();
    } catch (err) {
      throw this.classify(err, `deleting ${key}`);
    }
  }

  async ensureContainer(): Promise<void> {
    try {
      await this.container.createIfNotExists();
    } catch (err) {
      throw this.classify(err, "creating the container", true);
    }
  }
}
