#!/usr/bin/env bash
# Cairn side by side with restic 0.18.1, Debian's restic (0.14) and borg, in one run, on the
# shared anchor dataset.
#
#   npm run bench            (builds, then runs this script)
#   bash bench/run.sh        (after npm run build)
#
# For each tool and repetition: fresh repository and fresh copy of the dataset at the same
# live path, then timed: first backup, unchanged re-backup, backup after the 5% mutation,
# full restore (checked with diff -r), full data check; plus repository sizes and the
# in-memory index benchmark. Prints a markdown table with ratios against both restic versions
# and the aims of issue 12 (against 0.18.1); raw data lands in $BENCH_TMP/results/.
#
# Env knobs (defaults):
#   REPS=1                    fresh-repository cycles per tool (cells are medians)
#   SETTLE_S=65               seconds each restore waits after sync, past ext4's window for recently freed inodes
#   DATASET_SIZE=1073741824   dataset bytes; 67108864 (64 MiB) for a quick smoke run
#   SEED=anchors-v1           dataset seed (the mutation seed is mutate-dataset.sh's own)
#   TOOLS="cairn restic18 restic borg"   restic18: restic 0.18.1 (bench/restic18.sh: RESTIC18,
#                             built into the tool cache when missing); restic: Debian's (RESTIC_DEB)
#   INDEX_BLOBS=10000000      blobs in the in-memory index benchmark
#   BENCH_TMP=${TMPDIR:-/tmp}/cairn-bench   dataset, repositories and results (never inside the checkout)
#   SHARED_BENCH=<checkout>/../shared/bench  where make-dataset.sh and mutate-dataset.sh live
set -uo pipefail
export LC_ALL=C

CHECKOUT=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel) || { echo "bench/run.sh must run from a git checkout of Cairn" >&2; exit 1; }
SHARED_BENCH=${SHARED_BENCH:-$CHECKOUT/../shared/bench}
REPS=${REPS:-1}
SEED=${SEED:-anchors-v1}
TOOLS=${TOOLS:-cairn restic18 restic borg}
INDEX_BLOBS=${INDEX_BLOBS:-10000000}
export DATASET_SIZE=${DATASET_SIZE:-1073741824}
TMP=${BENCH_TMP:-${TMPDIR:-/tmp}/cairn-bench}
INSTALL="apt-get install -y restic borgbackup hyperfine time bc"
. "$CHECKOUT/bench/restic18.sh"

# ---------------------------------------------------------------- preconditions
missing=()
for c in node bc diff du; do command -v $c >/dev/null || missing+=("$c"); done
[ -x /usr/bin/time ] || missing+=("/usr/bin/time (GNU time)")
check_tools cairn restic18 restic borg || exit 1
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}" >&2
  echo "install them with: $INSTALL" >&2
  exit 1
fi
# The same Node as the product (22 or 24; eval "$(scripts/node.sh)" puts one first on PATH).
bash "$CHECKOUT/scripts/node.sh" --check || exit 1
for s in make-dataset.sh mutate-dataset.sh; do
  [ -f "$SHARED_BENCH/$s" ] || { echo "cannot find $SHARED_BENCH/$s; set SHARED_BENCH to the shared bench folder" >&2; exit 1; }
done
[ -f "$CHECKOUT/dist/cli/main.js" ] && [ -f "$CHECKOUT/dist/bench/index-memory.js" ] || { echo "Cairn is not built; run: npm run build (or use npm run bench)" >&2; exit 1; }
TMP=$(realpath -m "$TMP")
case "$TMP/" in "$(realpath "$CHECKOUT")/"*) echo "BENCH_TMP ($TMP) is inside the checkout; point it outside, e.g. BENCH_TMP=/tmp/cairn-bench" >&2; exit 1 ;; esac
mkdir -p "$TMP"

RES=$TMP/results
rm -rf "$RES"; mkdir -p "$RES/logs"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$RES/run.log" >&2; }
now() { date +%s.%N; }
treebytes() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END{printf "%d\n", s}'; }

CAIRN=(node "$CHECKOUT/bin/cairn.js")
export CAIRN_PASSWORD=bench-password RESTIC_PASSWORD=bench-password BORG_PASSPHRASE=bench-password
export RESTIC_CACHE_DIR=$TMP/cache/restic BORG_BASE_DIR=$TMP/cache/borg BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

# ---------------------------------------------------------------- environment
{
  echo "date_utc: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$CHECKOUT" rev-parse --short HEAD)$(git -C "$CHECKOUT" diff --quiet HEAD -- engine backends cli || echo ' (engine/backends/cli modified)')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); nproc=$(nproc)"
  echo "node: $(node --version)"
  tool_versions
  echo "load_before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: REPS=$REPS DATASET_SIZE=$DATASET_SIZE SEED=$SEED TOOLS='$TOOLS' INDEX_BLOBS=$INDEX_BLOBS BENCH_TMP=$TMP"
} > "$RES/env.txt" 2>&1
cat "$RES/env.txt" >&2

# Column labels: which version and which compression each tool ran with.
declare -A LABEL_DETAIL=([cairn]="zstd:3, init default" [restic18]="repo v2, compression auto" [restic]="repo v2, compression auto" [borg]="repokey, lz4 default")
tool_labels > "$RES/labels.tsv"

# ---------------------------------------------------------------- dataset
log "generating dataset ($DATASET_SIZE bytes, seed $SEED) into $TMP/dataset"
rm -rf "$TMP/dataset"
"$SHARED_BENCH/make-dataset.sh" "$TMP/dataset" "$SEED" 2> "$RES/logs/make-dataset.log" || { cat "$RES/logs/make-dataset.log" >&2; exit 1; }
DATA_BYTES=$(treebytes "$TMP/dataset"); DATA_FILES=$(find "$TMP/dataset" -type f | wc -l)
printf 'bytes\t%s\nfiles\t%s\n' "$DATA_BYTES" "$DATA_FILES" > "$RES/dataset.tsv"
log "dataset: $DATA_BYTES bytes in $DATA_FILES files"
sync

# ---------------------------------------------------------------- measurement
printf 'tool\trep\top\twall_s\tuser_s\tsys_s\tmaxrss_kib\trc\n' > "$RES/ops.tsv"
printf 'tool\trep\tstage\tbytes\n' > "$RES/sizes.tsv"
: > "$RES/commands.txt"

# measure TOOL REP OP cmd... : wall clock from date around GNU time, CPU and peak RSS from GNU time.
# A failing command is recorded with its exit status, never hidden.
measure() {
  local tool=$1 rep=$2 op=$3; shift 3
  echo "[$tool rep$rep $op] $*" >> "$RES/commands.txt"
  rm -f "$RES/time.tmp"
  local t0 t1 rc
  t0=$(now)
  /usr/bin/time -v -o "$RES/time.tmp" "$@" > "$RES/logs/$tool-rep$rep-$op.log" 2>&1 < /dev/null; rc=$?
  t1=$(now)
  local user sys rss
  user=$(awk -F': ' '/User time \(seconds\)/{print $2}' "$RES/time.tmp" 2>/dev/null)
  sys=$(awk -F': ' '/System time \(seconds\)/{print $2}' "$RES/time.tmp" 2>/dev/null)
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$RES/time.tmp" 2>/dev/null)
  printf '%s\t%s\t%s\t%.3f\t%s\t%s\t%s\t%s\n' "$tool" "$rep" "$op" "$(echo "$t1 - $t0" | bc)" "${user:-NA}" "${sys:-NA}" "${rss:-NA}" "$rc" >> "$RES/ops.tsv"
  [ "$rc" = 0 ] || log "FAILED: $tool rep$rep $op exited with $rc (see $RES/logs/$tool-rep$rep-$op.log)"
}
# record TOOL REP OP RC : an op that was not run (n/a) or could not run.
record() { printf '%s\t%s\t%s\tNA\tNA\tNA\tNA\t%s\n' "$1" "$2" "$3" "$4" >> "$RES/ops.tsv"; }
reposize() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(du -sb "$4" 2>/dev/null | cut -f1)" >> "$RES/sizes.tsv"; }

LIVE=$TMP/live
for rep in $(seq 1 "$REPS"); do
  for tool in $TOOLS; do
    REPO=$TMP/repo-$tool; RESTORE=$TMP/restore-$tool
    log "cycle $tool rep $rep"
    rm -rf "$REPO" "$RESTORE" "$LIVE" "$TMP/cache"; mkdir -p "$TMP/cache" "$RESTORE"
    cp -a "$TMP/dataset" "$LIVE"; sync
    case $tool in
      cairn)
        export CAIRN_REPOSITORY=$REPO
        init=("${CAIRN[@]}" init)
        backup() { BK=("${CAIRN[@]}" backup "$LIVE"); }
        restore=("${CAIRN[@]}" restore latest --target "$RESTORE")
        check=("${CAIRN[@]}" check --read-data) ;;
      restic18|restic)
        [ "$tool" = restic18 ] && R=$RESTIC18 || R=$RESTIC_DEB
        init=("$R" -r "$REPO" init)
        backup() { BK=("$R" -r "$REPO" backup "$LIVE"); }
        restore=("$R" -r "$REPO" restore latest --target "$RESTORE")
        check=("$R" -r "$REPO" check --read-data) ;;
      borg)
        init=(borg init --encryption repokey "$REPO")
        backup() { BK=(borg create "$REPO::$1" "$LIVE"); }
        restore=(env -C "$RESTORE" borg extract "$REPO::incremental")
        check=(borg check --verify-data "$REPO") ;;
    esac
    echo "[$tool rep$rep init] ${init[*]}" >> "$RES/commands.txt"
    if ! "${init[@]}" > "$RES/logs/$tool-rep$rep-init.log" 2>&1 < /dev/null; then
      log "FAILED: $tool init (see $RES/logs/$tool-rep$rep-init.log)"
      for op in initial noop incremental restore restore_diff check; do record "$tool" "$rep" "$op" init-failed; done
      continue
    fi
    backup initial; measure "$tool" "$rep" initial "${BK[@]}"
    reposize "$tool" "$rep" after_initial "$REPO"
    backup noop; measure "$tool" "$rep" noop "${BK[@]}"
    "$SHARED_BENCH/mutate-dataset.sh" "$LIVE" 2> "$RES/logs/$tool-rep$rep-mutate.log" || log "FAILED: mutate-dataset.sh ($tool rep$rep)"
    sync
    backup incremental; measure "$tool" "$rep" incremental "${BK[@]}"
    reposize "$tool" "$rep" after_incremental "$REPO"
    sync
    # ext4 skips an inode freed less than 60 s before (recently_deleted; 360 s while its inode
    # table block is dirty, hence the sync), which costs most on a file system without a
    # journal, like this machine's: a restore soon after an earlier cycle's restore was deleted
    # paid for it in system time (perf: a third of the samples of a local restore started
    # right after one was deleted). Every restore starts past that window.
    sleep "${SETTLE_S:-65}"
    measure "$tool" "$rep" restore "${restore[@]}"
    # All three tools restore the absolute source path under the target.
    if diff -r "$RESTORE$LIVE" "$LIVE" > "$RES/logs/$tool-rep$rep-diff.log" 2>&1; then drc=0; else drc=$?; log "FAILED: $tool rep$rep restore differs from the live tree (see $RES/logs/$tool-rep$rep-diff.log)"; fi
    record "$tool" "$rep" restore_diff "$drc"
    rm -rf "$RESTORE"
    measure "$tool" "$rep" check "${check[@]}"
  done
done
rm -rf "$LIVE" "$TMP/cache" "$TMP"/restore-*

log "in-memory index benchmark ($INDEX_BLOBS blobs)"
if node --expose-gc "$CHECKOUT/dist/bench/index-memory.js" "$INDEX_BLOBS" --json > "$RES/index-memory.json" 2> "$RES/logs/index-memory.log"; then
  node -e 'const r=require(process.argv[1]); console.log(`bytes/blob: byteSize ${r.byteSizePerBlob.toFixed(1)}, process ${r.processPerBlob.toFixed(1)}; has() ${Math.round(r.hitLookupsPerSecond)}/s`)' "$RES/index-memory.json" | tee -a "$RES/run.log" >&2
else
  log "FAILED: index-memory benchmark (see $RES/logs/index-memory.log)"; rm -f "$RES/index-memory.json"
fi
echo "load_after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$RES/env.txt"

# ---------------------------------------------------------------- table
node - "$RES" "$REPS" <<'NODE' | tee "$RES/table.md"
'use strict';
const fs = require('fs');
const path = require('path');
const [RES, REPS] = process.argv.slice(2);
const read = (f) => { try { return fs.readFileSync(path.join(RES, f), 'utf8'); } catch { return ''; } };
const tsv = (f) => {
  const [h, ...rows] = read(f).trim().split('\n').map((l) => l.split('\t'));
  return rows.filter((r) => r.length > 1).map((r) => Object.fromEntries(h.map((k, i) => [k, r[i]])));
};
const median = (a) => { const b = [...a].sort((x, y) => x - y); const m = b.length >> 1; return b.length % 2 ? b[m] : (b[m - 1] + b[m]) / 2; };
const TOOLS = ['cairn', 'restic18', 'restic', 'borg'];
const labels = Object.fromEntries(read('labels.tsv').trim().split('\n').map((l) => l.split('\t')));
const ops = tsv('ops.tsv');
const sizes = tsv('sizes.tsv');
const ds = Object.fromEntries(read('dataset.tsv').trim().split('\n').map((l) => l.split('\t')));
let index = null; try { index = JSON.parse(read('index-memory.json')); } catch {}

// A cell: { value } when every rep succeeded, else { text } saying what went wrong.
function cell(tool, op, pick) {
  const rows = ops.filter((o) => o.tool === tool && o.op === op);
  if (!rows.length) return { text: 'not run' };
  const bad = rows.find((o) => o.rc !== '0');
  if (bad) return { text: bad.rc === 'n/a' ? 'n/a' : `FAILED (${/^\d+$/.test(bad.rc) ? 'rc ' + bad.rc : bad.rc})` };
  const v = rows.map(pick);
  return v.every(Number.isFinite) ? { value: median(v) } : { text: 'n/a' };
}
function sizeCell(tool, pick) {
  const reps = [...new Set(sizes.filter((s) => s.tool === tool).map((s) => s.rep))];
  const v = reps.map((rep) => pick(Object.fromEntries(sizes.filter((s) => s.tool === tool && s.rep === rep).map((s) => [s.stage, Number(s.bytes)]))));
  return v.length && v.every(Number.isFinite) ? { value: median(v) } : { text: v.length ? 'n/a' : 'not run' };
}
const wall = (o) => Number(o.wall_s);
const cpu = (o) => Number(o.user_s) + Number(o.sys_s);
const rss = (o) => Number(o.maxrss_kib) / 1024;
const MB = 1e6;
const rows = [];
// aim: the most Cairn / restic 0.18.1 may be on this row (issue 12); none where there is no aim.
const add = (name, digits, f, aim) => rows.push({ name, digits, aim, cells: TOOLS.map(f) });
// Time aims: 0.67 for the heavy steps, 1.0 for the unchanged re-backup; memory never above restic's.
const timed = (op, title, timeAim) => {
  add(`${title}, wall s`, 2, (t) => cell(t, op, wall), timeAim);
  add(`${title}, CPU s (user+sys)`, 2, (t) => cell(t, op, cpu), timeAim);
  add(`${title}, peak RSS MiB`, 0, (t) => cell(t, op, rss), 1);
};
timed('initial', 'first backup', 0.67);
add('repository size after first backup, MB (du -sb)', 1, (t) => sizeCell(t, (s) => s.after_initial / MB), 1);
timed('noop', 'unchanged re-backup (no-op)', 1);
timed('incremental', 'backup after 5% mutation', 0.67);
add('repository size after that backup, MB (du -sb)', 1, (t) => sizeCell(t, (s) => s.after_incremental / MB), 1);
add('repository growth from that backup, MB', 1, (t) => sizeCell(t, (s) => (s.after_incremental - s.after_initial) / MB));
timed('restore', 'full restore to a fresh dir', 0.67);
rows.push({
  name: `restore identical to the live tree (diff -r)`,
  cells: TOOLS.map((t) => {
    const d = ops.filter((o) => o.tool === t && o.op === 'restore_diff');
    const r = ops.filter((o) => o.tool === t && o.op === 'restore');
    if (!d.length) return { text: 'not run' };
    const same = d.filter((o, i) => o.rc === '0' && r[i]?.rc === '0').length;
    return { text: same === d.length ? `yes (${same}/${d.length})` : `FAILED: ${d.length - same}/${d.length} differ or failed` };
  }),
});
timed('check', 'full data check', 0.67);
const INDEX_AIM = 60;
rows.push({
  name: `in-memory index, bytes per blob (${index ? index.blobs.toLocaleString('en-US') : '?'} blobs; aim < ${INDEX_AIM})`,
  digits: 1,
  cells: TOOLS.map((t) => (t !== 'cairn' ? { text: 'n/a' } : index ? { value: index.processPerBlob } : { text: 'FAILED' })),
});

const fmt = (c, d) => ('value' in c ? c.value.toFixed(d) : c.text);
const ratioOf = (a, b) => ('value' in a && 'value' in b && b.value > 0 ? a.value / b.value : null);
const ratio = (a, b) => { const r = ratioOf(a, b); return r === null ? '–' : r.toFixed(2); };
// Whether the aim holds: compared at the two decimals the table shows.
const aimCell = (r, c, r18) => {
  if (r.name.startsWith('in-memory index')) return 'value' in c ? `< ${INDEX_AIM}: ${c.value < INDEX_AIM ? 'met' : 'NOT met'}` : '–';
  if (r.aim === undefined) return '';
  const x = ratioOf(c, r18);
  return x === null ? `≤ ${r.aim}: –` : `≤ ${r.aim}: ${Number(x.toFixed(2)) <= r.aim ? 'met' : 'NOT met'}`;
};
const out = [];
out.push(`Dataset: ${ds.bytes} bytes in ${ds.files} files; ${REPS} rep(s), cells are medians; MB = 10^6 bytes.`);
out.push('Ratios are Cairn divided by the other tool: for times, CPU, memory and sizes, a ratio < 1 means Cairn is faster (or smaller). The aims (issue 12) are ratios to restic 0.18.1.');
if (index) out.push(`In-memory index: BlobIndex.byteSize gives ${index.byteSizePerBlob.toFixed(1)} bytes/blob; the table shows process memory growth (heapUsed + external) per blob; has() ${Math.round(index.hitLookupsPerSecond).toLocaleString('en-US')} lookups/s.`);
out.push('');
const version = (t) => (labels[t] || { restic18: 'restic 0.18.1', restic: 'restic, Debian' }[t] || t).split(' (')[0];
out.push(`| measurement | ${TOOLS.map((t) => labels[t] || t).join(' | ')} | cairn/${version('restic18')} | aim (vs ${version('restic18')}) | cairn/${version('restic')} | cairn/borg |`);
out.push('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const [c, r18, re, b] = r.cells;
  out.push(`| ${r.name} | ${r.cells.map((x) => fmt(x, r.digits)).join(' | ')} | ${ratio(c, r18)} | ${aimCell(r, c, r18)} | ${ratio(c, re)} | ${ratio(c, b)} |`);
}
console.log(out.join('\n'));
NODE
log "results in $RES (ops.tsv, sizes.tsv, table.md, index-memory.json, logs/)"
