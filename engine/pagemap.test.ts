import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MemBackend } from "../backends/mem.js";
import { tempDir } from "../test/helpers.js";
import { Archiver, type SourceEntry } from "./archiver.js";
import { checkRepository } from "./checker.js";
import { copySnapshots } from "./copy.js";
import { IntegrityError } from "./crypto.js";
import { fileContent } from "./export.js";
import { Repository } from "./repository.js";
import { Restorer } from "./restorer.js";
import { saveTree, TreeLoader, type TreeNode } from "./tree.js";

const PASSWORD = "pw";
const KDF = { name: "scrypt", N: 1024, r: 8, p: 1 } as const;
const PAGE = 8192;
/** 100 pages and a short one: more than three super-blocks of 32 pages. */
const PAGES = 100;

async function* once(data: Buffer): AsyncGenerator<Buffer> {
  // In uneven pieces, as a tar stream gives them.
  for (let at = 0; at < data.length; at += 5000) yield data.subarray(at, at + 5000);
}

/** Backs `data` up as db/rel, page-mapped against `previous`; returns the snapshot's node of it. */
async function backupRelation(repo: Repository, data: Buffer, previous?: TreeNode): Promise<{ node: TreeNode; tree: string; added: number; id: string }> {
  const entry: SourceEntry = { path: "db/rel", type: "file", mode: 0o600, mtime: 1_700_000_000_000, content: once(data), blockSize: PAGE, pageMapped: { previous } };
  const { id, snapshot } = await new Archiver(repo, { host: "h" }).backupEntries((async function* () { yield entry; })(), ["/db"]);
  const loader = new TreeLoader(repo);
  const db = (await loader.load(snapshot.tree)).nodes.find((n) => n.name === "db")!;
  const node = (await loader.load(db.subtree!)).nodes.find((n) => n.name === "rel")!;
  return { node, tree: snapshot.tree, added: snapshot.summary!.dataAdded, id };
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

/**
 * Files of fixed-size pages (PostgreSQL relation files) are stored in super-blocks
 * of pages; a later backup stores only the pages that changed, and restore, dump,
 * delta restore and copy give back exactly the backed-up bytes.
 */
describe("page-mapped files", () => {
  const tmp = tempDir("cairn-pagemap-");
  afterAll(() => tmp.cleanup());
  const original = randomBytes(PAGES * PAGE + 1000);

  it("a second backup stores only the changed pages, and each backup restores its own bytes", async () => {
    // Codec threads: restore writes the pieces of blobs there.
    const repo = await Repository.init(new MemBackend(), PASSWORD, { kdf: KDF, threads: 2 });
    try {
      const first = await backupRelation(repo, original);
      expect(first.node.pages?.size).toBe(PAGE);
      expect(first.node.content).toHaveLength(4);
      expect(first.added).toBe(original.length);

      const changed = Buffer.from(original);
      for (const p of [3, 40, 41, 77]) randomBytes(PAGE).copy(changed, p * PAGE);
      const second = await backupRelation(repo, changed, first.node);
      expect(second.added).toBe(4 * PAGE);
      expect(second.node.content!.length).toBe(5); // the four super-blocks and one of the changed pages

      // A super-block with most of its pages changed is stored whole again.
      const rewritten = Buffer.from(changed);
      randomBytes(20 * PAGE).copy(rewritten, 64 * PAGE);
      const third = await backupRelation(repo, rewritten, second.node);
      expect(third.added).toBe(32 * PAGE);

      for (const [b, want] of [[first, original], [second, changed], [third, rewritten]] as const) {
        expect((await collect(fileContent(repo, b.node, "rel"))).equals(want)).toBe(true);
        const dir = path.join(tmp.dir, `restored-${b.id.slice(0, 8)}`);
        await new Restorer(repo, { target: dir, verify: true }).restore(b.tree).then((r) => expect(r.verifyErrors).toEqual([]));
        expect(readFileSync(path.join(dir, "db", "rel")).equals(want)).toBe(true);
      }
      expect((await checkRepository(repo, { readData: true })).errors).toEqual([]);

      // A delta restore over the first backup's file writes only the pieces that differ.
      const dir = path.join(tmp.dir, "delta");
      await new Restorer(repo, { target: dir }).restore(first.tree);
      const delta = await new Restorer(repo, { target: dir, overwrite: "if-changed" }).restore(second.tree);
      expect(readFileSync(path.join(dir, "db", "rel")).equals(changed)).toBe(true);
      expect(delta.bytesWritten).toBeLessThan(original.length / 4);
    } finally {
      await repo.close();
    }
  });

  it("a page changed in the target is found and rewritten by a delta restore", async () => {
    const repo = await Repository.init(new MemBackend(), PASSWORD, { kdf: KDF, threads: 0 });
    try {
      const { tree } = await backupRelation(repo, original);
      const dir = path.join(tmp.dir, "tampered");
      await new Restorer(repo, { target: dir }).restore(tree);
      const file = path.join(dir, "db", "rel");
      const bytes = readFileSync(file);
      bytes[50 * PAGE + 17] ^= 1;
      writeFileSync(file, bytes);
      const r = await new Restorer(repo, { target: dir, overwrite: "if-changed" }).restore(tree);
      expect(r.bytesWritten).toBe(32 * PAGE);
      expect(readFileSync(file).equals(original)).toBe(true);
    } finally {
      await repo.close();
    }
  });

  it("a copy to another repository keeps the page map pointing at the right blobs", async () => {
    const from = await Repository.init(new MemBackend(), PASSWORD, { kdf: KDF, threads: 0 });
    const to = await Repository.init(new MemBackend(), PASSWORD, { kdf: KDF, threads: 0 });
    try {
      const first = await backupRelation(from, original);
      const changed = Buffer.from(original);
      randomBytes(PAGE).copy(changed, 10 * PAGE);
      const second = await backupRelation(from, changed, first.node);
      await copySnapshots(from, to, { snapshotIds: [second.id] });
      const dir = path.join(tmp.dir, "copied");
      const [snap] = await (await import("./snapshot.js")).loadSnapshots(to);
      await new Restorer(to, { target: dir, verify: true }).restore(snap.tree).then((r) => expect(r.verifyErrors).toEqual([]));
      expect(readFileSync(path.join(dir, "db", "rel")).equals(changed)).toBe(true);
    } finally {
      await from.close();
      await to.close();
    }
  });

  it("check reports a page map that reads past its blob", async () => {
    const repo = await Repository.init(new MemBackend(), PASSWORD, { kdf: KDF, threads: 0 });
    try {
      const { node } = await backupRelation(repo, original);
      // Pages 0-31 of the first blob, then "pages 16-47" of the second: past its 32 pages.
      const bad: TreeNode = { ...node, pages: { ...node.pages!, runs: [32, 0, 0, 32, 1, 16, 37, 2, 0] } };
      const dir = await saveTree(repo, { nodes: [bad] });
      const root = await saveTree(repo, { nodes: [{ ...bad, name: "db", type: "dir", subtree: dir.id, size: undefined, content: undefined, pages: undefined }] });
      await repo.flush();
      await repo.saveJSON("snapshots", { time: new Date().toISOString(), host: "h", username: "u", paths: ["/db"], tags: [], tree: root.id, program: "test" });
      const { errors } = await checkRepository(repo, {});
      expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/the page map of \/db\/rel .* reads past the end of blob/)]);
    } finally {
      await repo.close();
    }
  });

  it("a restore of a page-mapped file whose blob is missing, or too short for its map, says so before writing", async () => {
    const repo = await Repository.init(new MemBackend(), PASSWORD, { kdf: KDF, threads: 0 });
    try {
      const { node } = await backupRelation(repo, original);
      const snapshotOf = async (rel: TreeNode) => {
        const dir = await saveTree(repo, { nodes: [rel] });
        const root = await saveTree(repo, { nodes: [{ ...rel, name: "db", type: "dir", subtree: dir.id, size: undefined, content: undefined, pages: undefined }] });
        await repo.flush();
        return root.id;
      };
      // The second super-block's blob is not in the index.
      const missing = node.content![1];
      const gone = randomBytes(32).toString("hex");
      const lost = await snapshotOf({ ...node, content: node.content!.map((id) => (id === missing ? gone : id)) });
      await expect(new Restorer(repo, { target: path.join(tmp.dir, "lost") }).restore(lost)).rejects.toThrow(
        `blob ${gone.slice(0, 16)} of /db/rel is missing from the repository; run "cairn check"`,
      );
      // Pages 16-47 of the second blob, which holds 32 pages.
      const short = await snapshotOf({ ...node, pages: { ...node.pages!, runs: [32, 0, 0, 32, 1, 16, 37, 2, 0] } });
      const err = await new Restorer(repo, { target: path.join(tmp.dir, "short") }).restore(short).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as Error).message).toMatch(`the page map of rel reads past the end of blob ${node.content![1].slice(0, 16)}`);
    } finally {
      await repo.close();
    }
  });

  it("a version 1 repository keeps one blob per page, which any cairn reads", async () => {
    const repo = await Repository.init(new MemBackend(), PASSWORD, { kdf: KDF, threads: 0, version: 1 });
    try {
      const { node, tree } = await backupRelation(repo, original);
      expect(node.pages).toBeUndefined();
      expect(node.content).toHaveLength(PAGES + 1);
      const dir = path.join(tmp.dir, "v1");
      await new Restorer(repo, { target: dir }).restore(tree);
      expect(readFileSync(path.join(dir, "db", "rel")).equals(original)).toBe(true);
    } finally {
      await repo.close();
    }
  });
});
