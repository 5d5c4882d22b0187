import { randomBytes } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import * as path from "node:path";
import { BackendError, bodyParts, type Backend, type Body, type ByteRange, type ObjectInfo, type StagedObject } from "./backend.js";

/** Writes all of `data` at `position`, however many writes the kernel takes. */
async function writeAt(handle: fs.FileHandle, data: Uint8Array, position: number): Promise<void> {
  for (let off = 0; off < data.byteLength; ) off += (await handle.write(data, off, data.byteLength - off, position + off)).bytesWritten;
}

/** Error codes that may succeed when tried again (the disk or the kernel is busy). */
const TRANSIENT_CODES = new Set(["EAGAIN", "EBUSY", "EINTR", "EMFILE", "ENFILE", "ETIMEDOUT"]);

function classify(err: unknown, what: string): BackendError {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === "ENOENT") return new BackendError("not-found", `${what}: not found`, { cause: err });
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new BackendError("permanent", `${what}: the disk is full (${code}); free some space or use another destination`, { cause: err, reason: "disk-full" });
  }
  const kind = code && TRANSIENT_CODES.has(code) ? "transient" : "permanent";
  return new BackendError(kind, `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/**
 * A repository in a directory on a local (or mounted) file system. Writes go to a
 * temporary file that is fsynced and then renamed into place, so readers never see
 * a partial object.
 */
export class LocalBackend implements Backend {
  readonly location: string;
  private readonly madeDirs = new Set<string>();

  constructor(readonly root: string, private readonly options: { fsync?: boolean } = {}) {
    this.location = path.resolve(root);
  }

  private file(key: string): string {
    if (key.split("/").some((part) => part === ".." || part === "")) {
      throw new BackendError("permanent", `invalid object key ${JSON.stringify(key)}`);
    }
    return path.join(this.location, key);
  }

  async put(key: string, body: Body): Promise<void> {
    const target = this.file(key);
    const dir = path.dirname(target);
    const tmp = path.join(dir, `.tmp-${path.basename(target)}-${randomBytes(6).toString("hex")}`);
    try {
      await this.makeDir(dir);
      const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        const parts = bodyParts(body);
        const total = parts.reduce((n, p) => n + p.byteLength, 0);
        // One writev for the whole object; a short write falls back to plain writes of the rest.
        let written = (await handle.writev(parts as Uint8Array[], 0)).bytesWritten;
        if (written < total) {
          await writeAt(handle, Buffer.concat(parts as Uint8Array[]).subarray(written), written);
        }
        if (this.options.fsync !== false) await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(tmp, target);
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw classify(err, `writing ${key} in ${this.location}`);
    }
  }

  /**
   * A temporary file in `dir`, written at known offsets (a retried write lands where
   * the failed one did), fsynced and renamed to the key at commit as put does.
   */
  async stage(dir: string): Promise<StagedObject> {
    const where = this.file(dir);
    const tmp = path.join(where, `.tmp-stage-${randomBytes(6).toString("hex")}`);
    let handle: fs.FileHandle;
    try {
      await this.makeDir(where);
      handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (err) {
      throw classify(err, `writing a new object in ${this.location}`);
    }
    let size = 0;
    let closed = false;
    let state: "open" | "committed" | "aborted" = "open";
    const check = (what: string) => {
      if (state !== "open") throw new BackendError("permanent", `${what} in ${this.location}: the object was already ${state}`);
    };
    return {
      write: async (part) => {
        check("writing a new object");
        try {
          await writeAt(handle, part, size);
        } catch (err) {
          throw classify(err, `writing a new object in ${this.location}`);
        }
        size += part.byteLength;
      },
      // A commit that failed may be tried again: it goes on from the step that failed.
      commit: async (key) => {
        check(`writing ${key}`);
        const target = this.file(key);
        try {
          if (!closed) {
            if (this.options.fsync !== false) await handle.sync();
            await handle.close();
            closed = true;
          }
          await this.makeDir(path.dirname(target));
          await fs.rename(tmp, target);
          state = "committed";
        } catch (err) {
          throw classify(err, `writing ${key} in ${this.location}`);
        }
      },
      abort: async () => {
        if (state !== "open") return;
        state = "aborted";
        if (!closed) await handle.close().catch(() => undefined);
        await fs.rm(tmp, { force: true }).catch(() => undefined);
      },
    };
  }

  private async makeDir(dir: string): Promise<void> {
    if (this.madeDirs.has(dir)) return;
    await fs.mkdir(dir, { recursive: true });
    this.madeDirs.add(dir);
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const file = this.file(key);
    try {
      if (!range) return await fs.readFile(file);
      const handle = await fs.open(file, "r");
      try {
        const buf = range.into && range.into.length >= range.length ? range.into.subarray(0, range.length) : Buffer.allocUnsafe(range.length);
        let got = 0;
        while (got < range.length) {
          const { bytesRead } = await handle.read(buf, got, range.length - got, range.offset + got);
          if (bytesRead === 0) {
            throw new BackendError("permanent", `reading ${key}: object is shorter than the requested range (${range.offset}+${range.length})`);
          }
          got += bytesRead;
        }
        return buf;
      } finally {
        await handle.close();
      }
    } catch (err) {
      if (err instanceof BackendError) throw err;
      throw classify(err, `reading ${key} in ${this.location}`);
    }
  }

  async stat(key: string): Promise<ObjectInfo> {
    try {
      const st = await fs.stat(this.file(key));
      return { key, size: st.size };
    } catch (err) {
      throw classify(err, `stat ${key} in ${this.location}`);
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await fs.access(this.file(key));
      return true;
    } catch {
      return false;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const base = prefix.replace(/\/+$/, "");
    const start = this.file(base);
    const stack: string[] = [start];
    while (stack.length) {
      const dir = stack.pop()!;
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw classify(err, `listing ${prefix} in ${this.location}`);
      }
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) stack.push(full);
        else if (entry.isFile() && !entry.name.startsWith(".tmp-")) {
          const st = await fs.stat(full).catch(() => undefined);
          if (!st) continue;
          yield { key: path.relative(this.location, full).split(path.sep).join("/"), size: st.size };
        }
      }
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await fs.rm(this.file(key), { force: true });
    } catch (err) {
      throw classify(err, `deleting ${key} in ${this.location}`);
    }
  }
}
