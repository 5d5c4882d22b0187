import type { Command } from "commander";
import { findSnapshot } from "../engine/snapshot.js";
import { diffTrees, totals } from "../engine/diff.js";
import { TreeLoader } from "../engine/tree.js";
import { globals, output, withRepository } from "./common.js";

export function register(program: Command): void {
  program
    .command("diff")
    .description("show what changed between two snapshots")
    .argument("<from>", 'snapshot id (or a unique prefix) or "latest"')
    .argument("<to>", 'snapshot id (or a unique prefix) or "latest"')
    .action(async (fromRef: string, toRef: string, _o: unknown, cmd: Command) => {
      const opts = globals(cmd);
      const result = await withRepository(opts, "shared", "diff", async (repo) => {
        const from = await findSnapshot(repo, fromRef);
        const to = await findSnapshot(repo, toRef);
        const changes = await diffTrees(new TreeLoader(repo), from.tree, to.tree);
        return { from: from.id, to: to.id, changes, totals: totals(changes) };
      });
      output(opts, result, () => {
        const t = result.totals;
        const lines = result.changes.map((c) => `${c.change}    ${c.path}${c.type === "dir" ? "/" : ""}`);
        lines.push(`comparing ${result.from.slice(0, 8)} to ${result.to.slice(0, 8)}: ${t.added} added, ${t.removed} removed, ${t.modified} modified, ${t.metadata} with changed metadata only`);
        return lines.join("\n");
      });
    });
}
