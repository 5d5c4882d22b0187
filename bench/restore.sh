#!/usr/bin/env bash
# Restore and check --read-data only, Cairn beside restic in one run, on the many-small-files
# tree of make-smallfiles.sh (issues 12 and 13, read side). Backs up once per tool (untimed,
# kept between runs in BENCH_TMP), then times REPS full restores and data checks of each
# tool, alternating the tools, and prints the median of each as a ratio to restic.
#
#   FILES=50000 bash bench/restore.sh
#
# Knobs: FILES (default 200000), REPS (default 3), CAIRN_JS (default bin/cairn.js of this
# checkout), BENCH_TMP (default /tmp/cairn-restore), RESTIC (default ~/.cache/cairn/bin/restic),
# NICE (default 10, both tools the same), CAIRN_BASE_JS (another build's bin/cairn.js, e.g. main
# before a change: timed in the same run as "before", on the same repository). Uses the built CLI (npm run build first) and GNU time.
# Ratios are Cairn / restic: below 1 means Cairn is faster or smaller. The page cache is not
# dropped: both tools read warm repositories.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
FILES="${FILES:-200000}"
REPS="${REPS:-3}"
TMPB="${BENCH_TMP:-/tmp/cairn-restore}"
# The restic column is restic 0.18.1 (bench/restic18.sh refuses another version); RESTIC names the binary.
RESTIC18="${RESTIC:-${RESTIC18:-}}"
[ -n "$RESTIC18" ] || unset RESTIC18
. "$(dirname "$0")/restic18.sh"
require_restic18 || exit 1
RESTIC="$RESTIC18"
NICE="${NICE:-10}"
CAIRN=(node "${CAIRN_JS:-$ROOT/bin/cairn.js}")
BASE=(node "${CAIRN_BASE_JS:-}")
TOOLS="cairn restic"; [ -n "${CAIRN_BASE_JS:-}" ] && TOOLS="before cairn restic"
[ -x /usr/bin/time ] || { echo "GNU time is needed: apt-get install -y time" >&2; exit 1; }
case "$TMPB" in "$ROOT"*) echo "BENCH_TMP must be outside the checkout" >&2; exit 1 ;; esac

TREE="$TMPB/tree-$FILES"
mkdir -p "$TMPB"
[ -d "$TREE" ] || FILES="$FILES" bash "$HERE/make-smallfiles.sh" "$TREE"
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$TMPB/restic-cache"
RESULTS="$TMPB/results-$FILES.tsv"
: > "$RESULTS"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

# Repositories are made once per FILES and reused (a marker says the backup finished).
crepo="$TMPB/repo-cairn-$FILES" rrepo="$TMPB/repo-restic-$FILES"
if [ ! -e "$crepo/.bench-done" ]; then
  rm -rf "$crepo"; "${CAIRN[@]}" -r "$crepo" init > /dev/null; "${CAIRN[@]}" -r "$crepo" backup "$TREE" > /dev/null; touch "$crepo/.bench-done"
fi
if [ ! -e "$rrepo/.bench-done" ]; then
  rm -rf "$rrepo"; "$RESTIC" -r "$rrepo" init > /dev/null; "$RESTIC" -r "$rrepo" backup "$TREE" > /dev/null; touch "$rrepo/.bench-done"
fi

# timed tool step command...: appends "tool step wall cpu rss_mib" to RESULTS.
timed() {
  local tool="$1" step="$2"; shift 2
  local out="$TMPB/time.txt"
  /usr/bin/time -f "%e %U %S %M" -o "$out" nice -n "$NICE" "$@" > "$TMPB/$tool-$step.log" 2>&1 || { echo "$tool $step failed, see $TMPB/$tool-$step.log" >&2; exit 1; }
  read -r wall user sys rss < "$out"
  echo -e "$tool\t$step\t$wall\t$(echo "$user + $sys" | bc)\t$((rss / 1024))" >> "$RESULTS"
}

for rep in $(seq "$REPS"); do
  for tool in $TOOLS; do
    target="$TMPB/restore-$tool"
    rm -rf "$target"
    if [ "$tool" = before ]; then
      timed before restore "${BASE[@]}" -r "$crepo" restore latest --target "$target"
      timed before check "${BASE[@]}" -r "$crepo" check --read-data
    elif [ "$tool" = cairn ]; then
      timed cairn restore "${CAIRN[@]}" -r "$crepo" restore latest --target "$target"
      timed cairn check "${CAIRN[@]}" -r "$crepo" check --read-data
    else
      timed restic restore "$RESTIC" -r "$rrepo" restore latest --target "$target"
      timed restic check "$RESTIC" -r "$rrepo" check --read-data
    fi
    if [ "$rep" = 1 ] && [ "${VERIFY:-0}" = 1 ]; then diff -r "$TREE" "$target$TREE" > /dev/null && echo "$tool restore: identical" >&2; fi
    rm -rf "$target"
  done
done

node - "$RESULTS" "$FILES" "$REPS" "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'NODE'
const [file, files, reps, before, after] = process.argv.slice(2);
const rows = require("fs").readFileSync(file, "utf8").trim().split("\n").map((l) => l.split("\t"));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const cell = (tool, step, col) => median(rows.filter((r) => r[0] === tool && r[1] === step).map((r) => Number(r[col])));
console.log(`${files} files of 0-8 KiB in 200 directories; medians of ${reps}; load average before ${before}, after ${after}\n`);
console.log("| step | Cairn wall s / CPU s / peak RSS MiB | restic 0.18.1 | ratio wall / CPU / RSS |");
console.log("| --- | --- | --- | --- |");
for (const [step, name] of [["restore", "full restore"], ["check", "check --read-data"]]) {
  const c = [2, 3, 4].map((i) => cell("cairn", step, i)), r = [2, 3, 4].map((i) => cell("restic", step, i));
  if (rows.some((r) => r[0] === "before")) {
    const b = [2, 3, 4].map((i) => cell("before", step, i));
    console.log(`| ${name}, before | ${b[0].toFixed(2)} / ${b[1].toFixed(2)} / ${b[2]} | ${r[0].toFixed(2)} / ${r[1].toFixed(2)} / ${r[2]} | ${b.map((v, i) => (v / r[i]).toFixed(2)).join(" / ")} |`);
  }
  console.log(`| ${name} | ${c[0].toFixed(2)} / ${c[1].toFixed(2)} / ${c[2]} | ${r[0].toFixed(2)} / ${r[1].toFixed(2)} / ${r[2]} | ${c.map((v, i) => (v / r[i]).toFixed(2)).join(" / ")} |`);
}
NODE
