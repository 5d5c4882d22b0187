import type { Backend, Body, ByteRange, ObjectInfo } from "./backend.js";

/**
 * Caps how many operations run against a destination at once (servers and
 * providers throttle or refuse connections beyond a point). Listings are not
 * counted: a caller that reads objects while it walks a listing would otherwise
 * wait on itself.
 */
export class LimitBackend implements Backend {
  readonly location: string;
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly inner: Backend, readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`a concurrency limit must be a whole number of at least 1, got ${limit}`);
    this.location = inner.location;
  }

  private async slot<T>(run: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await run();
    } finally {
      // Hand the slot straight to the next waiter, so running never overshoots.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  put(key: string, body: Body): Promise<void> {
    return this.slot(() => this.inner.put(key, body));
  }

  get(key: string, range?: ByteRange): Promise<Buffer> {
    return this.slot(() => this.inner.get(key, range));
  }

  stat(key: string): Promise<ObjectInfo> {
    return this.slot(() => this.inner.stat(key));
  }

  exists(key: string): Promise<boolean> {
    return this.slot(() => this.inner.exists(key));
  }

  delete(key: string): Promise<void> {
    return this.slot(() => this.inner.delete(key));
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }

  async ensureContainer(): Promise<void> {
    await this.slot(async () => this.inner.ensureContainer?.());
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
