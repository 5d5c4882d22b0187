/**
 * Runs `fn` over `items` with at most `limit` running at once. After the first failure
 * no new item is started (the ones running finish on their own), so a failed job does
 * not go on working behind its caller's back.
 */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (err) {
        next = items.length;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}
