import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createRequire } from "node:module";
import * as path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import { apiClient } from "./api-client.js";
import { cairnOk, PASSWORD, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";

/** tar-stream (in node_modules through tar-fs) reads the archives: an implementation that is not ours. */
interface TarHeader {
  name: string;
  type: string;
  size: number;
  mode: number;
  linkname?: string;
}
const tarStream = createRequire(import.meta.url)("tar-stream") as {
  extract(): NodeJS.WritableStream & { on(event: "entry", fn: (h: TarHeader, s: NodeJS.ReadableStream, next: () => void) => void): void; on(event: "finish" | "error", fn: (e?: Error) => void): void };
};

function untar(buf: Buffer): Promise<Map<string, { header: TarHeader; data: Buffer }>> {
  return new Promise((resolve, reject) => {
    const out = new Map<string, { header: TarHeader; data: Buffer }>();
    const x = tarStream.extract();
    x.on("entry", (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        out.set(header.name.replace(/\/$/, ""), { header, data: Buffer.concat(chunks) });
        next();
      });
    });
    x.on("finish", () => resolve(out));
    x.on("error", reject);
    x.end(buf);
  });
}

interface Download {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Set when the transfer broke off after the answer began. */
  error?: Error;
}

/** GETs raw bytes; a transfer that breaks off is reported, with what arrived before it. */
function download(api: ApiServer, url: string, token = api.token): Promise<Download> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(api.url + url, { agent: false, headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
      const chunks: Buffer[] = [];
      const done = (error?: Error) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ...(error ? { error } : {}) });
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => done(res.complete ? undefined : new Error("the answer ended before its last chunk")));
      res.on("error", (err) => done(err));
      res.on("aborted", () => done(new Error("aborted")));
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * Browsing, downloading and comparing snapshots over HTTP, against a Temporal dev
 * server and a worker (the API never opens a repository: the worker lists, diffs,
 * and streams the bytes to the API, which passes them on).
 */
describe("snapshot browse, download and diff", () => {
  const tmp = tempDir("cairn-browse-");
  const dataDir = path.join(tmp.dir, "data");
  const src = path.join(tmp.dir, "src");
  const repo = path.join(tmp.dir, "repo");
  const damaged = path.join(tmp.dir, "damaged");
  const big = randomBytes(3 * 1024 * 1024 + 123);
  let stack: Stack;
  let api: ApiServer;
  let admin: ReturnType<typeof apiClient>;
  let repositoryId: string;
  let damagedId: string;
  let first: string;
  let second: string;
  /** The source directory as the snapshot names it. */
  const inSnap = (...p: string[]) => [src, ...p].join("/");
  const q = (p: string) => encodeURIComponent(p);

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    mkdirSync(path.join(src, "docs", "deep"), { recursive: true });
    writeFileSync(path.join(src, "docs", "readme.md"), "# hello\n");
    writeFileSync(path.join(src, "docs", "deep", "big.bin"), big);
    writeFileSync(path.join(src, "docs", "deep", "ünïcode name.txt"), "non-ASCII name\n");
    writeFileSync(path.join(src, "docs", "old.txt"), "going away\n");
    symlinkSync("readme.md", path.join(src, "docs", "link"));
    for (let i = 0; i < 5; i++) writeFileSync(path.join(src, `file-${i}.txt`), `file ${i}\n`);
    await cairnOk(["-r", repo, "init"]);
    await cairnOk(["-r", repo, "backup", src]);
    writeFileSync(path.join(src, "docs", "readme.md"), "# hello, changed\n");
    unlinkSync(path.join(src, "docs", "old.txt"));
    writeFileSync(path.join(src, "docs", "new.txt"), "new in the second snapshot\n");
    await cairnOk(["-r", repo, "backup", src]);

    // A repository whose data pack has one flipped byte: the big file's chunks cannot all be read back.
    await cairnOk(["-r", damaged, "init"]);
    await cairnOk(["-r", damaged, "backup", path.join(src, "docs", "deep")]);
    const packs = readdirSync(path.join(damaged, "data"), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.join(e.parentPath, e.name));
    const dataPack = packs.sort((a, b) => statSync(b).size - statSync(a).size)[0];
    const bytes = readFileSync(dataPack);
    bytes[Math.floor((bytes.length * 3) / 4)] ^= 0xff;
    writeFileSync(dataPack, bytes);

    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir });
    api = stack.api;
    admin = apiClient(api);
    ({ id: repositoryId } = await admin.ok<{ id: string }>("POST", "/v1/repositories", { name: "files", url: repo, password: PASSWORD }));
    ({ id: damagedId } = await admin.ok<{ id: string }>("POST", "/v1/repositories", { name: "damaged", url: damaged, password: PASSWORD }));
    const { snapshots } = await admin.ok<{ snapshots: { id: string }[] }>("GET", `/v1/snapshots?repositoryId=${repositoryId}`);
    [first, second] = snapshots.map((s) => s.id);
  });

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  });

  it("lists one directory of a snapshot, and says when a page does not hold it all", async () => {
    const docs = await admin.ok<{ path: string; total: number; truncated: boolean; entries: { name: string; type: string; size?: number; mode: number; mtime: string }[] }>(
      "GET",
      `/v1/snapshots/${second.slice(0, 8)}/tree?repositoryId=${repositoryId}&path=${q(inSnap("docs"))}`,
    );
    expect(docs.path).toBe(inSnap("docs"));
    expect(docs.entries.map((e) => [e.name, e.type])).toEqual([
      ["deep", "dir"],
      ["link", "symlink"],
      ["new.txt", "file"],
      ["readme.md", "file"],
    ]);
    const readme = docs.entries.find((e) => e.name === "readme.md")!;
    expect(readme.size).toBe(statSync(path.join(src, "docs", "readme.md")).size);
    expect(readme.mode).toBe(statSync(path.join(src, "docs", "readme.md")).mode & 0o7777);
    expect(Date.parse(readme.mtime)).toBeGreaterThan(0);
    expect(docs).toMatchObject({ total: 4, truncated: false });

    const page = await admin.ok<{ total: number; truncated: boolean; entries: { name: string }[] }>("GET", `/v1/snapshots/${second}/tree?repositoryId=${repositoryId}&path=${q(src)}&limit=2&offset=2`);
    expect(page.entries.map((e) => e.name)).toEqual(["file-1.txt", "file-2.txt"]);
    expect(page).toMatchObject({ total: 6, truncated: true });

    const missing = await admin.call<{ detail: string }>("GET", `/v1/snapshots/${second}/tree?repositoryId=${repositoryId}&path=${q(inSnap("nope"))}`);
    expect(missing.status).toBe(404);
    expect(missing.body.detail).toContain(`${inSnap("nope")} is not in the snapshot`);
    const unknown = await admin.call<{ detail: string }>("GET", `/v1/snapshots/ffffffff/tree?repositoryId=${repositoryId}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.detail).toContain("GET /v1/snapshots?repositoryId=");
    const badId = await admin.call<{ detail: string }>("GET", `/v1/snapshots/not-an-id/tree?repositoryId=${repositoryId}`);
    expect(badId.status).toBe(400);
  });

  it("downloads a folder as a tar whose every file has the source's bytes, and a file as itself", async () => {
    const folder = await download(api, `/v1/snapshots/${second}/download?repositoryId=${repositoryId}&path=${q(inSnap("docs"))}`);
    expect(folder.error).toBeUndefined();
    expect(folder.status).toBe(200);
    expect(folder.headers["content-type"]).toBe("application/x-tar");
    expect(folder.headers["content-disposition"]).toBe(`attachment; filename="docs.tar"; filename*=UTF-8''docs.tar`);
    const entries = await untar(folder.body);
    expect([...entries.keys()].sort()).toEqual(["docs", "docs/deep", "docs/deep/big.bin", "docs/deep/ünïcode name.txt", "docs/link", "docs/new.txt", "docs/readme.md"]);
    for (const name of ["deep/big.bin", "deep/ünïcode name.txt", "new.txt", "readme.md"]) {
      expect(entries.get(`docs/${name}`)!.data.equals(readFileSync(path.join(src, "docs", name))), name).toBe(true);
    }
    expect(entries.get("docs/link")!.header).toMatchObject({ type: "symlink", linkname: "readme.md" });
    expect(entries.get("docs/deep")!.header.type).toBe("directory");

    const file = await download(api, `/v1/snapshots/${second}/download?repositoryId=${repositoryId}&path=${q(inSnap("docs", "deep", "big.bin"))}`);
    expect(file.error).toBeUndefined();
    expect(file.headers["content-type"]).toBe("application/octet-stream");
    expect(file.headers["content-disposition"]).toBe(`attachment; filename="big.bin"; filename*=UTF-8''big.bin`);
    expect(file.body.equals(big)).toBe(true);

    const odd = await download(api, `/v1/snapshots/${second}/download?repositoryId=${repositoryId}&path=${q(inSnap("docs", "deep", "ünïcode name.txt"))}`);
    expect(odd.headers["content-disposition"]).toBe(`attachment; filename="_n_code name.txt"; filename*=UTF-8''%C3%BCn%C3%AFcode%20name.txt`);
    expect(odd.body.toString()).toBe("non-ASCII name\n");

    const asTar = await untar((await download(api, `/v1/snapshots/${first}/download?repositoryId=${repositoryId}&path=${q(inSnap("docs", "old.txt"))}&format=tar`)).body);
    expect(asTar.get("old.txt")!.data.toString()).toBe("going away\n");

    const whole = await untar((await download(api, `/v1/snapshots/${first}/download?repositoryId=${repositoryId}`)).body);
    expect(whole.get(`${src.slice(1)}/docs/old.txt`)!.data.toString()).toBe("going away\n");

    const raw = await admin.call<{ detail: string }>("GET", `/v1/snapshots/${second}/download?repositoryId=${repositoryId}&path=${q(inSnap("docs"))}&format=raw`);
    expect(raw.status).toBe(400);
    expect(raw.body.detail).toContain("download it as a tar archive");
    expect((await admin.call("GET", `/v1/snapshots/${second}/download?repositoryId=${repositoryId}&path=${q(inSnap("absent"))}`)).status).toBe(404);

    // Downloads hand out data: each is in the audit log, attempt and outcome.
    const { events } = await admin.ok<{ events: { outcome: string }[] }>("GET", "/v1/audit?action=downloadSnapshot&outcome=succeeded");
    expect(events.length).toBeGreaterThanOrEqual(5);
  });

  it("shows what changed between two snapshots, with sizes, capped with a marker", async () => {
    const d = await admin.ok<{ from: string; to: string; totals: Record<string, number>; truncated: boolean; changes: { change: string; path: string; type: string; size?: number; sizeBefore?: number }[] }>(
      "GET",
      `/v1/snapshots/${second}/diff?repositoryId=${repositoryId}&against=${first}`,
    );
    expect(d).toMatchObject({ from: first, to: second, truncated: false });
    const byPath = Object.fromEntries(d.changes.map((c) => [c.path, c]));
    expect(byPath[inSnap("docs", "new.txt")]).toMatchObject({ change: "added", type: "file", size: 27 });
    expect(byPath[inSnap("docs", "old.txt")]).toMatchObject({ change: "removed", type: "file", size: 11 });
    expect(byPath[inSnap("docs", "readme.md")]).toMatchObject({ change: "changed", size: 17, sizeBefore: 8 });
    expect(d.totals).toMatchObject({ added: 1, removed: 1, changed: 1 });

    const capped = await admin.ok<{ changes: unknown[]; truncated: boolean; totals: Record<string, number> }>("GET", `/v1/snapshots/${second}/diff?repositoryId=${repositoryId}&against=${first}&limit=1`);
    expect(capped.changes).toHaveLength(1);
    expect(capped.truncated).toBe(true);
    expect(capped.totals).toEqual(d.totals);
    expect((await admin.call("GET", `/v1/snapshots/${second}/diff?repositoryId=${repositoryId}&against=abcdef12`)).status).toBe(404);
  });

  it("lets a viewer browse and compare but not download contents; an auditor does neither", async () => {
    const { token: viewerToken } = await admin.ok<{ token: string }>("POST", "/v1/tokens", { name: "looker", role: "viewer" });
    const { token: auditorToken } = await admin.ok<{ token: string }>("POST", "/v1/tokens", { name: "checker", role: "auditor" });
    const viewer = apiClient(api, viewerToken);
    expect((await viewer.call("GET", `/v1/snapshots/${second}/tree?repositoryId=${repositoryId}`)).status).toBe(200);
    expect((await viewer.call("GET", `/v1/snapshots/${second}/diff?repositoryId=${repositoryId}&against=${first}`)).status).toBe(200);
    const refused = await download(api, `/v1/snapshots/${second}/download?repositoryId=${repositoryId}&path=${q(inSnap("docs", "readme.md"))}`, viewerToken);
    expect(refused.status).toBe(403);
    expect(refused.body.toString()).toContain("restores:create");
    expect((await apiClient(api, auditorToken).call("GET", `/v1/snapshots/${second}/tree?repositoryId=${repositoryId}`)).status).toBe(403);
  });

  it("breaks a download off when a blob is damaged, never handing out wrong bytes", async () => {
    const { snapshots } = await admin.ok<{ snapshots: { id: string; paths: string[] }[] }>("GET", `/v1/snapshots?repositoryId=${damagedId}`);
    const deep = path.join(src, "docs", "deep");
    const file = await download(api, `/v1/snapshots/${snapshots[0].id}/download?repositoryId=${damagedId}&path=${q(`${deep}/big.bin`)}`);
    // Broken off after the answer began (what arrived is a prefix of the true bytes: nothing wrong was sent),
    // or, when the damaged blob was the first one read, refused before it began, naming the damage.
    if (file.status === 200) {
      expect(file.error).toBeDefined();
      expect(file.body.length).toBeLessThan(big.length);
      expect(big.subarray(0, file.body.length).equals(file.body)).toBe(true);
    } else {
      expect(file.status, file.body.toString()).toBe(422);
      expect(JSON.parse(file.body.toString()).detail).toMatch(/damaged/);
    }

    const folder = await download(api, `/v1/snapshots/${snapshots[0].id}/download?repositoryId=${damagedId}&path=${q(deep)}`);
    expect(folder.status === 200 ? folder.error : folder.status).toBeDefined();
    if (folder.status !== 200) expect(folder.status).toBe(422);
    // The broken-off download is in the audit log as failed.
    await expect
      .poll(async () => (await admin.ok<{ events: { details: { detail?: string } }[] }>("GET", "/v1/audit?action=downloadSnapshot&outcome=failed")).events.map((e) => e.details.detail ?? ""), { timeout: 30_000 })
      .toContainEqual(expect.stringContaining("broke off"));
  });
});
