import { IntegrityError } from "./crypto.js";
import { filePieces } from "./pagemap.js";
import type { Repository } from "./repository.js";
import { padding, TAR_END, tarHeader, type TarEntry } from "./tar.js";
import { walkTree, type TreeLoader, type TreeNode } from "./tree.js";

/** Data blobs read ahead of the one being sent: the next ones are fetched while this one goes out. */
const READ_AHEAD = 3;

/**
 * The content of a file in a snapshot, blob by blob, each one decrypted and
 * checked against its id as a restore does: a damaged blob throws an
 * IntegrityError, so a reader never gets wrong bytes, and a file whose blobs do
 * not add up to its recorded size throws too. Pulled: nothing is read ahead of
 * the consumer but READ_AHEAD blobs.
 */
export async function* fileContent(repo: Repository, node: TreeNode, where: string): AsyncGenerator<Buffer> {
  if (node.pages) {
    yield* pageMappedContent(repo, node, where);
    return;
  }
  const ids = node.content ?? [];
  const ahead: Promise<Buffer>[] = [];
  let next = 0;
  const fill = () => {
    while (next < ids.length && ahead.length < READ_AHEAD) {
      const loading = repo.loadBlob(Buffer.from(ids[next++], "hex"));
      // Awaited in order below; one that fails after an earlier failure must not go unhandled.
      loading.catch(() => undefined);
      ahead.push(loading);
    }
  };
  let size = 0;
  fill();
  while (ahead.length) {
    const blob = await ahead.shift()!.catch((err: unknown) => {
      throw err instanceof IntegrityError ? new IntegrityError(`${where}: ${err.message}`) : err;
    });
    fill();
    size += blob.length;
    yield blob;
  }
  if (size !== (node.size ?? 0)) throw new IntegrityError(`${where}: its blobs hold ${size} bytes, the snapshot records ${node.size ?? 0}; run "cairn check" on the repository`);
}

const TAR_TYPES = new Set<TreeNode["type"]>(["file", "dir", "symlink"]);

/** Blobs of a page-mapped file kept decrypted while its pieces are sent (runs alternate between a few blobs). */
const PAGE_BLOBS_KEPT = 8;

/** The content of a page-mapped file, piece by piece, each blob decrypted and verified once while it is in use. */
async function* pageMappedContent(repo: Repository, node: TreeNode, where: string): AsyncGenerator<Buffer> {
  const named = (err: unknown) => (err instanceof IntegrityError ? new IntegrityError(`${where}: ${err.message}`) : err);
  let pieces;
  try {
    // A missing blob fails below, where loading it says it is not in the index.
    pieces = filePieces(node, (id) => repo.lookup(Buffer.from(id, "hex"))?.rawLength ?? Infinity);
  } catch (err) {
    throw named(err);
  }
  const kept = new Map<string, Buffer>();
  for (const p of pieces) {
    let blob = kept.get(p.id);
    if (!blob) {
      blob = await repo.loadBlob(Buffer.from(p.id, "hex")).catch((err: unknown) => {
        throw named(err);
      });
      if (kept.size >= PAGE_BLOBS_KEPT) kept.delete(kept.keys().next().value!);
      kept.set(p.id, blob);
    }
    if (p.from + p.length > blob.length) throw new IntegrityError(`${where}: blob ${p.id.slice(0, 16)} holds ${blob.length} bytes, its page map needs ${p.from + p.length}; run "cairn check" on the repository`);
    yield blob.subarray(p.from, p.from + p.length);
  }
}

/** Seconds since the epoch of a tree node's nanosecond time. */
function seconds(ns: string): number {
  return Number(BigInt(ns) / 1_000_000_000n);
}

function entryOf(path: string, node: TreeNode): TarEntry {
  return {
    path,
    type: node.type as TarEntry["type"],
    mode: node.mode & 0o7777,
    uid: node.uid,
    gid: node.gid,
    mtime: seconds(node.mtime),
    size: node.type === "file" ? (node.size ?? 0) : 0,
    ...(node.type === "symlink" ? { linkname: node.linktarget ?? "" } : {}),
  };
}

/**
 * A directory of a snapshot as a tar archive, its entries named under `name`
 * (the directory's own name; "" puts them at the archive's root). Files,
 * directories and symbolic links are archived; devices, FIFOs and sockets are
 * left out (a download cannot recreate them; a restore does). Every file's
 * content is verified as fileContent does.
 */
export async function* directoryTar(repo: Repository, loader: TreeLoader, dir: TreeNode | { subtree: string; type: "dir" }, name: string): AsyncGenerator<Buffer> {
  if ("name" in dir && name) yield tarHeader(entryOf(name, dir));
  for await (const { path, node } of walkTree(loader, dir.subtree!, name)) {
    if (!TAR_TYPES.has(node.type)) continue;
    const relative = path.replace(/^\//, "");
    yield tarHeader(entryOf(relative, node));
    if (node.type !== "file") continue;
    yield* fileContent(repo, node, relative);
    const pad = padding(node.size ?? 0);
    if (pad.length) yield pad;
  }
  yield TAR_END;
}

/** One file of a snapshot as a tar archive holding it alone. */
export async function* fileTar(repo: Repository, node: TreeNode, name: string): AsyncGenerator<Buffer> {
  yield tarHeader(entryOf(name, node));
  yield* fileContent(repo, node, name);
  const pad = padding(node.size ?? 0);
  if (pad.length) yield pad;
  yield TAR_END;
}
