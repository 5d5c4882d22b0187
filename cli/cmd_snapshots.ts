import type { Command } from "commander";
import { loadSnapshots, matches } from "../engine/snapshot.js";
import { globals, output, withRepository } from "./common.js";

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(program: Command): void {
  program
    .command("snapshots")
    .description("list snapshots")
    .option("--host <name>", "only snapshots of this host")
    .option("--tag <tag>", "only snapshots with this tag (repeatable)", collect, [])
    .option("--path <path>", "only snapshots of exactly these paths (repeatable)", collect, [])
    .action(async (o: { host?: string; tag: string[]; path: string[] }, cmd: Command) => {
      const opts = globals(cmd);
      const list = await withRepository(opts, "none", "snapshots", async (repo) =>
        (await loadSnapshots(repo)).filter((s) => matches(s, { host: o.host, tags: o.tag, paths: o.path })),
      );
      output(opts, list, () => {
        if (!list.length) return "no snapshots";
        const rows = list.map((s) => `${s.id.slice(0, 8)}  ${s.time.replace("T", " ").slice(0, 19)}  ${s.host.padEnd(12)}  ${s.tags.join(",").padEnd(10)}  ${s.paths.join(" ")}`);
        return [`ID        Time                 Host          Tags        Paths`, ...rows, `${list.length} snapshots`].join("\n");
      });
    });
}
