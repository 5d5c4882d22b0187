import type { Command } from "commander";
import { loadSnapshots, matches } from "../engine/snapshot.js";
import { formatTable, globals, output, PLAN_OPTION, withRepository } from "./common.js";

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(program: Command): void {
  program
    .command("snapshots")
    .description("list snapshots")
    .option("--host <name>", "only snapshots of this host")
    .option(...PLAN_OPTION)
    .option("--tag <tag>", "only snapshots with this tag (repeatable)", collect, [])
    .option("--path <path>", "only snapshots of exactly these paths (repeatable)", collect, [])
    .action(async (o: { host?: string; plan?: string; tag: string[]; path: string[] }, cmd: Command) => {
      const opts = globals(cmd);
      const list = await withRepository(opts, "none", "snapshots", async (repo) =>
        (await loadSnapshots(repo)).filter((s) => matches(s, { host: o.host, plan: o.plan, tags: o.tag, paths: o.path })),
      );
      output(opts, list, () => {
        if (!list.length) return "no snapshots";
        const rows = list.map((s) => [s.id.slice(0, 8), s.time.replace("T", " ").slice(0, 19), s.host, s.tags.join(","), s.paths.join(" ")]);
        return `${formatTable(["ID", "Time", "Host", "Tags", "Paths"], rows)}\n${list.length} snapshots`;
      });
    });
}
