import { createRoute, z } from "@hono/zod-openapi";
import type { AppDeps } from "../app.js";
import { UPLOAD_HEADERS } from "../../activities/browse.js";
import { auditLate } from "../audit.js";
import { DownloadChannels, UPLOAD_PATH, type Upload } from "../downloads.js";
import { ApiError } from "../errors.js";
import { access, ACTIVITY_FIELD, AUDIT_FIELD, json, problems, router } from "../openapi.js";
import { decodeCursor, encodeCursor, nextCursor, PageQuery } from "../pagination.js";
import { repositoryTarget } from "../schedules.js";
import { ANSWER_WITHIN_MS, answered } from "../worker-requests.js";
import { findRepository } from "./repositories.js";

const inRepository = { resource: "repository", in: "query", field: "repositoryId" } as const;
const RepositoryId = z.string().min(1, "give the repository id from GET /v1/repositories").max(100);
const Snapshot = z
  .object({
    id: z.string(),
    time: z.string(),
    host: z.string(),
    paths: z.array(z.string()),
    tags: z.array(z.string()),
    parent: z.string().optional(),
    summary: z.record(z.string(), z.number()).optional().openapi({ description: "Counts and sizes of the backup that made the snapshot." }),
  })
  .openapi("Snapshot");

const list = createRoute({
  method: "get",
  path: "/snapshots",
  operationId: "listSnapshots",
  summary: "List a repository's snapshots, oldest first (a worker reads them from the repository itself)",
  tags: ["snapshots"],
  ...access("snapshots:read", inRepository),
  request: { query: z.object({ repositoryId: RepositoryId, ...PageQuery.shape }) },
  responses: { 200: json(z.object({ snapshots: z.array(Snapshot), nextCursor }), "A page of the snapshots."), ...problems(400, 403, 404, 422, 503) },
});

const SnapshotPath = z
  .string()
  .max(4096)
  .regex(/^\//, "give an absolute path inside the snapshot, such as / or /srv/www")
  .default("/")
  .openapi({ description: "A path inside the snapshot, slash-separated; / is its root." });
const SnapshotId = () => z.string().max(64).regex(/^[0-9a-f]{4,64}$/, "give a snapshot id (or at least 4 of its first hex characters) from GET /v1/snapshots");
const SnapshotIdParam = z.object({ id: SnapshotId().openapi({ param: { name: "id", in: "path" }, example: "3f9a1c2b" }) });

const TreeEntry = z
  .object({
    name: z.string(),
    type: z.string().openapi({ description: "file, dir, symlink, fifo, socket, chardev or blockdev." }),
    size: z.number().optional().openapi({ description: "Bytes (files only)." }),
    mtime: z.string(),
    mode: z.number().int().openapi({ description: "Permission bits (mode & 0o7777)." }),
    linktarget: z.string().optional(),
  })
  .openapi("SnapshotTreeEntry");

const tree = createRoute({
  method: "get",
  path: "/snapshots/{id}/tree",
  operationId: "getSnapshotTree",
  summary: "One directory of a snapshot: its entries in name order, a page at most (truncated says more follow)",
  tags: ["snapshots"],
  ...access("snapshots:read", inRepository),
  request: {
    params: SnapshotIdParam,
    query: z.object({
      repositoryId: RepositoryId,
      path: SnapshotPath,
      offset: z.coerce.number().int().min(0).default(0).openapi({ description: "Entries to skip (for the next page of a large directory)." }),
      limit: z.coerce.number().int().min(1).max(5000).default(1000).openapi({ description: "Entries at most (1-5000, default 1000)." }),
    }),
  },
  responses: {
    200: json(
      z.object({ snapshotId: z.string(), path: z.string(), entries: z.array(TreeEntry), total: z.number().int(), truncated: z.boolean().openapi({ description: "True when entries follow the last one given: ask again with offset." }) }),
      "The directory's entries.",
    ),
    ...problems(400, 403, 404, 422, 503),
  },
});

const diff = createRoute({
  method: "get",
  path: "/snapshots/{id}/diff",
  operationId: "diffSnapshots",
  summary: "What changed from the snapshot `against` to this one: paths added, removed, changed, or with changed metadata only (the first `limit`; totals count all)",
  tags: ["snapshots"],
  ...access("snapshots:read", inRepository),
  request: {
    params: SnapshotIdParam,
    query: z.object({
      repositoryId: RepositoryId,
      against: SnapshotId().openapi({ description: "The older snapshot to compare with (an id or a unique prefix)." }),
      limit: z.coerce.number().int().min(1).max(10000).default(1000).openapi({ description: "Changes at most (1-10000, default 1000)." }),
    }),
  },
  responses: {
    200: json(
      z.object({
        from: z.string(),
        to: z.string(),
        changes: z.array(
          z.object({
            change: z.enum(["added", "removed", "changed", "metadata"]),
            path: z.string(),
            type: z.string(),
            size: z.number().optional().openapi({ description: "Bytes of the file in this snapshot (in `against` when removed)." }),
            sizeBefore: z.number().optional().openapi({ description: "Bytes of a changed file in `against`." }),
          }),
        ),
        totals: z.object({ added: z.number().int(), removed: z.number().int(), changed: z.number().int(), metadata: z.number().int() }),
        truncated: z.boolean().openapi({ description: "True when more changes than `limit` were found." }),
      }),
      "The changes.",
    ),
    ...problems(400, 403, 404, 422, 503),
  },
});

const download = createRoute({
  method: "get",
  path: "/snapshots/{id}/download",
  operationId: "downloadSnapshot",
  summary:
    "A file of a snapshot as itself, or a directory (or the whole snapshot) as a tar archive, streamed from a worker; every byte is verified as a restore does, and a damaged blob breaks the transfer off (never wrong bytes)",
  tags: ["snapshots"],
  // Downloading hands out the backed-up data, as a restore does: the same permission, audited, and counted as a download.
  ...access("restores:create", inRepository),
  [AUDIT_FIELD]: true,
  [ACTIVITY_FIELD]: "download",
  request: {
    params: SnapshotIdParam,
    query: z.object({
      repositoryId: RepositoryId,
      path: SnapshotPath,
      format: z.enum(["raw", "tar"]).optional().openapi({ description: "raw: a file as itself (the default for a file); tar: an archive (the default, and the only form, for a directory)." }),
    }),
  },
  responses: {
    200: {
      description: "The bytes, as they are read; Content-Disposition names the file. A transfer that stops before its end failed.",
      content: { "application/x-tar": { schema: z.string().openapi({ format: "binary" }) }, "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
    },
    ...problems(400, 403, 404, 422, 503),
  },
});

/** attachment; with a plain-ASCII name for old clients and the exact one (RFC 6266/5987) for the rest. */
export function contentDisposition(name: string): string {
  const plain = name.replace(/[^A-Za-z0-9._ -]/g, "_").replace(/^[. ]+/, "_") || "download";
  const exact = encodeURIComponent(name).replace(/['()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${plain}"; filename*=UTF-8''${exact}`;
}

function decodedName(upload: Upload): string {
  try {
    return decodeURIComponent(upload.headers.get(UPLOAD_HEADERS.name) ?? "");
  } catch {
    return "";
  }
}

export function snapshotRoutes(deps: AppDeps, channels = new DownloadChannels()) {
  return router()
    .openapi(tree, async (c) => {
      const { id } = c.req.valid("param");
      const { repositoryId, path, offset, limit } = c.req.valid("query");
      const repo = await findRepository(deps, repositoryId);
      return c.json(answered(await deps.workers.snapshotTree({ repository: repositoryTarget(repo), snapshotRef: id, path, offset, limit })), 200);
    })
    .openapi(diff, async (c) => {
      const { id } = c.req.valid("param");
      const { repositoryId, against, limit } = c.req.valid("query");
      const repo = await findRepository(deps, repositoryId);
      return c.json(answered(await deps.workers.snapshotDiff({ repository: repositoryTarget(repo), from: against, to: id, limit })), 200);
    })
    .openapi(download, async (c) => {
      const { id } = c.req.valid("param");
      const { repositoryId, path, format } = c.req.valid("query");
      const repo = await findRepository(deps, repositoryId);
      const base = deps.workerUploadUrl?.();
      if (!base) throw new ApiError(503, "Downloads not available", "this API does not know the address its workers reach it at; set CAIRN_API_URL (for example http://api.internal:8080)");
      const channel = channels.open();
      const stop = new AbortController();
      const callerGone = () => stop.abort();
      c.req.raw.signal.addEventListener("abort", callerGone, { once: true });
      const done = deps.workers.downloadSnapshot({ repository: repositoryTarget(repo), snapshotRef: id, path, ...(format ? { format } : {}), upload: { url: `${base}${UPLOAD_PATH}/${channel.secret}` } }, stop.signal);
      done.catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      const first = await Promise.race([
        channel.arrived.then((upload) => ({ upload })),
        done.then((answer) => ({ answer })),
        new Promise<{ late: true }>((resolve) => (timer = setTimeout(() => resolve({ late: true }), ANSWER_WITHIN_MS))),
        new Promise<{ late: true }>((resolve) => stop.signal.addEventListener("abort", () => resolve({ late: true }), { once: true })),
      ]).finally(() => clearTimeout(timer));
      if (!("upload" in first)) {
        channel.close();
        stop.abort();
        if ("answer" in first) answered(first.answer);
        throw new ApiError(503, "No worker answered", `no worker started the download within ${ANSWER_WITHIN_MS / 1000} seconds; start a worker (npm start runs one) and retry`);
      }
      const { upload } = first;
      c.req.raw.signal.removeEventListener("abort", callerGone);
      c.set("transferBytes", Number(upload.headers.get(UPLOAD_HEADERS.size)) || 0);
      // The 200 is sent before the last byte is read: a failure after it breaks the transfer off, and is recorded here.
      void Promise.all([upload.ended, done.then((a) => (a.ok ? "" : a.refusal.message), (err: Error) => err.message)]).then(([ended, why]) => {
        if (!ended) return auditLate(c, "failed", { detail: `the download broke off before its end${why ? `: ${why}` : " (the caller went away, or the worker stopped)"}` });
      });
      const kind = upload.headers.get(UPLOAD_HEADERS.kind);
      return new Response(upload.body, {
        status: 200,
        headers: {
          "content-type": kind === "tar" ? "application/x-tar" : "application/octet-stream",
          "content-disposition": contentDisposition(decodedName(upload)),
          "x-content-type-options": "nosniff",
          "cache-control": "no-store",
        },
      });
    })
    .openapi(list, async (c) => {
    const { repositoryId, limit, cursor } = c.req.valid("query");
    const repo = await findRepository(deps, repositoryId);
    const after = cursor ? decodeCursor(cursor, z.tuple([z.string().max(100), z.string().max(100)])) : undefined;
    const page = answered(await deps.workers.listSnapshots({ repository: repositoryTarget(repo), limit, ...(after ? { after: { time: after[0], id: after[1] } } : {}) }));
    const last = page.snapshots.at(-1);
    return c.json({ nextCursor: page.more && last ? encodeCursor([last.time, last.id]) : null, snapshots: page.snapshots }, 200);
  });
}
