import type { Command } from "commander";
import { CairnError } from "../engine/errors.js";
import type { PruneResult } from "../engine/prune.js";
import { applyPolicy, validatePolicy, type GroupBy, type PolicyGroup, type RetentionPolicy } from "../engine/retention.js";
import { loadSnapshots, matches, type SnapshotEntry } from "../engine/snapshot.js";
import { expireWal, clustersOf, type WalExpiry } from "../sources/postgres/expire.js";
import { describeExpiry } from "./cmd_pg_expire.js";
import { formatPrune, MAX_UNUSED_HELP, plural, runPrune } from "./cmd_prune.js";
import { globals, output, PLAN_OPTION, withRepository } from "./common.js";

interface ForgetFlags {
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  keepWithin?: string;
  keepTag: string[];
  host?: string;
  plan?: string;
  tag: string[];
  groupBy: string;
  dryRun?: boolean;
  prune?: boolean;
  maxUnused: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(program: Command): void {
  program
    .command("forget")
    .description("remove snapshots that a retention policy does not keep (with --prune, also the data only they used)")
    .option("-l, --keep-last <n>", "keep the n newest snapshots")
    .option("-H, --keep-hourly <n>", "keep the newest snapshot of each of the n newest hours that have one")
    .option("-d, --keep-daily <n>", "keep the newest snapshot of each of the n newest days that have one")
    .option("-w, --keep-weekly <n>", "keep the newest snapshot of each of the n newest ISO weeks (Monday to Sunday) that have one")
    .option("-m, --keep-monthly <n>", "keep the newest snapshot of each of the n newest months that have one")
    .option("-y, --keep-yearly <n>", "keep the newest snapshot of each of the n newest years that have one")
    .option("--keep-within <duration>", "keep every snapshot newer than the group's latest snapshot minus this: 30d, 12h, 6m (months), 1y6m")
    .option("--keep-tag <tag>", "keep every snapshot with this tag (repeatable: any of them)", collect, [])
    .option("--host <name>", "only consider snapshots of this host")
    .option(PLAN_OPTION[0], "only consider snapshots made by this Cairn plan, given by id or name")
    .option("--tag <tag>", "only consider snapshots with this tag (repeatable: all of them)", collect, [])
    .option("--group-by <fields>", "apply the policy to each group of snapshots sharing these fields: host, paths, tags, comma-separated, or \"\" for one group", "host,paths")
    .option("-n, --dry-run", "only show what would be removed")
    .option("--prune", "then delete the data no remaining snapshot needs (see cairn prune)")
    .option("--max-unused <limit>", `with --prune: ${MAX_UNUSED_HELP}`, "5%")
    .addHelpText(
      "after",
      [
        "",
        "Hours, days, weeks, months and years are counted in UTC. Counts take \"unlimited\".",
        "A snapshot kept by any rule is kept. When a rule finds fewer periods than asked, the",
        "oldest snapshot is kept too. Without any --keep-* option nothing is removed.",
        "",
        "Example: cairn forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --prune",
      ].join("\n"),
    )
    .action(async (o: ForgetFlags, cmd: Command) => {
      const opts = globals(cmd);
      const policy = policyFrom(o);
      validatePolicy(policy);
      const groupBy = parseGroupBy(o.groupBy);
      const result = await withRepository(opts, "exclusive", "forget", async (repo) => {
        const all = (await loadSnapshots(repo)).filter((s) => matches(s, { host: o.host, plan: o.plan, tags: o.tag }));
        const decided = applyPolicy(all, policy, groupBy);
        const chosen = decided.remove.map((s) => s.id);
        // A snapshot file under retention (S3 Object Lock) cannot be deleted yet: say until when instead of failing.
        const locked: Record<string, string> = {};
        for (const id of chosen) {
          const until = await repo.backend.retainedUntil?.(`snapshots/${id}`);
          if (until) locked[id] = until.toISOString();
          else if (!o.dryRun) await repo.backend.delete(`snapshots/${id}`);
        }
        const removed = chosen.filter((id) => !locked[id]);
        // Forgetting base backups frees the archived WAL only they needed (pgBackRest's expire does both too).
        const gone = new Set(removed);
        const clusters = clustersOf(all.filter((s) => gone.has(s.id)));
        const wal = clusters.length ? await expireWal(repo, (await loadSnapshots(repo)).filter((s) => !gone.has(s.id)), clusters, { dryRun: o.dryRun }) : [];
        const pruned = o.prune ? await runPrune(repo, opts, { maxUnused: o.maxUnused, dryRun: o.dryRun, forgotten: new Set(removed) }) : undefined;
        return { decided, removed, locked, pruned, wal };
      });
      const json = {
        dryRun: Boolean(o.dryRun),
        groups: result.decided.groups.map((g) => ({
          key: g.key,
          keep: g.keep.map((k) => ({ ...brief(k.snapshot), reasons: k.reasons })),
          remove: g.remove.map(brief),
        })),
        removed: result.removed,
        lockedUntil: result.locked,
        ...(result.wal.length ? { walExpired: result.wal } : {}),
        ...(result.pruned ? { prune: result.pruned } : {}),
      };
      output(opts, json, () => report(result.decided.groups, result.removed.length, Boolean(o.dryRun), result.locked, result.pruned, result.wal));
    });
}

function policyFrom(o: ForgetFlags): RetentionPolicy {
  const count = (flag: string, v?: string) => {
    if (v === undefined) return undefined;
    if (v === "unlimited") return Infinity;
    if (!/^\d+$/.test(v)) throw new CairnError(`--${flag} takes a whole number or "unlimited", got "${v}"`);
    return Number(v);
  };
  return {
    keepLast: count("keep-last", o.keepLast),
    keepHourly: count("keep-hourly", o.keepHourly),
    keepDaily: count("keep-daily", o.keepDaily),
    keepWeekly: count("keep-weekly", o.keepWeekly),
    keepMonthly: count("keep-monthly", o.keepMonthly),
    keepYearly: count("keep-yearly", o.keepYearly),
    keepWithin: o.keepWithin,
    keepTags: o.keepTag,
  };
}

function parseGroupBy(text: string): GroupBy {
  const fields = text.split(",").map((f) => f.trim()).filter(Boolean);
  for (const f of fields) {
    if (f !== "host" && f !== "paths" && f !== "tags") throw new CairnError(`--group-by takes host, paths and tags separated by commas (or "" for one group), got "${f}"`);
  }
  return { host: fields.includes("host"), paths: fields.includes("paths"), tags: fields.includes("tags") };
}

function brief(s: SnapshotEntry) {
  return { id: s.id, time: s.time, host: s.host, paths: s.paths, tags: s.tags };
}

function report(groups: PolicyGroup<SnapshotEntry>[], removed: number, dryRun: boolean, locked: Record<string, string>, pruned: PruneResult | undefined, wal: WalExpiry[]): string {
  const row = (s: SnapshotEntry, extra: string) => `  ${s.id.slice(0, 8)}  ${s.time.replace("T", " ").slice(0, 19)}  ${s.tags.join(",").padEnd(10)}  ${extra}`.trimEnd();
  const lines: string[] = [];
  for (const g of groups) {
    const name = [g.key.host !== undefined && `host ${g.key.host}`, g.key.paths && `paths ${g.key.paths.join(" ")}`, g.key.tags && `tags ${g.key.tags.join(",") || "(none)"}`]
      .filter(Boolean)
      .join(", ");
    lines.push(`snapshots of ${name || "every host and path"}:`);
    lines.push(`keep ${g.keep.length}:`, ...g.keep.map((k) => row(k.snapshot, k.reasons.join(", "))));
    lines.push(`remove ${g.remove.length}:`, ...g.remove.map((s) => row(s, "")), "");
  }
  lines.push(dryRun ? `would remove ${plural(removed, "snapshot")} (dry run: nothing was changed)` : `removed ${plural(removed, "snapshot")}`);
  for (const [id, until] of Object.entries(locked)) {
    lines.push(`snapshot ${id.slice(0, 8)} cannot be removed until ${until}: object lock retains it; run forget again after that`);
  }
  for (const c of wal) lines.push(describeExpiry(c, dryRun));
  if (pruned) lines.push("", formatPrune(pruned));
  return lines.join("\n");
}
