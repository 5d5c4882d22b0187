import { BackendError, type Backend, type Body, type ByteRange, type ObjectInfo } from "./backend.js";

/** What goes wrong, and how often. Change the fields at any time: the next operation uses them. */
export interface Faults {
  /** Probability that an operation fails with a transient error before it reaches the destination. */
  transientRate: number;
  /**
   * Probability that the connection resets after the destination did the work: a put
   * has landed but the caller sees an error, a get or list breaks off part way.
   */
  resetRate: number;
  /** Up to this many milliseconds of latency added to every operation. */
  latencyMs: number;
  /** Reads deliver at most this many bytes per second (0: no limit). */
  readBytesPerSecond: number;
}

/** A small seeded generator (mulberry32): the same seed gives the same faults. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A test wrapper that makes a healthy backend misbehave like a remote one:
 * transient failures, connection resets, latency and slow reads, drawn from a
 * seeded generator so a failing test can be run again with the same faults.
 */
export class FaultInjectingBackend implements Backend {
  readonly location: string;
  readonly faults: Faults;
  /** How many faults were injected so far, by kind. */
  readonly injected = { transient: 0, reset: 0 };
  private readonly random: () => number;

  constructor(readonly inner: Backend, options: Partial<Faults> & { seed: number }) {
    this.location = inner.location;
    this.random = seededRandom(options.seed);
    this.faults = { transientRate: 0, resetRate: 0, latencyMs: 0, readBytesPerSecond: 0, ...options };
  }

  /** Latency, then maybe a failure before the destination is reached. */
  private async before(operation: string): Promise<void> {
    if (this.faults.latencyMs > 0) await sleep(this.random() * this.faults.latencyMs);
    if (this.random() < this.faults.transientRate) {
      this.injected.transient++;
      throw new BackendError("transient", `${operation}: injected failure (503 service unavailable)`);
    }
  }

  private resets(): boolean {
    const reset = this.random() < this.faults.resetRate;
    if (reset) this.injected.reset++;
    return reset;
  }

  private reset(operation: string): BackendError {
    return new BackendError("transient", `${operation}: injected connection reset`);
  }

  private async around<T>(operation: string, run: () => Promise<T>): Promise<T> {
    await this.before(operation);
    const result = await run();
    if (this.resets()) throw this.reset(operation);
    return result;
  }

  put(key: string, body: Body): Promise<void> {
    return this.around(`writing ${key}`, () => this.inner.put(key, body));
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const bytes = await this.around(`reading ${key}`, () => this.inner.get(key, range));
    if (this.faults.readBytesPerSecond > 0) await sleep((bytes.length / this.faults.readBytesPerSecond) * 1000);
    return bytes;
  }

  stat(key: string): Promise<ObjectInfo> {
    return this.around(`stat ${key}`, () => this.inner.stat(key));
  }

  exists(key: string): Promise<boolean> {
    return this.around(`looking for ${key}`, () => this.inner.exists(key));
  }

  delete(key: string): Promise<void> {
    return this.around(`deleting ${key}`, () => this.inner.delete(key));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    await this.before(`listing ${prefix}`);
    const breakAfter = this.resets() ? Math.floor(this.random() * 8) : Infinity;
    let n = 0;
    for await (const obj of this.inner.list(prefix)) {
      if (n++ === breakAfter) throw this.reset(`listing ${prefix}`);
      yield obj;
    }
  }

  async ensureContainer(): Promise<void> {
    await this.around("creating the bucket", async () => this.inner.ensureContainer?.());
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
