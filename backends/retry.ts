import { BackendError, type Backend, type Body, type ByteRange, type ObjectInfo, type ObjectLock, type StagedObject } from "./backend.js";

export interface RetryOptions {
  /** Attempts per operation, the first one included. */
  attempts?: number;
  /** Wait before the first retry; it doubles with every further retry, up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** No retry starts once this much time has passed since the first attempt. */
  maxElapsedMs?: number;
  /** Source of jitter in [0, 1); tests pass a seeded one. */
  random?: () => number;
  /** Told about every retry, e.g. to show "retrying in 2s" to a user. */
  onRetry?: (event: { operation: string; attempt: number; delayMs: number; error: BackendError }) => void;
}

const DEFAULTS = { attempts: 8, initialDelayMs: 250, maxDelayMs: 15_000, maxElapsedMs: 120_000 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Retries transient backend errors with exponential backoff and jitter, bounded
 * by a number of attempts and a total time. Not-found and permanent errors pass
 * through at once: retrying a missing key or a refused credential only delays the
 * message the user needs.
 */
export class RetryBackend implements Backend {
  readonly location: string;
  private readonly options: Required<Omit<RetryOptions, "onRetry">> & Pick<RetryOptions, "onRetry">;

  /** Offered when the inner backend offers it: each step is retried (see StagedObject: a failed write may be tried again). */
  readonly stage?: (dir: string) => Promise<StagedObject>;

  constructor(readonly inner: Backend, options: RetryOptions = {}) {
    this.location = inner.location;
    this.options = { ...DEFAULTS, random: Math.random, ...options };
    if (inner.stage) this.stage = (dir) => this.stageRetrying(inner.stage!.bind(inner), dir);
  }

  private async stageRetrying(stage: (dir: string) => Promise<StagedObject>, dir: string): Promise<StagedObject> {
    const staged = await this.retry(`writing a new object under ${dir}`, () => stage(dir));
    return {
      write: (part) => this.retry(`writing a new object under ${dir}`, () => staged.write(part)),
      commit: (key) => this.retry(`writing ${key}`, () => staged.commit(key)),
      abort: () => staged.abort(),
    };
  }

  /** Runs `attempt` until it succeeds, fails for good, or the retry budget is spent. */
  private async retry<T>(operation: string, attempt: () => Promise<T>): Promise<T> {
    const started = Date.now();
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        await this.backoff(operation, err, n, started);
      }
    }
  }

  /** Waits before attempt n+1, or throws when `err` is not worth retrying or the budget is spent. */
  private async backoff(operation: string, err: unknown, n: number, started: number): Promise<void> {
    if (!(err instanceof BackendError) || err.kind !== "transient") throw err;
    const { attempts, initialDelayMs, maxDelayMs, maxElapsedMs, random, onRetry } = this.options;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** (n - 1));
    // Half fixed, half random: clients that failed together do not retry together.
    const delayMs = Math.round(ceiling / 2 + (random() * ceiling) / 2);
    const elapsed = Date.now() - started;
    if (n >= attempts || elapsed + delayMs > maxElapsedMs) {
      throw new BackendError(
        "transient",
        `${operation} at ${this.location} failed ${n} ${n === 1 ? "time" : "times"} in ${(elapsed / 1000).toFixed(1)}s, giving up: ${err.message}. ` +
          "The destination may be down or unreachable; check the network, the server and the credentials, then run the command again",
        { cause: err },
      );
    }
    onRetry?.({ operation, attempt: n, delayMs, error: err });
    await sleep(delayMs);
  }

  put(key: string, body: Body): Promise<void> {
    return this.retry(`writing ${key}`, () => this.inner.put(key, body));
  }

  get(key: string, range?: ByteRange): Promise<Buffer> {
    return this.retry(`reading ${key}`, () => this.inner.get(key, range));
  }

  stat(key: string): Promise<ObjectInfo> {
    return this.retry(`stat ${key}`, () => this.inner.stat(key));
  }

  exists(key: string): Promise<boolean> {
    return this.retry(`looking for ${key}`, () => this.inner.exists(key));
  }

  delete(key: string): Promise<void> {
    return this.retry(`deleting ${key}`, () => this.inner.delete(key));
  }

  /** A listing that breaks off is started again; keys already yielded are not yielded twice. */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const yielded = new Set<string>();
    const started = Date.now();
    for (let n = 1; ; n++) {
      try {
        for await (const obj of this.inner.list(prefix)) {
          if (yielded.has(obj.key)) continue;
          yielded.add(obj.key);
          yield obj;
        }
        return;
      } catch (err) {
        await this.backoff(`listing ${prefix}`, err, n, started);
      }
    }
  }

  objectLock(): ObjectLock | undefined {
    return this.inner.objectLock?.();
  }

  useObjectLock(lock: ObjectLock): void {
    this.inner.useObjectLock?.(lock);
  }

  retainedUntil(key: string): Promise<Date | undefined> {
    return this.retry(`reading the retention of ${key}`, async () => this.inner.retainedUntil?.(key));
  }

  ensureContainer(): Promise<void> {
    return this.retry("creating the bucket", async () => this.inner.ensureContainer?.());
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
