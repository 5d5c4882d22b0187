import { BackendError, bodyParts, type Backend, type Body, type ByteRange, type ObjectInfo, type StagedObject } from "./backend.js";

/** An in-memory backend for unit tests of the engine. */
export class MemBackend implements Backend {
  readonly location = "mem:";
  readonly objects = new Map<string, Buffer>();

  async put(key: string, body: Body): Promise<void> {
    this.objects.set(key, Buffer.concat(bodyParts(body) as Uint8Array[]));
  }

  /** Pieces kept apart from `objects` until commit, so tests run the pack writer's staged path. */
  async stage(): Promise<StagedObject> {
    let parts: Buffer[] | undefined = [];
    return {
      write: async (part) => {
        if (!parts) throw new BackendError("permanent", "writing a staged object that was already committed or aborted");
        parts.push(Buffer.from(part));
      },
      commit: async (key) => {
        if (!parts) throw new BackendError("permanent", `writing ${key}: the staged object was already committed or aborted`);
        this.objects.set(key, Buffer.concat(parts));
        parts = undefined;
      },
      abort: async () => {
        parts = undefined;
      },
    };
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const obj = this.objects.get(key);
    if (!obj) throw new BackendError("not-found", `${key}: not found`);
    if (!range) return Buffer.from(obj);
    if (range.offset + range.length > obj.length) {
      throw new BackendError("permanent", `reading ${key}: object is shorter than the requested range`);
    }
    return Buffer.from(obj.subarray(range.offset, range.offset + range.length));
  }

  async stat(key: string): Promise<ObjectInfo> {
    const obj = this.objects.get(key);
    if (!obj) throw new BackendError("not-found", `${key}: not found`);
    return { key, size: obj.length };
  }

  async exists(key: string): Promise<boolean> {
    return this.objects.has(key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for (const [key, obj] of [...this.objects]) {
      if (key.startsWith(prefix)) yield { key, size: obj.length };
    }
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}
