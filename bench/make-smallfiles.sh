#!/usr/bin/env bash
# Deterministic many-small-files dataset (no network, only node >= 18): a mail spool,
# a cache, an uploads folder.
#
#   make-smallfiles.sh OUTDIR [SEED]
#
# Creates FILES files (default 200000) of 0..MAX_SIZE bytes (default 8192, uniform) spread
# evenly over DIRS directories (default 200) under OUTDIR, which must not exist or be
# empty. Half the files are text (compressible), half are incompressible bytes (an
# AES-256-CTR keystream of a seed-derived key). Same SEED (default "smallfiles-v1") and
# same knobs => byte-identical files, identical names and identical mtimes (all set to
# 2024-01-01T00:00:00Z), as the shared make-dataset.sh does.
set -euo pipefail
if [ $# -lt 1 ]; then echo "usage: $0 OUTDIR [SEED]" >&2; exit 2; fi
OUT="$1"; SEED="${2:-smallfiles-v1}"
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
  echo "error: $OUT exists and is not empty" >&2; exit 1
fi
mkdir -p "$OUT"
exec node - "$OUT" "$SEED" "${FILES:-200000}" "${DIRS:-200}" "${MAX_SIZE:-8192}" <<'NODE'
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const [OUT, SEED, FILES_S, DIRS_S, MAX_S] = process.argv.slice(2);
const FILES = Number(FILES_S), DIRS = Number(DIRS_S), MAX = Number(MAX_S);
if (!(FILES >= 1 && DIRS >= 1 && MAX >= 0)) throw new Error('FILES and DIRS must be at least 1, MAX_SIZE at least 0');

// sfc32 seeded from sha256(seed + ':' + stream), as in the shared make-dataset.sh.
function rng(stream) {
  const h = crypto.createHash('sha256').update(SEED + ':' + stream).digest();
  let a = h.readUInt32LE(0), b = h.readUInt32LE(4), c = h.readUInt32LE(8), d = h.readUInt32LE(12);
  const next = () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 16; i++) next();
  return { u32: next, int: (n) => next() % n };
}

const r = rng('smallfiles');
const SYL = ['ka', 'lo', 'mi', 'ne', 'ru', 'ta', 'shi', 'po', 'ven', 'dar', 'el', 'on', 'is', 'ux', 'tra', 'ber', 'qua', 'zen', 'fi', 'go'];
const WORDS = Array.from({ length: 2000 }, () => { let w = ''; for (let i = 1 + r.int(3); i > 0; i--) w += SYL[r.int(SYL.length)]; return w; });
function text(size) {
  const parts = []; let len = 0;
  while (len < size) {
    const n = 4 + r.int(12); const line = [];
    for (let i = 0; i < n; i++) { const x = r.u32() / 4294967296; line.push(WORDS[Math.floor(WORDS.length * x * x)]); }
    const l = line.join(' ') + '\n'; parts.push(l); len += l.length;
  }
  return Buffer.from(parts.join('').slice(0, size), 'latin1');
}
const key = crypto.createHash('sha256').update(SEED + ':bytes').digest();
const stream = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
const zero = Buffer.alloc(MAX);

const MTIME = new Date('2024-01-01T00:00:00Z');
const dirs = Array.from({ length: DIRS }, (_, i) => path.join(OUT, `d${String(i).padStart(4, '0')}`));
for (const d of dirs) fs.mkdirSync(d);
let bytes = 0;
for (let i = 0; i < FILES; i++) {
  const size = r.int(MAX + 1);
  const data = r.int(2) === 0 ? text(size) : stream.update(zero.subarray(0, size));
  const p = path.join(dirs[i % DIRS], `f${String(i).padStart(7, '0')}.${size % 3 === 0 ? 'txt' : 'dat'}`);
  fs.writeFileSync(p, data);
  fs.utimesSync(p, MTIME, MTIME);
  bytes += size;
}
for (const d of dirs) fs.utimesSync(d, MTIME, MTIME);
fs.utimesSync(OUT, MTIME, MTIME);
process.stderr.write(`total: ${FILES} files, ${bytes} bytes in ${DIRS} directories under ${OUT}\n`);
NODE
