import { CairnError } from "./errors.js";

export interface MapLimitOptions {
  /** Once aborted, no further item starts and the call rejects (see `cancelled`). */
  signal?: AbortSignal;
  /** The message of the CairnError the call rejects with once `signal` aborts (what was left behind); without it, the signal's reason. */
  cancelled?: () => string;
}

/**
 * Runs `fn` over `items` with at most `limit` running at once: the one
 * bounded-concurrency helper of the engine and the backends. After the first
 * failure no new item is started and the call rejects at once with that failure
 * (the ones running finish on their own), so a failed job does not go on working
 * behind its caller's back. An aborted `signal` is checked before each item starts,
 * so cancellation takes effect between items, where the caller's state holds.
 */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<unknown>, options: MapLimitOptions = {}): Promise<void> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`a concurrency limit must be a whole number of at least 1, got ${limit}`);
  const { signal, cancelled } = options;
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      try {
        if (signal?.aborted) throw cancelled ? new CairnError(cancelled()) : signal.reason;
        const i = next++;
        await fn(items[i], i);
      } catch (err) {
        next = items.length;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}
