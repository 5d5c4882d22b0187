import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { MemBackend } from "../backends/mem.js";
import { BlobType } from "./blob-index.js";
import { Repository } from "./repository.js";
import { nsToSeconds, Restorer } from "./restorer.js";
import { saveTree, type TreeNode } from "./tree.js";

const FAST_KDF = { name: "scrypt" as const, N: 1024, r: 8, p: 1 };

describe("nsToSeconds", () => {
  it("sets a file's mtime in the same microsecond, also for times just below a microsecond boundary", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cairn-mtime-"));
    try {
      const file = path.join(dir, "f");
      writeFileSync(file, "x");
      // Values a nanosecond clock really produces, including .999 ns tails that a plain
      // seconds + ns / 1e9 conversion rounds up into the next microsecond.
      for (const ns of ["1795326211032489999", "1795326211032489000", "1700000000000000999", "1000000000123456789", "1795326211999999999"]) {
        utimesSync(file, nsToSeconds(ns), nsToSeconds(ns));
        const got = statSync(file, { bigint: true }).mtimeNs / 1000n;
        expect(got).toBe(BigInt(ns) / 1000n);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * A restore writes files in batches as it walks the snapshot, but first walks it whole:
 * a snapshot that cannot be restored is refused before anything is written, wherever
 * the bad entry lies, and every batch lands.
 */
describe("Restorer over more files than one batch", () => {
  const FILES = 9000;
  const fileBatch = 4096;

  async function crafted(last: TreeNode[]): Promise<{ repo: Repository; tree: string }> {
    const repo = await Repository.init(new MemBackend(), "pw", { kdf: FAST_KDF, threads: 0 });
    const payload = Buffer.from("the same few bytes in every file\n");
    const blob = repo.blobId(payload);
    await repo.saveBlob(BlobType.data, Buffer.from(payload), blob);
    const file = (name: string): TreeNode => ({ name, type: "file", mode: 0o644, uid: 0, gid: 0, mtime: "1700000000000000000", ctime: "0", inode: "1", device: "1", links: 1, size: payload.length, content: [blob.toString("hex")] });
    const dir = async (name: string, nodes: TreeNode[]): Promise<TreeNode> => ({ ...file(name), type: "dir", mode: 0o755, size: undefined, content: undefined, subtree: (await saveTree(repo, { nodes })).id });
    const many = await dir("a", Array.from({ length: FILES }, (_, i) => file(`f${String(i).padStart(5, "0")}`)));
    const tail = await dir("z", last.map((n) => (n.type === "file" ? { ...file(n.name), ...n } : n)));
    const { id: tree } = await saveTree(repo, { nodes: [many, tail] });
    await repo.flush();
    return { repo, tree };
  }

  it("restores every file of every batch", async () => {
    const target = mkdtempSync(path.join(tmpdir(), "cairn-batches-"));
    try {
      const { repo, tree } = await crafted([{ name: "last.txt", type: "file" } as TreeNode]);
      const result = await new Restorer(repo, { target, verify: true, fileBatch }).restore(tree);
      expect(result.files).toBe(FILES + 1);
      expect(result.verifyErrors).toEqual([]);
      expect(readdirSync(path.join(target, "a"))).toHaveLength(FILES);
      expect(readFileSync(path.join(target, "z", "last.txt"), "utf8")).toBe("the same few bytes in every file\n");
      await repo.close();
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });

  it("refuses an unsafe name after the first batch's files before writing any", async () => {
    const target = path.join(mkdtempSync(path.join(tmpdir(), "cairn-batches-")), "target");
    try {
      const { repo, tree } = await crafted([{ name: "..", type: "file" } as TreeNode]);
      await expect(new Restorer(repo, { target, fileBatch }).restore(tree)).rejects.toThrow(/unsafe name/);
      expect(existsSync(target)).toBe(false);
      await repo.close();
    } finally {
      rmSync(path.dirname(target), { recursive: true, force: true });
    }
  });
});
