import type { Command } from "commander";
import { findSnapshot } from "../engine/snapshot.js";
import { TreeLoader, walkTree } from "../engine/tree.js";
import { globals, output, PLAN_OPTION, withRepository } from "./common.js";

export function register(program: Command): void {
  program
    .command("ls")
    .description("list the files in a snapshot")
    .argument("<snapshot>", 'snapshot id or "latest"')
    .option(PLAN_OPTION[0], 'with "latest": the latest snapshot of this Cairn plan, given by id or name')
    .argument("[path]", "only entries under this path", "/")
    .action(async (ref: string, dir: string, o: { plan?: string }, cmd: Command) => {
      const opts = globals(cmd);
      const prefix = dir === "/" ? "" : dir.replace(/\/+$/, "");
      const entries = await withRepository(opts, "none", "ls", async (repo) => {
        const snap = await findSnapshot(repo, ref, { plan: o.plan });
        const out: { path: string; type: string; size?: number; mode: number; mtime: string; linktarget?: string }[] = [];
        for await (const { path, node } of walkTree(new TreeLoader(repo), snap.tree)) {
          if (prefix && path !== prefix && !path.startsWith(prefix + "/")) continue;
          out.push({ path, type: node.type, size: node.size, mode: node.mode, mtime: new Date(Number(BigInt(node.mtime) / 1_000_000n)).toISOString(), ...(node.linktarget !== undefined ? { linktarget: node.linktarget } : {}) });
        }
        return out;
      });
      output(opts, entries, () => entries.map((e) => (e.type === "symlink" ? `${e.path} -> ${e.linktarget}` : e.type === "dir" ? `${e.path}/` : e.path)).join("\n"));
    });
}
