import type { Command } from "commander";
import { CairnError } from "../engine/errors.js";
import { fileContent } from "../engine/export.js";
import { findSnapshot } from "../engine/snapshot.js";
import { subtreeAt, TreeLoader } from "../engine/tree.js";
import { globals, PLAN_OPTION, withRepository, writeStdout } from "./common.js";

export function register(program: Command): void {
  program
    .command("dump")
    .description("write one file of a snapshot to standard output")
    .argument("<snapshot>", 'snapshot id or "latest"')
    .option(PLAN_OPTION[0], 'with "latest": the latest snapshot of this Cairn plan, given by id or name')
    .argument("<file>", "path of the file inside the snapshot")
    .action(async (ref: string, file: string, o: { plan?: string }, cmd: Command) => {
      const opts = globals(cmd);
      await withRepository(opts, "none", "dump", async (repo) => {
        const snap = await findSnapshot(repo, ref, { plan: o.plan });
        const loader = new TreeLoader(repo);
        const parts = file.split("/").filter(Boolean);
        if (parts.length === 0) throw new CairnError("give the path of a file inside the snapshot");
        const dir = await subtreeAt(loader, snap.tree, parts.slice(0, -1).join("/"));
        const node = (await loader.load(dir)).nodes.find((n) => n.name === parts[parts.length - 1]);
        if (!node) throw new CairnError(`${file} is not in snapshot ${snap.id.slice(0, 8)}; see "cairn ls ${snap.id.slice(0, 8)}"`);
        if (node.type !== "file") throw new CairnError(`${file} is a ${node.type}, not a file; dump writes file contents`);
        for await (const data of fileContent(repo, node, file)) await writeStdout(data);
      });
    });
}
