import { createReadStream, promises as fs } from "node:fs";
import * as path from "node:path";
import type { SourceEntry } from "../engine/archiver.js";

/**
 * A dump written to a work directory (pg_dump -Fd, one file per table of
 * mariadb-dump) as the archiver's entries under `root`, in name order: files
 * 0600, folders 0700, streamed from disk.
 */
export async function* dumpDirEntries(work: string, root: string): AsyncGenerator<SourceEntry> {
  for (const name of (await fs.readdir(work)).sort()) {
    const full = path.join(work, name);
    const st = await fs.stat(full);
    const p = `${root}/${name}`;
    if (st.isDirectory()) {
      yield { path: p, type: "dir", mode: 0o700, mtime: st.mtimeMs };
      yield* dumpDirEntries(full, p);
    } else yield { path: p, type: "file", mode: 0o600, mtime: st.mtimeMs, content: createReadStream(full) };
  }
}
