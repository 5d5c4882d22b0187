#!/usr/bin/env bash
# Scale (issue 12): a million small files, Cairn beside restic 0.18.1 in one run, and the
# in-memory index at ten million blobs.
#
#   npm run build && bash bench/scale.sh                     # 1,000,000 files of 0-8 KiB in 10,000 directories (hours)
#   FILES=100000 DIRS=1000 bash bench/scale.sh               # a tenth of it
#
# For each rep and tool: fresh repository, then timed under GNU time and `nice -n $NICE`:
# first backup, unchanged re-backup, backup after mutate-smallfiles.sh changed 1% of the
# files (untimed, undone after the cycle), full restore into an empty directory (diffed
# against the tree when VERIFY=1, untimed). Then the in-memory index benchmark at
# INDEX_BLOBS blobs. Prints a markdown table of medians with ratios to restic 0.18.1 and
# issue 12's aims; raw data lands in $BENCH_TMP/results/.
#
# Knobs (defaults): FILES=1000000 DIRS=10000 REPS=1 TOOLS="cairn restic18" (also restic:
# Debian's, borg) BENCH_TMP=/tmp/cairn-scale NICE=10 VERIFY=1 INDEX_BLOBS=10000000 (0: skip)
# CAIRN_JS=<checkout>/bin/cairn.js. The tree is made once per FILES/DIRS and kept in BENCH_TMP.
# The page cache is not dropped: every tool reads a warm tree.
set -uo pipefail
export LC_ALL=C
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
FILES=${FILES:-1000000}
DIRS=${DIRS:-10000}
REPS=${REPS:-1}
TOOLS=${TOOLS:-cairn restic18}
NICE=${NICE:-10}
VERIFY=${VERIFY:-1}
INDEX_BLOBS=${INDEX_BLOBS:-10000000}
TMPB=$(realpath -m "${BENCH_TMP:-/tmp/cairn-scale}")
CAIRN=(node "${CAIRN_JS:-$ROOT/bin/cairn.js}")
. "$HERE/restic18.sh"

[ -x /usr/bin/time ] && command -v bc > /dev/null || { echo "GNU time and bc are needed: apt-get install -y time bc" >&2; exit 1; }
check_tools cairn restic18 restic borg || exit 1
[ -f "$ROOT/dist/cli/main.js" ] && [ -f "$ROOT/dist/bench/index-memory.js" ] || { echo "Cairn is not built; run: npm run build" >&2; exit 1; }
case "$TMPB/" in "$(realpath "$ROOT")/"*) echo "BENCH_TMP ($TMPB) is inside the checkout; point it outside, e.g. BENCH_TMP=/tmp/cairn-scale" >&2; exit 1 ;; esac

TREE=$TMPB/tree-$FILES-$DIRS
SAVE=$TREE.change-originals
RES=$TMPB/results
mkdir -p "$TMPB"
rm -rf "$RES"; mkdir -p "$RES/logs"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$RES/run.log" >&2; }
export CAIRN_PASSWORD=bench-password RESTIC_PASSWORD=bench-password BORG_PASSPHRASE=bench-password
export RESTIC_CACHE_DIR=$TMPB/cache/restic BORG_BASE_DIR=$TMPB/cache/borg BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

# An interrupted run may have left the 1% change in the tree: undo it before anything else.
bash "$HERE/mutate-smallfiles.sh" --revert "$TREE" "$SAVE" 2> /dev/null
if [ ! -e "$TREE.complete" ]; then
  log "making $FILES files in $DIRS directories under $TREE (once; kept for later runs)"
  rm -rf "$TREE"
  FILES=$FILES DIRS=$DIRS bash "$HERE/make-smallfiles.sh" "$TREE" 2> "$RES/logs/make-smallfiles.log" || { cat "$RES/logs/make-smallfiles.log" >&2; exit 1; }
  touch "$TREE.complete"
fi
DATA_BYTES=$(find "$TREE" -type f -printf '%s\n' | awk '{s+=$1} END{printf "%d\n", s}')

{
  echo "date_utc: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); nproc=$(nproc)"
  echo "node: $(node --version)"
  tool_versions
  echo "tree: $FILES files, $DIRS directories, $DATA_BYTES bytes ($TREE)"
  echo "load_before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: FILES=$FILES DIRS=$DIRS REPS=$REPS TOOLS='$TOOLS' NICE=$NICE VERIFY=$VERIFY INDEX_BLOBS=$INDEX_BLOBS"
} > "$RES/env.txt" 2>&1
cat "$RES/env.txt" >&2
tool_labels > "$RES/labels.tsv"

printf 'tool\trep\top\twall_s\tuser_s\tsys_s\tmaxrss_kib\trc\n' > "$RES/ops.tsv"
printf 'tool\trep\tstage\tbytes\n' > "$RES/sizes.tsv"
: > "$RES/commands.txt"
# measure TOOL REP OP cmd... : wall clock, CPU and peak RSS from GNU time; a failure is recorded with its status.
measure() {
  local tool=$1 rep=$2 op=$3; shift 3
  echo "[$tool rep$rep $op] $*" >> "$RES/commands.txt"
  rm -f "$RES/time.tmp"
  /usr/bin/time -f '%e %U %S %M' -o "$RES/time.tmp" nice -n "$NICE" "$@" > "$RES/logs/$tool-rep$rep-$op.log" 2>&1 < /dev/null
  local rc=$? wall user sys rss
  read -r wall user sys rss < <(tail -n 1 "$RES/time.tmp" 2> /dev/null)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$rep" "$op" "${wall:-NA}" "${user:-NA}" "${sys:-NA}" "${rss:-NA}" "$rc" >> "$RES/ops.tsv"
  [ "$rc" = 0 ] || log "FAILED: $tool rep$rep $op exited with $rc (see $RES/logs/$tool-rep$rep-$op.log)"
}
record() { printf '%s\t%s\t%s\tNA\tNA\tNA\tNA\t%s\n' "$1" "$2" "$3" "$4" >> "$RES/ops.tsv"; }
reposize() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(du -sb "$4" 2> /dev/null | cut -f1)" >> "$RES/sizes.tsv"; }

for rep in $(seq 1 "$REPS"); do
  for tool in $TOOLS; do
    REPO=$TMPB/repo-$tool; RESTORE=$TMPB/restore-$tool
    log "cycle $tool rep $rep"
    rm -rf "$REPO" "$RESTORE" "$TMPB/cache"; mkdir -p "$TMPB/cache" "$RESTORE"
    case $tool in
      cairn)
        init=("${CAIRN[@]}" -r "$REPO" init)
        backup() { BK=("${CAIRN[@]}" -r "$REPO" backup "$TREE"); }
        restore=("${CAIRN[@]}" -r "$REPO" restore latest --target "$RESTORE") ;;
      restic18|restic)
        [ "$tool" = restic18 ] && R=$RESTIC18 || R=$RESTIC_DEB
        init=("$R" -r "$REPO" init)
        backup() { BK=("$R" -r "$REPO" backup "$TREE"); }
        restore=("$R" -r "$REPO" restore latest --target "$RESTORE") ;;
      borg)
        init=(borg init --encryption repokey "$REPO")
        backup() { BK=(borg create "$REPO::$1" "$TREE"); }
        restore=(env -C "$RESTORE" borg extract "$REPO::changed") ;;
    esac
    if ! "${init[@]}" > "$RES/logs/$tool-rep$rep-init.log" 2>&1 < /dev/null; then
      log "FAILED: $tool init (see $RES/logs/$tool-rep$rep-init.log)"
      for op in initial noop changed restore restore_diff; do record "$tool" "$rep" "$op" init-failed; done
      continue
    fi
    sync
    backup initial; measure "$tool" "$rep" initial "${BK[@]}"
    reposize "$tool" "$rep" after_initial "$REPO"
    backup noop; measure "$tool" "$rep" noop "${BK[@]}"
    bash "$HERE/mutate-smallfiles.sh" "$TREE" "$SAVE" 1 2>> "$RES/logs/mutate.log" || log "FAILED: mutate-smallfiles.sh ($tool rep$rep)"
    sync
    backup changed; measure "$tool" "$rep" changed "${BK[@]}"
    reposize "$tool" "$rep" after_changed "$REPO"
    sync
    measure "$tool" "$rep" restore "${restore[@]}"
    if [ "$VERIFY" = 1 ]; then
      # Every tool restores the absolute source path under the target.
      if diff -r "$RESTORE$TREE" "$TREE" > "$RES/logs/$tool-rep$rep-diff.log" 2>&1; then drc=0; else drc=$?; log "FAILED: $tool rep$rep restore differs from the tree (see $RES/logs/$tool-rep$rep-diff.log)"; fi
      record "$tool" "$rep" restore_diff "$drc"
    fi
    bash "$HERE/mutate-smallfiles.sh" --revert "$TREE" "$SAVE" 2>> "$RES/logs/mutate.log" || { log "FAILED: could not undo the 1% change; the tree is no longer the generated one"; exit 1; }
    rm -rf "$RESTORE" "$REPO"
  done
done
rm -rf "$TMPB/cache"

if [ "$INDEX_BLOBS" -gt 0 ]; then
  log "in-memory index benchmark ($INDEX_BLOBS blobs)"
  if nice -n "$NICE" node --expose-gc "$ROOT/dist/bench/index-memory.js" "$INDEX_BLOBS" --json > "$RES/index-memory.json" 2> "$RES/logs/index-memory.log"; then :; else
    log "FAILED: index-memory benchmark (see $RES/logs/index-memory.log)"; rm -f "$RES/index-memory.json"
  fi
fi
echo "load_after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$RES/env.txt"

node - "$RES" "$REPS" "$FILES" "$DIRS" "$DATA_BYTES" <<'NODE' | tee "$RES/table.md"
'use strict';
const fs = require('fs');
const path = require('path');
const [RES, REPS, FILES, DIRS, BYTES] = process.argv.slice(2);
const read = (f) => { try { return fs.readFileSync(path.join(RES, f), 'utf8'); } catch { return ''; } };
const tsv = (f) => {
  const [h, ...rows] = read(f).trim().split('\n').map((l) => l.split('\t'));
  return rows.filter((r) => r.length > 1).map((r) => Object.fromEntries(h.map((k, i) => [k, r[i]])));
};
const median = (a) => { const b = [...a].sort((x, y) => x - y); const m = b.length >> 1; return b.length % 2 ? b[m] : (b[m - 1] + b[m]) / 2; };
const labels = Object.fromEntries(read('labels.tsv').trim().split('\n').filter(Boolean).map((l) => l.split('\t')));
const TOOLS = Object.keys(labels);
const ops = tsv('ops.tsv');
const sizes = tsv('sizes.tsv');
const env = read('env.txt');
let index = null; try { index = JSON.parse(read('index-memory.json')); } catch {}

function cell(tool, op, pick) {
  const rows = ops.filter((o) => o.tool === tool && o.op === op);
  if (!rows.length) return { text: 'not run' };
  const bad = rows.find((o) => o.rc !== '0');
  if (bad) return { text: `FAILED (${/^\d+$/.test(bad.rc) ? 'rc ' + bad.rc : bad.rc})` };
  const v = rows.map(pick);
  return v.every(Number.isFinite) ? { value: median(v) } : { text: 'n/a' };
}
function sizeCell(tool, stage) {
  const v = sizes.filter((s) => s.tool === tool && s.stage === stage).map((s) => Number(s.bytes) / 1e6);
  return v.length && v.every(Number.isFinite) ? { value: median(v) } : { text: 'not run' };
}
const wall = (o) => Number(o.wall_s);
const cpu = (o) => Number(o.user_s) + Number(o.sys_s);
const rss = (o) => Number(o.maxrss_kib) / 1024;
const rows = [];
// aim: the most Cairn / restic 0.18.1 may be (issue 12); the 1% change takes the 5% change's aim.
const timed = (op, title, aim) => {
  rows.push({ name: `${title}, wall s`, digits: 2, aim, cells: TOOLS.map((t) => cell(t, op, wall)) });
  rows.push({ name: `${title}, CPU s (user+sys)`, digits: 2, aim, cells: TOOLS.map((t) => cell(t, op, cpu)) });
  rows.push({ name: `${title}, peak RSS MiB`, digits: 0, aim: 1, cells: TOOLS.map((t) => cell(t, op, rss)) });
};
timed('initial', 'first backup', 0.67);
rows.push({ name: 'repository after first backup, MB (du -sb)', digits: 1, aim: 1, cells: TOOLS.map((t) => sizeCell(t, 'after_initial')) });
timed('noop', 'unchanged re-backup', 1);
timed('changed', 'backup after changing 1% of the files', 0.67);
rows.push({ name: 'repository after that backup, MB (du -sb)', digits: 1, aim: 1, cells: TOOLS.map((t) => sizeCell(t, 'after_changed')) });
timed('restore', 'full restore to an empty directory', 0.67);
rows.push({
  name: 'restore identical to the tree (diff -r)',
  cells: TOOLS.map((t) => {
    const d = ops.filter((o) => o.tool === t && o.op === 'restore_diff');
    if (!d.length) return { text: 'not checked' };
    const same = d.filter((o) => o.rc === '0').length;
    return { text: same === d.length ? `yes (${same}/${d.length})` : `FAILED: ${d.length - same}/${d.length} differ` };
  }),
});

const fmt = (c, d) => ('value' in c ? c.value.toFixed(d) : c.text);
const ratioOf = (a, b) => (a && b && 'value' in a && 'value' in b && b.value > 0 ? a.value / b.value : null);
const ratio = (a, b) => { const r = ratioOf(a, b); return r === null ? '–' : r.toFixed(2); };
const at = (r, t) => r.cells[TOOLS.indexOf(t)];
const others = TOOLS.filter((t) => t !== 'cairn');
const out = [];
out.push(`${Number(FILES).toLocaleString('en-US')} files of 0-8 KiB in ${Number(DIRS).toLocaleString('en-US')} directories, ${(Number(BYTES) / 1e6).toFixed(1)} MB; ${REPS} rep(s), cells are medians; MB = 10^6 bytes.`);
out.push(`Load average before ${(/load_before: (.*)/.exec(env) || [])[1]}, after ${(/load_after: (.*)/.exec(env) || [])[1]}. Ratios are Cairn / the other tool (< 1: Cairn faster or smaller); the aims are ratios to restic 0.18.1.`);
out.push('');
out.push(`| measurement | ${TOOLS.map((t) => labels[t]).join(' | ')} | ${others.map((t) => `cairn/${labels[t]}`).join(' | ')} | aim (vs restic 0.18.1) |`);
out.push(`|---|${TOOLS.map(() => '---|').join('')}${others.map(() => '---|').join('')}---|`);
for (const r of rows) {
  const x = ratioOf(at(r, 'cairn'), at(r, 'restic18'));
  const aim = r.aim === undefined ? '' : x === null ? `≤ ${r.aim}: –` : `≤ ${r.aim}: ${Number(x.toFixed(2)) <= r.aim ? 'met' : 'NOT met'}`;
  out.push(`| ${r.name} | ${r.cells.map((c) => fmt(c, r.digits)).join(' | ')} | ${others.map((t) => ratio(at(r, 'cairn'), at(r, t))).join(' | ')} | ${aim} |`);
}
if (index) {
  const ok = index.processPerBlob < 60;
  out.push('');
  out.push(`In-memory index (Cairn's BlobIndex, bench/index-memory.ts) at ${index.blobs.toLocaleString('en-US')} blobs in ${index.packs.toLocaleString('en-US')} packs: ${index.processPerBlob.toFixed(1)} bytes per blob as the process sees it (heap + off-heap growth; BlobIndex.byteSize says ${index.byteSizePerBlob.toFixed(1)}); aim < 60: ${ok ? 'met' : 'NOT met'}. has() ${Math.round(index.hitLookupsPerSecond).toLocaleString('en-US')} lookups/s.`);
}
console.log(out.join('\n'));
NODE
log "results in $RES (ops.tsv, sizes.tsv, table.md, index-memory.json, logs/)"
