import type { Backend } from "../backends/backend.js";
import { packKey } from "./pack.js";

/**
 * Tree packs read whole and kept up to `maxBytes`, oldest dropped first: walking a
 * snapshot reads many small trees that sit together, and one read serves them all.
 * The newest pack stays even when it alone is larger than the bound.
 */
export class TreePackCache {
  private readonly packs = new Map<string, Promise<Buffer>>();
  private bytes = 0;

  constructor(
    private readonly backend: Backend,
    private readonly maxBytes: number,
  ) {}

  /** The whole pack file; a failed read is not kept, so the next call reads again. */
  get(packId: string): Promise<Buffer> {
    let hit = this.packs.get(packId);
    if (hit) return hit;
    hit = this.backend.get(packKey(packId));
    this.packs.set(packId, hit);
    hit.then(
      (buf) => {
        this.bytes += buf.length;
        while (this.bytes > this.maxBytes && this.packs.size > 1) {
          const [oldest, p] = this.packs.entries().next().value!;
          this.packs.delete(oldest);
          void p.then((b) => (this.bytes -= b.length), () => undefined);
        }
      },
      () => this.packs.delete(packId),
    );
    return hit;
  }
}
