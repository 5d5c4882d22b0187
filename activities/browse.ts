import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { diffTrees, type ChangeKind } from "../engine/diff.js";
import { IntegrityError } from "../engine/crypto.js";
import { CairnError } from "../engine/errors.js";
import { directoryTar, fileContent, fileTar } from "../engine/export.js";
import type { SnapshotEntry } from "../engine/snapshot.js";
import { TreeLoader, type TreeNode } from "../engine/tree.js";
import {
  PERMANENT_FAILURES,
  type Answer,
  type DownloadResult,
  type DownloadSnapshotInput,
  type SnapshotDiff,
  type SnapshotDiffChange,
  type SnapshotDiffInput,
  type SnapshotTreeInput,
  type SnapshotTreeListing,
} from "../workflows/messages.js";
import type { ActivityDeps } from "./repository.js";
import { answering, refuse, withSnapshots } from "./requests.js";

/** Headers a worker's upload carries, for the API to answer its caller with. */
export const UPLOAD_HEADERS = { name: "x-cairn-name", kind: "x-cairn-kind", size: "x-cairn-size" } as const;

const CHANGE: Record<ChangeKind, SnapshotDiffChange["change"]> = { "+": "added", "-": "removed", M: "changed", U: "metadata" };
const HEARTBEAT_MS = 5000;

/**
 * What the dashboard and API read of a snapshot's content, on a worker (the API
 * never opens a repository): one directory's entries, the changes between two
 * snapshots, and a file or folder streamed to the API, which hands it to its caller.
 */
export function browseActivities(deps: ActivityDeps) {
  return {
    /** One directory of a snapshot, in name order, a page of it at most. */
    async snapshotTree(input: SnapshotTreeInput): Promise<Answer<SnapshotTreeListing>> {
      return answering(input.repository.url, () =>
        withSnapshots(input.repository, deps, async (all, repo) => {
          const snap = pick(all, input.snapshotRef, input.repository.id);
          if ("ok" in snap) return snap;
          const found = await nodeAt(new TreeLoader(repo), snap.tree, input.path);
          if (typeof found === "string") return refuse("pathNotFound", `snapshot ${snap.id.slice(0, 8)}: ${found}`, "path");
          if (found.type !== "dir") return refuse("wrongFormat", `${input.path} is a ${found.type} in snapshot ${snap.id.slice(0, 8)}, not a directory; download it instead (GET /v1/snapshots/{id}/download?path=)`, "path");
          const nodes = (await new TreeLoader(repo).load(found.subtree!)).nodes;
          const page = nodes.slice(input.offset, input.offset + input.limit);
          return {
            ok: true as const,
            value: {
              snapshotId: snap.id,
              path: normalized(input.path),
              total: nodes.length,
              truncated: input.offset + page.length < nodes.length,
              entries: page.map((n) => ({
                name: n.name,
                type: n.type,
                ...(n.size !== undefined && n.type === "file" ? { size: n.size } : {}),
                mtime: new Date(Number(BigInt(n.mtime) / 1_000_000n)).toISOString(),
                mode: n.mode & 0o7777,
                ...(n.linktarget !== undefined ? { linktarget: n.linktarget } : {}),
              })),
            },
          };
        }),
      );
    },

    /** The changes from one snapshot to another (the engine's diff, as `cairn diff` shows it), the first `limit` of them, and totals of all. */
    async snapshotDiff(input: SnapshotDiffInput): Promise<Answer<SnapshotDiff>> {
      return answering(input.repository.url, () =>
        withSnapshots(input.repository, deps, async (all, repo) => {
          const from = pick(all, input.from, input.repository.id, "against");
          if ("ok" in from) return from;
          const to = pick(all, input.to, input.repository.id);
          if ("ok" in to) return to;
          const changes = await diffTrees(new TreeLoader(repo), from.tree, to.tree);
          const totals = { added: 0, removed: 0, changed: 0, metadata: 0 };
          for (const c of changes) totals[CHANGE[c.change]]++;
          return {
            ok: true as const,
            value: {
              from: from.id,
              to: to.id,
              totals,
              truncated: changes.length > input.limit,
              changes: changes.slice(0, input.limit).map((c) => ({ ...c, change: CHANGE[c.change] })),
            },
          };
        }),
      );
    },

    /**
     * Streams a file (raw, or as a tar) or a directory (tar) of a snapshot to the
     * API's one-time upload address, every blob verified as a restore does. What the
     * caller can fix (no such snapshot or path, a directory asked for raw) is
     * answered before anything is sent; a damaged blob met on the way aborts the
     * upload, so the API's caller sees the download fail, never wrong bytes.
     */
    async downloadSnapshot(input: DownloadSnapshotInput): Promise<Answer<DownloadResult>> {
      return answering(input.repository.url, () =>
        withSnapshots(input.repository, deps, async (all, repo) => {
          const snap = pick(all, input.snapshotRef, input.repository.id);
          if ("ok" in snap) return snap;
          const loader = new TreeLoader(repo);
          const found = await nodeAt(loader, snap.tree, input.path);
          if (typeof found === "string") return refuse("pathNotFound", `snapshot ${snap.id.slice(0, 8)}: ${found}`, "path");
          const isFile = found.type === "file";
          if (!isFile && found.type !== "dir") return refuse("wrongFormat", `${input.path} is a ${found.type}: only files and directories can be downloaded`, "path");
          const format = input.format ?? (isFile ? "raw" : "tar");
          if (format === "raw" && !isFile) return refuse("wrongFormat", `${input.path} is a directory; download it as a tar archive (format=tar, the default for directories)`, "format");
          const base = "name" in found ? found.name : `snapshot-${snap.id.slice(0, 8)}`;
          const body = isFile ? (format === "raw" ? fileContent(repo, found, base) : fileTar(repo, found, base)) : directoryTar(repo, loader, found, "name" in found ? base : "");
          const size = isFile ? (found.size ?? 0) : await filesBytes(loader, found.subtree!);
          const bytes = await upload(input.upload.url, body, { [UPLOAD_HEADERS.name]: encodeURIComponent(format === "tar" ? `${base}.tar` : base), [UPLOAD_HEADERS.kind]: format, [UPLOAD_HEADERS.size]: String(size) });
          return { ok: true as const, value: { bytes } };
        }),
      );
    },
  };
}

/** The snapshot a reference names, or the refusal that says why none. */
function pick(all: SnapshotEntry[], ref: string, repositoryId: string, field = "id"): SnapshotEntry | Answer<never> {
  const matching = all.filter((s) => s.id.startsWith(ref));
  if (matching.length === 1) return matching[0];
  if (matching.length === 0) return refuse("snapshotNotFound", `repository ${repositoryId} has no snapshot ${ref}; list them with GET /v1/snapshots?repositoryId=${repositoryId}`, field);
  return refuse("snapshotAmbiguous", `${matching.length} snapshots start with ${ref}; give more characters`, field);
}

function normalized(p: string): string {
  return `/${p.split("/").filter(Boolean).join("/")}`;
}

/** The node at `p` in the tree (the root as a directory without a name), or a sentence saying what is missing. */
async function nodeAt(loader: TreeLoader, treeId: string, p: string): Promise<TreeNode | { type: "dir"; subtree: string } | string> {
  const parts = p.split("/").filter(Boolean);
  if (parts.some((part) => part === "." || part === "..")) return `${p} has . or .. in it; give the path as the snapshot lists it`;
  let node: TreeNode | { type: "dir"; subtree: string } = { type: "dir", subtree: treeId };
  for (const [i, part] of parts.entries()) {
    const at = `/${parts.slice(0, i + 1).join("/")}`;
    if (node.type !== "dir" || !node.subtree) return `${at.slice(0, at.lastIndexOf("/")) || "/"} is a ${node.type}, not a directory`;
    const child: TreeNode | undefined = (await loader.load(node.subtree)).nodes.find((n) => n.name === part);
    if (!child) return `${at} is not in the snapshot; list its directories with GET /v1/snapshots/{id}/tree`;
    node = child;
  }
  return node;
}

/** Bytes of the files under a directory, for the download's volume accounting. */
async function filesBytes(loader: TreeLoader, treeId: string): Promise<number> {
  let total = 0;
  for (const n of (await loader.load(treeId)).nodes) {
    if (n.type === "file") total += n.size ?? 0;
    else if (n.type === "dir" && n.subtree) total += await filesBytes(loader, n.subtree);
  }
  return total;
}

/**
 * PUTs the stream to the API. The body is pulled as the connection drains, so
 * the worker reads the repository no faster than the API's caller takes the
 * bytes. Heartbeats carry the bytes sent (and deliver a cancellation).
 */
async function upload(url: string, body: AsyncGenerator<Buffer>, headers: Record<string, string>): Promise<number> {
  const ctx = activityContext();
  let sent = 0;
  let beat = Date.now();
  async function* counted() {
    for await (const chunk of body) {
      sent += chunk.length;
      if (ctx && Date.now() - beat > HEARTBEAT_MS) {
        ctx.heartbeat({ bytes: sent });
        beat = Date.now();
      }
      yield chunk;
    }
  }
  const res = await fetch(url, {
    method: "PUT",
    body: pulledFrom(counted()),
    duplex: "half",
    headers: { "content-type": "application/octet-stream", ...headers },
    ...(ctx ? { signal: ctx.cancellationSignal } : {}),
  } as RequestInit).catch((err: unknown) => {
    // A damaged blob met while sending: its own error says which pack, not fetch's "fetch failed".
    const cause = err instanceof TypeError ? err.cause : undefined;
    throw cause instanceof IntegrityError ? new CairnError(`${cause.message}; run "cairn check --read-data" on the repository`) : cause instanceof CairnError ? cause : err;
  });
  await res.body?.cancel();
  if (res.status === 410) throw ApplicationFailure.create({ message: "the API no longer waits for this download (its caller went away or it timed out)", type: PERMANENT_FAILURES.invalidRequest, nonRetryable: true });
  if (!res.ok) throw ApplicationFailure.create({ message: `the API answered ${res.status} to the download's upload`, nonRetryable: true });
  return sent;
}

/** A web stream that asks the generator for the next chunk only when the connection takes one (Readable.from would read 16 ahead). */
function pulledFrom(chunks: AsyncGenerator<Buffer>): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await chunks.next();
        if (next.done) controller.close();
        else controller.enqueue(new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.byteLength));
      },
      async cancel() {
        await chunks.return(undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}
