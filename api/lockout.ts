import type { Context } from "hono";

export interface LockoutOptions {
  /** Failed authentications that lock a key out (5). */
  maxFailures: number;
  /** The window they are counted in, and how long the lock lasts (ten minutes). */
  windowMs: number;
}

export const DEFAULT_LOCKOUT: LockoutOptions = { maxFailures: 5, windowMs: 10 * 60_000 };

/** Keys followed at once; past it the oldest are forgotten, so a flood of addresses cannot grow memory without bound. */
const MAX_KEYS = 10_000;

/**
 * Failed authentications per key (a source address, a presented token), in this
 * API process's memory: `maxFailures` within `windowMs` lock the key for
 * `windowMs` and call `onLockout` once (which raises a security event).
 */
export class FailedLogins {
  private readonly failures = new Map<string, number[]>();
  private readonly locks = new Map<string, number>();

  constructor(
    private readonly options: LockoutOptions,
    private readonly onLockout: (key: string, failures: number, c: Context) => Promise<void>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until `key` may try again, or undefined when it is not locked. */
  retryAfter(key: string): number | undefined {
    const until = this.locks.get(key);
    if (until === undefined) return undefined;
    const left = until - this.now();
    if (left <= 0) {
      this.locks.delete(key);
      return undefined;
    }
    return Math.ceil(left / 1000);
  }

  async fail(key: string, c: Context): Promise<void> {
    const now = this.now();
    const recent = (this.failures.get(key) ?? []).filter((t) => now - t < this.options.windowMs);
    recent.push(now);
    this.failures.delete(key); // re-insert: the Map's order is then least recently failed first
    this.failures.set(key, recent);
    if (this.failures.size > MAX_KEYS) this.failures.delete(this.failures.keys().next().value!);
    if (recent.length < this.options.maxFailures || this.locks.has(key)) return;
    this.locks.set(key, now + this.options.windowMs);
    if (this.locks.size > MAX_KEYS) this.locks.delete(this.locks.keys().next().value!);
    this.failures.delete(key);
    await this.onLockout(key, recent.length, c);
  }
}
