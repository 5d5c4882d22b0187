#!/usr/bin/env bash
# Many small files, Cairn beside restic in one run (issue 13): first backup, unchanged
# re-backup and full restore of a tree of FILES files of 0..8 KiB in 200 directories.
#
#   bash bench/smallfiles.sh            # 200,000 files (about 0.8 GB; ~15 minutes on 2 busy cores)
#   FILES=20000 bash bench/smallfiles.sh  # a quick run
#
# Knobs: FILES, CAIRN_JS (default bin/cairn.js of this checkout), BENCH_TMP (default /tmp/cairn-smallfiles), RESTIC (default
# ~/.cache/cairn/bin/restic), NICE (default 10: other work on the machine keeps its share;
# both tools get the same), VERIFY=1 to diff each restore against the tree (not timed).
# Uses the built CLI (npm run build first) and GNU time. Ratios are Cairn / restic: below 1
# means Cairn is faster or smaller. Page cache is not dropped: both tools read a warm tree.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
FILES="${FILES:-200000}"
TMPB="${BENCH_TMP:-/tmp/cairn-smallfiles}"
# The restic column is restic 0.18.1 (bench/restic18.sh refuses another version); RESTIC names the binary.
RESTIC18="${RESTIC:-${RESTIC18:-}}"
[ -n "$RESTIC18" ] || unset RESTIC18
. "$(dirname "$0")/restic18.sh"
require_restic18 || exit 1
RESTIC="$RESTIC18"
NICE="${NICE:-10}"
CAIRN=(node "${CAIRN_JS:-$ROOT/bin/cairn.js}")
[ -x /usr/bin/time ] || { echo "GNU time is needed: apt-get install -y time" >&2; exit 1; }
case "$TMPB" in "$ROOT"*) echo "BENCH_TMP must be outside the checkout" >&2; exit 1 ;; esac

TREE="$TMPB/tree-$FILES"
mkdir -p "$TMPB"
[ -d "$TREE" ] || FILES="$FILES" bash "$HERE/make-smallfiles.sh" "$TREE"
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench
RESULTS="$TMPB/results.tsv"
: > "$RESULTS"

# step tool command...: appends "tool step wall cpu rss_mib" to RESULTS.
timed() {
  local tool="$1" step="$2"; shift 2
  local out="$TMPB/time.txt"
  /usr/bin/time -f "%e %U %S %M" -o "$out" nice -n "$NICE" "$@" > "$TMPB/$tool-$step.log" 2>&1 || { echo "$tool $step failed, see $TMPB/$tool-$step.log" >&2; exit 1; }
  read -r wall user sys rss < "$out"
  echo -e "$tool\t$step\t$wall\t$(echo "$user + $sys" | bc)\t$((rss / 1024))" >> "$RESULTS"
}

# Restored trees are deleted once both restores are done, not between them: on ext4 without a
# journal (this machine's) a file created within minutes of a large deletion makes the kernel
# skip each recently freed inode, and the second restore paid for the first one's deletion
# (system time of either tool varied 2-3x with it). The kernel skips an inode freed less than
# 60 s before (ext4's recently_deleted; longer while its inode table block is dirty, hence the
# sync): a run that deletes an earlier run's trees waits that out first, or the tool restoring first (Cairn) pays for
# it alone (seen: Cairn's restore 27.9 s against restic's 22.2 s, 18.4 s against 21.1 s when
# nothing had been deleted).
if compgen -G "$TMPB/restore-*" > /dev/null; then
  rm -rf "$TMPB"/restore-*
  sync
  sleep 65
fi
for tool in cairn restic; do
  repo="$TMPB/repo-$tool" target="$TMPB/restore-$tool"
  rm -rf "$repo"
  # The tree is read once before each tool's first backup, so each reads it from the page cache:
  # the restores of an earlier run (2.4 GB written) and the machine's reclaim evict part of it,
  # and the tool going first paid for reading it back (Cairn 26 s against its 14-15 s warm).
  find "$TREE" -type f -print0 | xargs -0 cat > /dev/null
  if [ "$tool" = cairn ]; then
    "${CAIRN[@]}" -r "$repo" init > /dev/null
    timed cairn backup "${CAIRN[@]}" -r "$repo" backup "$TREE"
    timed cairn noop "${CAIRN[@]}" -r "$repo" backup "$TREE"
    timed cairn restore "${CAIRN[@]}" -r "$repo" restore latest --target "$target"
  else
    "$RESTIC" -r "$repo" init > /dev/null
    timed restic backup "$RESTIC" -r "$repo" backup "$TREE"
    timed restic noop "$RESTIC" -r "$repo" backup "$TREE"
    timed restic restore "$RESTIC" -r "$repo" restore latest --target "$target"
  fi
  echo -e "$tool\tsize\t$(du -sb "$repo" | cut -f1)" >> "$RESULTS"
  if [ "${VERIFY:-0}" = 1 ]; then diff -r "$TREE" "$target$TREE" > /dev/null && echo "$tool restore: identical" >&2; fi
done
rm -rf "$TMPB"/restore-*

node - "$RESULTS" "$FILES" "$(uptime)" <<'NODE'
const [file, files, up] = process.argv.slice(2);
const rows = require("fs").readFileSync(file, "utf8").trim().split("\n").map((l) => l.split("\t"));
const get = (tool, step) => rows.find((r) => r[0] === tool && r[1] === step);
const ratio = (a, b) => (Number(b) > 0 ? (Number(a) / Number(b)).toFixed(2) : "-");
console.log(`${files} files of 0-8 KiB in 200 directories; load at the end: ${up.trim()}\n`);
console.log("| step | Cairn wall s / CPU s / peak RSS MiB | restic 0.18.1 | ratio wall / CPU / RSS |");
console.log("| --- | --- | --- | --- |");
for (const [step, name] of [["backup", "first backup"], ["noop", "unchanged re-backup"], ["restore", "full restore"]]) {
  const c = get("cairn", step), r = get("restic", step);
  console.log(`| ${name} | ${c[2]} / ${c[3]} / ${c[4]} | ${r[2]} / ${r[3]} / ${r[4]} | ${ratio(c[2], r[2])} / ${ratio(c[3], r[3])} / ${ratio(c[4], r[4])} |`);
}
const cs = get("cairn", "size")[2], rs = get("restic", "size")[2];
console.log(`| repository size MB | ${(cs / 1e6).toFixed(1)} | ${(rs / 1e6).toFixed(1)} | ${ratio(cs, rs)} |`);
NODE
