import { walkTree, type TreeLoader, type TreeNode } from "./tree.js";

/** "+" added, "-" removed, "M" content or type changed, "U" only metadata changed. */
export type ChangeKind = "+" | "-" | "M" | "U";

export interface Change {
  change: ChangeKind;
  path: string;
  type: string;
  /** Size of the file in the newer snapshot (in the older one when removed). */
  size?: number;
  /** Size of a changed file in the older snapshot. */
  sizeBefore?: number;
}

export interface DiffTotals {
  added: number;
  removed: number;
  modified: number;
  metadata: number;
}

const byName = (a: TreeNode, b: TreeNode) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Compares two snapshot trees. Directories whose subtree ids are equal hold the
 * same content and metadata, so they are skipped without being read.
 */
export async function diffTrees(loader: TreeLoader, from: string, to: string, prefix = "", out: Change[] = []): Promise<Change[]> {
  if (from === to) return out;
  const a = [...(await loader.load(from)).nodes].sort(byName);
  const b = [...(await loader.load(to)).nodes].sort(byName);
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const order = i >= a.length ? 1 : j >= b.length ? -1 : byName(a[i], b[j]);
    if (order < 0) await whole(loader, "-", a[i++], prefix, out);
    else if (order > 0) await whole(loader, "+", b[j++], prefix, out);
    else await compare(loader, a[i++], b[j++], prefix, out);
  }
  return out;
}

async function compare(loader: TreeLoader, a: TreeNode, b: TreeNode, prefix: string, out: Change[]): Promise<void> {
  const path = `${prefix}/${a.name}`;
  if (a.type !== b.type) {
    // A file that became a directory (or the reverse): what was under the old entry is gone, what is under the new one is new.
    out.push({ change: "M", path, type: b.type, ...sizes(b, a) });
    await descendants(loader, "-", a, path, out);
    await descendants(loader, "+", b, path, out);
    return;
  }
  if (!sameContent(a, b)) out.push({ change: "M", path, type: a.type, ...sizes(b, a) });
  else if (!sameMetadata(a, b)) out.push({ change: "U", path, type: a.type, ...sizes(b) });
  if (a.type === "dir" && a.subtree && b.subtree) await diffTrees(loader, a.subtree, b.subtree, path, out);
}

/** Records an entry, and everything under it when it is a directory, as added or removed. */
async function whole(loader: TreeLoader, change: "+" | "-", node: TreeNode, prefix: string, out: Change[]): Promise<void> {
  const path = `${prefix}/${node.name}`;
  out.push({ change, path, type: node.type, ...sizes(node) });
  await descendants(loader, change, node, path, out);
}

async function descendants(loader: TreeLoader, change: "+" | "-", node: TreeNode, path: string, out: Change[]): Promise<void> {
  if (node.type !== "dir" || !node.subtree) return;
  for await (const e of walkTree(loader, node.subtree, path)) out.push({ change, path: e.path, type: e.node.type, ...sizes(e.node) });
}

/** The sizes a change shows: files only (a directory's size means nothing here). */
function sizes(node: TreeNode, before?: TreeNode): { size?: number; sizeBefore?: number } {
  return {
    ...(node.type === "file" && node.size !== undefined ? { size: node.size } : {}),
    ...(before?.type === "file" && before.size !== undefined ? { sizeBefore: before.size } : {}),
  };
}

/** Content of a file, target of a link, device number; a directory's content is compared entry by entry instead. */
function sameContent(a: TreeNode, b: TreeNode): boolean {
  if (a.type === "dir") return true;
  return a.size === b.size && (a.content ?? []).join() === (b.content ?? []).join() && JSON.stringify(a.pages) === JSON.stringify(b.pages) && a.linktarget === b.linktarget && a.rdev === b.rdev;
}

/** What a restore sets: mode, owner, mtime. ctime, inode and link count change without the user changing anything. */
function sameMetadata(a: TreeNode, b: TreeNode): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtime === b.mtime;
}

export function totals(changes: Change[]): DiffTotals {
  const t: DiffTotals = { added: 0, removed: 0, modified: 0, metadata: 0 };
  for (const c of changes) {
    if (c.change === "+") t.added++;
    else if (c.change === "-") t.removed++;
    else if (c.change === "M") t.modified++;
    else t.metadata++;
  }
  return t;
}
