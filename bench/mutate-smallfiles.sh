#!/usr/bin/env bash
# A deterministic change to PERCENT% of the files of a make-smallfiles.sh tree, and its undo.
#
#   mutate-smallfiles.sh TREE SAVEDIR [PERCENT] [SEED]   change the files, keeping the originals in SAVEDIR
#   mutate-smallfiles.sh --revert TREE SAVEDIR           put the originals back, remove SAVEDIR
#
# The same files every time for the same tree, PERCENT (default 1) and SEED (default
# "smallfiles-change-v1"): in the sorted list of files, every (100/PERCENT)-th, starting
# in the middle of the first stride. Each gets new content (incompressible bytes, new size
# 0..8 KiB, so sizes and content both change) and the mtime 2024-02-01T00:00:00Z. No file
# is added or removed and directories are not touched, so the undo (content and mtime of
# each saved file written back) gives a tree that backs up like the one make-smallfiles.sh
# wrote. SAVEDIR must not exist before a change.
set -euo pipefail
MODE=change
if [ "${1:-}" = --revert ]; then MODE=revert; shift; fi
if [ $# -lt 2 ]; then echo "usage: $0 [--revert] TREE SAVEDIR [PERCENT] [SEED]" >&2; exit 2; fi
TREE="$1"; SAVE="$2"; PERCENT="${3:-1}"; SEED="${4:-smallfiles-change-v1}"
[ -d "$TREE" ] || { echo "error: $TREE is not a directory" >&2; exit 1; }
if [ "$MODE" = change ] && [ -e "$SAVE" ]; then
  echo "error: $SAVE exists: a previous change was not undone; run $0 --revert $TREE $SAVE first" >&2; exit 1
fi
if [ "$MODE" = revert ] && [ ! -d "$SAVE" ]; then exit 0; fi
exec node - "$MODE" "$TREE" "$SAVE" "$PERCENT" "$SEED" <<'NODE'
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const [MODE, TREE, SAVE, PERCENT_S, SEED] = process.argv.slice(2);
const MTIME = new Date('2024-02-01T00:00:00Z');
const MAX = 8192;

// Relative paths of every regular file under dir, sorted, so the choice does not depend on readdir order.
function files(dir, rel = '', out = []) {
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) files(dir, r, out);
    else if (e.isFile()) out.push(r);
  }
  return out;
}

if (MODE === 'revert') {
  let n = 0;
  for (const r of files(SAVE)) {
    const saved = path.join(SAVE, r);
    const { atime, mtime } = fs.statSync(saved);
    const live = path.join(TREE, r);
    fs.writeFileSync(live, fs.readFileSync(saved));
    fs.utimesSync(live, atime, mtime);
    n++;
  }
  fs.rmSync(SAVE, { recursive: true });
  process.stderr.write(`reverted ${n} files under ${TREE}\n`);
  process.exit(0);
}

const percent = Number(PERCENT_S);
if (!(percent > 0 && percent <= 100)) throw new Error('PERCENT must be above 0 and at most 100');
const stride = 100 / percent;
const all = files(TREE);
const key = crypto.createHash('sha256').update(SEED + ':bytes').digest();
const stream = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
const sizes = crypto.createHash('sha256').update(SEED + ':sizes').digest();
let changed = 0, bytes = 0;
for (let k = Math.floor(stride / 2); k < all.length; k = Math.floor(stride / 2 + ++changed * stride)) {
  const r = all[k];
  const live = path.join(TREE, r);
  const saved = path.join(SAVE, r);
  fs.mkdirSync(path.dirname(saved), { recursive: true });
  fs.copyFileSync(live, saved);
  const { atime, mtime } = fs.statSync(live);
  fs.utimesSync(saved, atime, mtime);
  const size = (sizes.readUInt32LE((changed % 8) * 4) ^ (changed * 2654435761)) >>> 0;
  const data = stream.update(Buffer.alloc(size % (MAX + 1)));
  fs.writeFileSync(live, data);
  fs.utimesSync(live, MTIME, MTIME);
  bytes += data.length;
}
process.stderr.write(`changed ${changed} of ${all.length} files (${bytes} bytes written) under ${TREE}; originals in ${SAVE}\n`);
NODE
