#!/usr/bin/env bash
# Cairn side by side with restic 0.18.1 and Debian's restic (0.14) on remote destinations, in one run: MinIO (S3) and
# OpenSSH's SFTP server, both started here on free loopback ports and stopped at the end.
#
#   npm run bench:remote        (builds, then runs this script)
#   bash bench/run-remote.sh    (after npm run build)
#
# For each destination and tool: fresh repository and cache, then timed: first backup of
# the shared dataset and full restore (checked with diff -r). Every S3 request goes through
# a counting proxy (bench/count-proxy.ts), so the table shows how many requests of which
# method each tool made to MinIO. Then `cairn copy` from a local repository to a MinIO one
# made with --copy-chunker-params: the first snapshot, and one after mutate-dataset.sh
# (~5% changed), whose bytes sent are set against the snapshot's size.
# Prints a markdown table; raw data lands in $BENCH_TMP/results-remote/.
#
# Env knobs (defaults):
#   DATASET_SIZE=268435456    dataset bytes (256 MiB); 1073741824 for the size run.sh uses
#   SEED=anchors-v1           dataset seed
#   TOOLS="cairn restic18 restic"   restic18: restic 0.18.1 (bench/restic18.sh: RESTIC18, built into
#                             the tool cache when missing); restic: Debian's (RESTIC_DEB)
#   DESTS="s3 sftp"           which destinations to run
#   COPY=1                    0 skips the `cairn copy` to MinIO
#   SETTLE_S=65               seconds each restore waits after sync, past ext4's window for recently freed inodes
#   BENCH_TMP=${TMPDIR:-/tmp}/cairn-bench   work files and results (never inside the checkout)
#   SHARED_BENCH=<checkout>/../shared/bench  where make-dataset.sh and mutate-dataset.sh live
#   MINIO_BIN=${XDG_CACHE_HOME:-~/.cache}/cairn/bin/minio   built by .ci/run (go install github.com/minio/minio@latest)
set -uo pipefail
export LC_ALL=C

CHECKOUT=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel) || { echo "bench/run-remote.sh must run from a git checkout of Cairn" >&2; exit 1; }
SHARED_BENCH=${SHARED_BENCH:-$CHECKOUT/../shared/bench}
SEED=${SEED:-anchors-v1}
export DATASET_SIZE=${DATASET_SIZE:-268435456}
TOOLS=${TOOLS:-cairn restic18 restic}
DESTS=${DESTS:-s3 sftp}
. "$CHECKOUT/bench/restic18.sh"
TMP=${BENCH_TMP:-${TMPDIR:-/tmp}/cairn-bench}
MINIO_BIN=${MINIO_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin/minio}

# ---------------------------------------------------------------- preconditions
missing=()
for c in node bc diff curl ssh ssh-keygen; do command -v $c >/dev/null || missing+=("$c"); done
check_tools cairn restic18 restic || exit 1
for d in $DESTS; do case $d in s3|sftp) ;; *) echo "unknown destination '$d' in DESTS; use any of: s3 sftp" >&2; exit 1 ;; esac; done
[ -x /usr/bin/time ] || missing+=("/usr/bin/time (GNU time)")
[ -x /usr/sbin/sshd ] || missing+=("/usr/sbin/sshd (openssh-server)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}" >&2
  echo "install them with: apt-get install -y restic openssh-server openssh-client time bc curl" >&2
  exit 1
fi
[ -x "$MINIO_BIN" ] || { echo "$MINIO_BIN is missing: build it with GOBIN=$(dirname "$MINIO_BIN") go install github.com/minio/minio@latest (bash .ci/run does this), or set MINIO_BIN" >&2; exit 1; }
# The same Node as the product (22 or 24; eval "$(scripts/node.sh)" puts one first on PATH).
bash "$CHECKOUT/scripts/node.sh" --check || exit 1
for s in make-dataset.sh mutate-dataset.sh; do
  [ -f "$SHARED_BENCH/$s" ] || { echo "cannot find $SHARED_BENCH/$s; set SHARED_BENCH to the shared bench folder" >&2; exit 1; }
done
[ -f "$CHECKOUT/dist/cli/main.js" ] && [ -f "$CHECKOUT/dist/bench/count-proxy.js" ] || { echo "Cairn is not built; run: npm run build (or use npm run bench:remote)" >&2; exit 1; }
TMP=$(realpath -m "$TMP")
case "$TMP/" in "$(realpath "$CHECKOUT")/"*) echo "BENCH_TMP ($TMP) is inside the checkout; point it outside, e.g. BENCH_TMP=/tmp/cairn-bench" >&2; exit 1 ;; esac

# Everything but the results lives under $W, which run.sh never touches.
W=$TMP/remote
RES=$TMP/results-remote
rm -rf "$W" "$RES"; mkdir -p "$W" "$RES/logs" "$RES/requests"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$RES/run.log" >&2; }
now() { date +%s.%N; }
treebytes() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END{printf "%d\n", s}'; }
freeport() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
# waitport PORT PID : until something accepts on PORT; fails if PID exits first or after 30 s.
waitport() {
  for _ in $(seq 1 300); do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

CAIRN=(node "$CHECKOUT/bin/cairn.js")
export CAIRN_PASSWORD=bench-password RESTIC_PASSWORD=bench-password CAIRN_FROM_PASSWORD=bench-password

# ---------------------------------------------------------------- servers
PIDS=()
stop_servers() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  PIDS=()
}
trap 'stop_servers; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM

MINIO_PORT=$(freeport); MINIO_CONSOLE=$(freeport); PROXY_PORT=$(freeport); SSH_PORT=$(freeport)
export AWS_ACCESS_KEY_ID=cairn-bench AWS_SECRET_ACCESS_KEY=cairn-bench-secret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off MINIO_UPDATE=off \
  "$MINIO_BIN" server "$W/minio-data" --quiet --address "127.0.0.1:$MINIO_PORT" --console-address "127.0.0.1:$MINIO_CONSOLE" > "$RES/logs/minio.log" 2>&1 &
PIDS+=($!)
waitport "$MINIO_PORT" $! || { log "MinIO did not start (see $RES/logs/minio.log)"; exit 1; }
node "$CHECKOUT/dist/bench/count-proxy.js" "$PROXY_PORT" "http://127.0.0.1:$MINIO_PORT" > "$RES/logs/proxy.log" 2>&1 &
PIDS+=($!)
waitport "$PROXY_PORT" $! || { log "the counting proxy did not start (see $RES/logs/proxy.log)"; exit 1; }
S3=http://127.0.0.1:$PROXY_PORT
# take NAME : the proxy's counts since the last take, saved as requests/NAME.json (and reset).
take() { curl -sf "$S3/__bench/take" > "$RES/requests/$1.json" || log "FAILED: could not read the proxy's counts for $1"; }

SSHD=$W/sshd; mkdir -p "$SSHD"
ssh-keygen -q -t ed25519 -N "" -C cairn-bench -f "$SSHD/host_key"
ssh-keygen -q -t ed25519 -N "" -C cairn-bench -f "$SSHD/client_key"
cp "$SSHD/client_key.pub" "$SSHD/authorized_keys"
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1-2 "$SSHD/host_key.pub")" > "$SSHD/known_hosts"
cat > "$SSHD/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $SSHD/host_key
AuthorizedKeysFile $SSHD/authorized_keys
PidFile $SSHD/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel ERROR
EOF
# sshd refuses to start without its privilege-separation directory.
[ -d /run/sshd ] || mkdir -p -m 755 /run/sshd
/usr/sbin/sshd -D -e -f "$SSHD/sshd_config" > "$RES/logs/sshd.log" 2>&1 &
PIDS+=($!)
waitport "$SSH_PORT" $! || { log "sshd did not start (see $RES/logs/sshd.log)"; exit 1; }
SSH_USER=$(id -un)
export CAIRN_SFTP_KEY_FILE=$SSHD/client_key CAIRN_SFTP_KNOWN_HOSTS=$SSHD/known_hosts
SFTP_CMD="ssh -p $SSH_PORT -i $SSHD/client_key -o UserKnownHostsFile=$SSHD/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes $SSH_USER@127.0.0.1 -s sftp"
mkdir -p "$W/sftp-data"

# ---------------------------------------------------------------- environment
{
  echo "date_utc: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$CHECKOUT" rev-parse --short HEAD)$(git -C "$CHECKOUT" diff --quiet HEAD -- engine backends cli || echo ' (engine/backends/cli modified)')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); nproc=$(nproc)"
  echo "node: $(node --version)"
  tool_versions
  echo "minio: $("$MINIO_BIN" --version 2>/dev/null | head -1)"
  echo "sshd: $(ssh -V 2>&1)"
  echo "servers: minio 127.0.0.1:$MINIO_PORT behind counting proxy 127.0.0.1:$PROXY_PORT; sshd 127.0.0.1:$SSH_PORT"
  echo "load_before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: DATASET_SIZE=$DATASET_SIZE SEED=$SEED TOOLS='$TOOLS' DESTS='$DESTS' BENCH_TMP=$TMP"
} > "$RES/env.txt" 2>&1
cat "$RES/env.txt" >&2
tool_labels > "$RES/labels.tsv"

# ---------------------------------------------------------------- dataset
log "generating dataset ($DATASET_SIZE bytes, seed $SEED)"
"$SHARED_BENCH/make-dataset.sh" "$W/dataset" "$SEED" 2> "$RES/logs/make-dataset.log" || { cat "$RES/logs/make-dataset.log" >&2; exit 1; }
DATA_BYTES=$(treebytes "$W/dataset"); DATA_FILES=$(find "$W/dataset" -type f | wc -l)
printf 'bytes\t%s\nfiles\t%s\n' "$DATA_BYTES" "$DATA_FILES" > "$RES/dataset.tsv"
log "dataset: $DATA_BYTES bytes in $DATA_FILES files"
LIVE=$W/live
cp -a "$W/dataset" "$LIVE"; sync

# ---------------------------------------------------------------- measurement
printf 'dest\ttool\top\twall_s\tuser_s\tsys_s\tmaxrss_kib\trc\n' > "$RES/ops.tsv"
: > "$RES/commands.txt"

# measure DEST TOOL OP cmd... : wall clock from date around GNU time, CPU and peak RSS from GNU time.
# A failing command is recorded with its exit status, never hidden.
measure() {
  local dest=$1 tool=$2 op=$3; shift 3
  local name=$dest-$tool-$op
  echo "[$name] $*" >> "$RES/commands.txt"
  rm -f "$RES/time.tmp"
  local t0 t1 rc
  t0=$(now)
  /usr/bin/time -v -o "$RES/time.tmp" "$@" > "$RES/logs/$name.log" 2>&1 < /dev/null; rc=$?
  t1=$(now)
  local user sys rss
  user=$(awk -F': ' '/User time \(seconds\)/{print $2}' "$RES/time.tmp" 2>/dev/null)
  sys=$(awk -F': ' '/System time \(seconds\)/{print $2}' "$RES/time.tmp" 2>/dev/null)
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$RES/time.tmp" 2>/dev/null)
  printf '%s\t%s\t%s\t%.3f\t%s\t%s\t%s\t%s\n' "$dest" "$tool" "$op" "$(echo "$t1 - $t0" | bc)" "${user:-NA}" "${sys:-NA}" "${rss:-NA}" "$rc" >> "$RES/ops.tsv"
  [ "$rc" = 0 ] || log "FAILED: $name exited with $rc (see $RES/logs/$name.log)"
  return "$rc"
}
record() { printf '%s\t%s\t%s\tNA\tNA\tNA\tNA\t%s\n' "$1" "$2" "$3" "$4" >> "$RES/ops.tsv"; }

for dest in $DESTS; do
  for tool in $TOOLS; do
    RESTORE=$W/restore
    rm -rf "$RESTORE" "$W/cache"; mkdir -p "$RESTORE" "$W/cache"
    export RESTIC_CACHE_DIR=$W/cache/restic XDG_CACHE_HOME=$W/cache
    case $dest in
      s3) LOC_CAIRN=s3:$S3/cairn-$tool; LOC_RESTIC=s3:$S3/bench-$tool ;;
      sftp) LOC_CAIRN=sftp:$SSH_USER@127.0.0.1:$SSH_PORT$W/sftp-data/$tool; LOC_RESTIC=sftp:$SSH_USER@127.0.0.1:$W/sftp-data/$tool ;;
    esac
    case $tool in
      cairn) T=("${CAIRN[@]}" -r "$LOC_CAIRN") ;;
      restic18|restic)
        [ "$tool" = restic18 ] && T=("$RESTIC18") || T=("$RESTIC_DEB")
        T+=(-r "$LOC_RESTIC"); [ "$dest" = sftp ] && T+=(-o "sftp.command=$SFTP_CMD") ;;
    esac
    log "$dest: $tool"
    [ "$dest" = s3 ] && take "$tool-before-init"
    if ! measure "$dest" "$tool" init "${T[@]}" init; then
      for op in backup restore restore_diff; do record "$dest" "$tool" "$op" init-failed; done
      continue
    fi
    [ "$dest" = s3 ] && take "$tool-init"
    sync
    measure "$dest" "$tool" backup "${T[@]}" backup "$LIVE"
    [ "$dest" = s3 ] && take "$tool-backup"
    sync
    # ext4 skips an inode freed less than 60 s before (recently_deleted; 360 s while its inode
    # table block is dirty, hence the sync), which costs most on a file system without a
    # journal, like this machine's: a restore soon after an earlier cycle's restore was deleted
    # paid for it in system time (perf: a third of the samples of a local restore started
    # right after one was deleted). Every restore starts past that window.
    sleep "${SETTLE_S:-65}"
    if measure "$dest" "$tool" restore "${T[@]}" restore latest --target "$RESTORE"; then
      [ "$dest" = s3 ] && take "$tool-restore"
      # Both tools restore the absolute source path under the target.
      if diff -r "$RESTORE$LIVE" "$LIVE" > "$RES/logs/$dest-$tool-diff.log" 2>&1; then drc=0; else drc=$?; log "FAILED: $dest $tool restore differs from the live tree (see $RES/logs/$dest-$tool-diff.log)"; fi
      record "$dest" "$tool" restore_diff "$drc"
    else
      [ "$dest" = s3 ] && take "$tool-restore"
      record "$dest" "$tool" restore_diff restore-failed
    fi
    rm -rf "$RESTORE"
  done
done

# ---------------------------------------------------------------- cairn copy to MinIO
# Local repository A holds the first snapshot; B on MinIO shares A's chunker parameters
# and blob id key. The first copy sends everything, the second only what the mutation added.
if [ "${COPY:-1}" = 1 ]; then
  log "copy: local repository -> MinIO (init --copy-chunker-params)"
  export XDG_CACHE_HOME=$W/cache
  A=$W/repo-a; B=s3:$S3/cairn-copy
  copy_ok=0
  if "${CAIRN[@]}" -r "$A" init > "$RES/logs/copy-init-a.log" 2>&1 && "${CAIRN[@]}" -r "$A" backup "$LIVE" > "$RES/logs/copy-backup-1.log" 2>&1; then
    take copy-before-init-b
    if "${CAIRN[@]}" -r "$B" init --copy-chunker-params --from-repo "$A" > "$RES/logs/copy-init-b.log" 2>&1; then copy_ok=1; else log "FAILED: init of the MinIO copy target (see $RES/logs/copy-init-b.log)"; fi
  else
    log "FAILED: local repository for the copy (see $RES/logs/copy-init-a.log, copy-backup-1.log)"
  fi
  if [ $copy_ok = 1 ]; then
    take copy-init-b
    measure copy cairn first "${CAIRN[@]}" -r "$B" --json copy --from-repo "$A" latest
    take copy-first
    "$SHARED_BENCH/mutate-dataset.sh" "$LIVE" 2> "$RES/logs/mutate.log" || log "FAILED: mutate-dataset.sh"
    "${CAIRN[@]}" -r "$A" backup "$LIVE" > "$RES/logs/copy-backup-2.log" 2>&1 || log "FAILED: backup of the mutated tree (see $RES/logs/copy-backup-2.log)"
    take copy-between
    measure copy cairn mutated "${CAIRN[@]}" -r "$B" --json copy --from-repo "$A" latest
    take copy-mutated
    printf 'bytes\t%s\n' "$(treebytes "$LIVE")" > "$RES/mutated.tsv"
  else
    record copy cairn first init-failed; record copy cairn mutated init-failed
  fi
fi

echo "load_after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$RES/env.txt"

# ---------------------------------------------------------------- table
node - "$RES" <<'NODE' | tee "$RES/table.md"
'use strict';
const fs = require('fs');
const path = require('path');
const [RES] = process.argv.slice(2);
const read = (f) => { try { return fs.readFileSync(path.join(RES, f), 'utf8'); } catch { return ''; } };
const json = (f) => { try { return JSON.parse(read(f)); } catch { return null; } };
const [h, ...lines] = read('ops.tsv').trim().split('\n').map((l) => l.split('\t'));
const ops = lines.filter((r) => r.length > 1).map((r) => Object.fromEntries(h.map((k, i) => [k, r[i]])));
const ds = Object.fromEntries(read('dataset.tsv').trim().split('\n').map((l) => l.split('\t')));
const MB = 1e6;
const bytes = Number(ds.bytes);
const labels = Object.fromEntries(read('labels.tsv').trim().split('\n').filter(Boolean).map((l) => l.split('\t')));
const TOOLS = Object.keys(labels);
const others = TOOLS.filter((t) => t !== 'cairn');
const DESTS = [...new Set(ops.map((o) => o.dest))];

// A cell: { value } when the step succeeded, else { text } saying what went wrong.
function cell(dest, tool, op, pick) {
  const o = ops.find((x) => x.dest === dest && x.tool === tool && x.op === op);
  if (!o) return { text: 'not run' };
  if (o.rc !== '0') return { text: `FAILED (${/^\d+$/.test(o.rc) ? 'rc ' + o.rc : o.rc})` };
  const v = pick(o);
  return Number.isFinite(v) ? { value: v } : { text: 'n/a' };
}
const wall = (o) => Number(o.wall_s);
const cpu = (o) => Number(o.user_s) + Number(o.sys_s);
const rss = (o) => Number(o.maxrss_kib) / 1024;
const fmt = (c, d) => ('value' in c ? c.value.toFixed(d) : c.text);
const ratio = (a, b) => ('value' in a && 'value' in b && b.value > 0 ? (a.value / b.value).toFixed(2) : '–');
const methods = (r) => Object.entries(r.byMethod).sort(([a], [b]) => (a < b ? -1 : 1)).map(([m, n]) => `${m} ${n}`).join(', ');

const out = [];
out.push(`Dataset: ${ds.bytes} bytes in ${ds.files} files; one run; MB = 10^6 bytes. Servers on loopback, same machine.`);
out.push('Ratio = Cairn ÷ the other tool. For wall s, CPU s, RSS and requests < 1 means Cairn is faster (fewer); for MB/s > 1 means Cairn is faster.');
out.push('');
out.push(`| destination | measurement | ${TOOLS.map((t) => labels[t]).join(' | ')} | ${others.map((t) => `cairn/${labels[t]}`).join(' | ')} |`);
out.push(`|---|---|${TOOLS.map(() => '---|').join('')}${others.map(() => '---|').join('')}`);
// A row of cells per tool, then Cairn's ratio to each other tool; text rows leave the ratios empty.
const row = (dest, name, digits, f) => {
  const c = Object.fromEntries(TOOLS.map((t) => [t, f(t)]));
  out.push(`| ${dest} | ${name} | ${TOOLS.map((t) => fmt(c[t], digits)).join(' | ')} | ${others.map((t) => (c.cairn ? ratio(c.cairn, c[t]) : '–')).join(' | ')} |`);
};
const textRow = (dest, name, f) => out.push(`| ${dest} | ${name} | ${TOOLS.map(f).join(' | ')} |${others.map(() => ' |').join('')}`);
for (const [dest, label] of [['s3', 'MinIO (S3)'], ['sftp', 'SFTP (sshd)']].filter(([d]) => DESTS.includes(d))) {
  for (const [op, title] of [['backup', 'first backup'], ['restore', 'full restore']]) {
    row(label, `${title}, wall s`, 2, (t) => cell(dest, t, op, wall));
    row(label, `${title}, MB/s`, 1, (t) => cell(dest, t, op, (o) => bytes / MB / wall(o)));
    row(label, `${title}, CPU s (user+sys)`, 2, (t) => cell(dest, t, op, cpu));
    row(label, `${title}, peak RSS MiB`, 0, (t) => cell(dest, t, op, rss));
    if (dest === 's3') {
      const req = (t) => json(`requests/${t}-${op}.json`);
      row(label, `${title}, requests to MinIO`, 0, (t) => (req(t) ? { value: req(t).requests } : { text: 'n/a' }));
      textRow(label, `${title}, requests by method`, (t) => (req(t) ? methods(req(t)) || 'none' : 'n/a'));
      const key = op === 'backup' ? 'bytesUp' : 'bytesDown';
      row(label, `${title}, MB ${op === 'backup' ? 'uploaded to' : 'downloaded from'} MinIO (HTTP bodies)`, 1, (t) => (req(t) ? { value: req(t)[key] / MB } : { text: 'n/a' }));
    }
    if (op === 'restore') {
      textRow(label, 'restore identical to the source (diff -r)', (t) => {
        const d = ops.find((o) => o.dest === dest && o.tool === t && o.op === 'restore_diff');
        return !d ? 'not run' : d.rc === '0' ? 'yes' : `FAILED (${d.rc})`;
      });
    }
  }
  if (dest === 's3') {
    const init = (t) => json(`requests/${t}-init.json`);
    row('MinIO (S3)', 'init, requests to MinIO', 0, (t) => (init(t) ? { value: init(t).requests } : { text: 'n/a' }));
  }
}

// cairn copy: Cairn only.
// The log holds stderr too (the AWS SDK warns about Node versions there): the result is the last JSON line.
const result = (f) => { try { return JSON.parse(read(f).trim().split('\n').filter((l) => l.startsWith('{')).pop()); } catch { return null; } };
const first = result('logs/copy-cairn-first.log');
const mutated = result('logs/copy-cairn-mutated.log');
const reqFirst = json('requests/copy-first.json');
const reqMut = json('requests/copy-mutated.json');
if (ops.some((o) => o.dest === 'copy')) {
  out.push('');
  out.push('`cairn copy` from a local repository to MinIO (target made with `init --copy-chunker-params`):');
  out.push('');
  out.push('| copy | wall s | snapshot size MB | pack bytes sent MB (copy --json) | HTTP bytes uploaded MB (proxy) | sent ÷ snapshot | requests to MinIO |');
  out.push('|---|---|---|---|---|---|---|');
  for (const [name, r, q, op] of [['first snapshot (target empty)', first, reqFirst, 'first'], ['after 5% mutation (mutate-dataset.sh)', mutated, reqMut, 'mutated']]) {
    const w = cell('copy', 'cairn', op, wall);
    if (!r) { out.push(`| ${name} | ${fmt(w, 2)} | FAILED | | | | |`); continue; }
    const up = q ? q.bytesUp : NaN;
    out.push(`| ${name} | ${fmt(w, 2)} | ${(r.snapshotBytes / MB).toFixed(1)} | ${(r.bytesSent / MB).toFixed(2)} | ${(up / MB).toFixed(2)} | ${(up / r.snapshotBytes).toFixed(3)} | ${q ? `${q.requests} (${methods(q)})` : 'n/a'} |`);
  }
}
console.log(out.join('\n'));
NODE
log "results in $RES (ops.tsv, requests/*.json, table.md, env.txt, logs/)"
