import { BlobType } from "./blob-index.js";
import { IntegrityError } from "./crypto.js";
import { CairnError } from "./errors.js";
import type { PageMap } from "./pagemap.js";
import type { Repository } from "./repository.js";

export type NodeType = "file" | "dir" | "symlink" | "fifo" | "socket" | "chardev" | "blockdev";

/** One entry of a directory in a snapshot. Times are nanoseconds since the epoch, as strings. */
export interface TreeNode {
  name: string;
  type: NodeType;
  /** Permission bits including setuid, setgid and sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  mtime: string;
  ctime: string;
  inode: string;
  device: string;
  links: number;
  size?: number;
  /** Data blob ids of a file, in order (a page-mapped file: each blob its page map uses, once). */
  content?: string[];
  /** A page-mapped file (format version 2): which page of which blob each page of the file is. */
  pages?: PageMap;
  /** Tree blob id of a directory. */
  subtree?: string;
  linktarget?: string;
  rdev?: number;
}

export interface Tree {
  nodes: TreeNode[];
}

export function encodeTree(tree: Tree): Buffer {
  tree.nodes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return Buffer.from(JSON.stringify(tree));
}

/**
 * A name is safe when it is a single path component: not empty, not `.` or `..`,
 * without `/` or NUL. Restore refuses anything else, so a crafted snapshot cannot
 * write outside the target.
 */
export function isSafeName(name: unknown): name is string {
  return typeof name === "string" && name !== "" && name !== "." && name !== ".." && !name.includes("/") && !name.includes("\0");
}

export function decodeTree(buf: Buffer, id: string): Tree {
  let tree: Tree;
  try {
    tree = JSON.parse(buf.toString("utf8"));
  } catch {
    throw new IntegrityError(`tree ${id.slice(0, 16)} is not valid JSON`);
  }
  if (!tree || !Array.isArray(tree.nodes)) throw new IntegrityError(`tree ${id.slice(0, 16)} has no node list`);
  return tree;
}

/** Loads trees by id, keeping recent ones (directories are read many times during a backup or restore). */
export class TreeLoader {
  private readonly cache = new Map<string, Tree>();

  constructor(private readonly repo: Repository, private readonly limit = 4096) {}

  async load(id: string): Promise<Tree> {
    const hit = this.cache.get(id);
    if (hit) return hit;
    const tree = decodeTree(await this.repo.loadBlob(Buffer.from(id, "hex")), id);
    if (this.cache.size >= this.limit) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(id, tree);
    return tree;
  }
}

/** Saves a tree blob; returns its id and whether it was new to the repository. */
export async function saveTree(repo: Repository, tree: Tree): Promise<{ id: string; added: boolean }> {
  const buf = encodeTree(tree);
  const id = repo.blobId(buf);
  const added = await repo.saveBlob(BlobType.tree, buf, id);
  return { id: id.toString("hex"), added };
}

/**
 * The tree of the directory at `dirPath` ("/srv/www", slash-separated) inside the
 * tree `treeId`; the root tree for "/" or "". Throws a CairnError naming the part
 * that is missing or not a directory.
 */
export async function subtreeAt(loader: TreeLoader, treeId: string, dirPath: string): Promise<string> {
  const parts = dirPath.split("/").filter(Boolean);
  let id = treeId;
  for (const [i, part] of parts.entries()) {
    const node = (await loader.load(id)).nodes.find((n) => n.name === part);
    const at = `/${parts.slice(0, i + 1).join("/")}`;
    if (!node) throw new CairnError(`${at} is not in the snapshot`);
    if (node.type !== "dir" || !node.subtree) throw new CairnError(`${at} is a ${node.type} in the snapshot, not a directory`);
    id = node.subtree;
  }
  return id;
}

/** Walks a snapshot tree depth-first, yielding every node with its slash-separated path; enters a directory only when `descend` says so. */
export async function* walkTree(loader: TreeLoader, treeId: string, prefix = "", descend: (path: string) => boolean = () => true): AsyncGenerator<{ path: string; node: TreeNode }> {
  const tree = await loader.load(treeId);
  for (const node of tree.nodes) {
    const p = `${prefix}/${node.name}`;
    yield { path: p, node };
    if (node.type === "dir" && node.subtree && descend(p)) yield* walkTree(loader, node.subtree, p, descend);
  }
}
