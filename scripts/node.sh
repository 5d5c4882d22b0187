#!/usr/bin/env bash
# Cairn runs on Node.js 22 (22.13 or newer) or 24. This prints the shell lines that put such a Node first
# on PATH, installing Node 24 (or 22) from the npm registry's node-linux-<arch> package
# into the tool cache (~/.cache/cairn, /opt/cairn for root) when the machine's Node is
# older; it needs only npm to do that.
#
#   eval "$(scripts/node.sh)"      the machine's node when it is 22.13 or newer, else Node 24
#   eval "$(scripts/node.sh 24)"   Node 24: the machine's when it is 24, else the cached one
#   eval "$(scripts/node.sh 22)"   Node 22, the oldest supported, the same way (a 22 older than 22.13 is not used)
#   scripts/node.sh --check        fails, saying what to do, when `node` is older than 22.13
#
# The printed lines also set npm_config_nodedir to that Node's headers, so node-gyp builds
# the native modules (zstd-napi, ssh2's crypto binding) without downloading anything.
set -euo pipefail

# The oldest Node the locked packages all accept (package.json engines; test/node-floor.test.ts).
floor=22.13.0
# Root's own cache is under /root, which other users cannot enter, yet the CLI runs as them
# on this same node (PostgreSQL's restore_command written by `cairn pg`, tests that drop
# privileges): root installs into /opt/cairn instead.
if [ "$(id -u)" = 0 ]; then cache=/opt/cairn; else cache=${XDG_CACHE_HOME:-$HOME/.cache}/cairn; fi
self=${BASH_SOURCE[0]}

pinned() {
  case $1 in
    24) echo 24.22.3 ;;
    22) echo 22.23.5 ;;
    *) echo "scripts/node.sh: Cairn runs on Node.js 22 or 24, not '$1'" >&2; exit 2 ;;
  esac
}

machine_version() {
  command -v node >/dev/null 2>&1 && node -p 'process.versions.node' 2>/dev/null || echo 0.0.0
}

# True when the version given is the floor or newer.
meets_floor() {
  [ "$(printf '%s\n%s\n' "$floor" "$1" | sort -V | head -n 1)" = "$floor" ]
}

machine_major() {
  command -v node >/dev/null 2>&1 && node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

# node-gyp takes the headers of the node found under PREFIX (PREFIX/include/node) when
# it has them, instead of downloading them.
nodedir_for() {
  if [ -f "$1/include/node/node_api.h" ]; then printf 'export npm_config_nodedir=%q\n' "$1"; fi
}

machine_prefix() {
  dirname "$(dirname "$(readlink -f "$(command -v node)")")"
}

install_pinned() {
  local version=$1 arch pkg dir
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) arch=linux-x64 ;;
    Linux/aarch64) arch=linux-arm64 ;;
    *) echo "scripts/node.sh: no Node.js package for $(uname -s)/$(uname -m); install Node.js 22 or 24 from nodejs.org or your system's packages" >&2; exit 1 ;;
  esac
  pkg=node-$arch@$version
  dir=$cache/node-v$version-$arch
  if [ ! -x "$dir/bin/node" ]; then
    command -v npm >/dev/null || { echo "scripts/node.sh: npm is needed to fetch $pkg; install npm (any version) or Node.js 22+" >&2; exit 1; }
    mkdir -p -m 755 "$cache"
    tmp=$(mktemp -d "$cache/.node-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    echo "scripts/node.sh: installing Node.js $version ($pkg) into $dir" >&2
    npm pack --silent --pack-destination "$tmp" "$pkg" >/dev/null
    tar xzf "$tmp"/node-*.tgz -C "$tmp"
    [ "$("$tmp/package/bin/node" --version)" = "v$version" ] || { echo "scripts/node.sh: $pkg did not unpack a working node" >&2; exit 1; }
    [ -e "$dir" ] || mv "$tmp/package" "$dir"
  fi
  printf 'export PATH=%q:"$PATH"\n' "$dir/bin"
  nodedir_for "$dir"
}

case ${1:-} in
  --check)
    if ! meets_floor "$(machine_version)"; then
      have=$(command -v node >/dev/null 2>&1 && echo "Node.js $(node --version) ($(command -v node))" || echo "no node on PATH")
      echo "Cairn needs Node.js $floor or newer (24 recommended); this shell has $have." >&2
      echo "Put Node 24 first on PATH, then install again:  eval \"\$($self)\" && npm ci" >&2
      exit 1
    fi
    ;;
  "")
    if meets_floor "$(machine_version)"; then nodedir_for "$(machine_prefix)"; else install_pinned "$(pinned 24)"; fi
    ;;
  *)
    version=$(pinned "$1")
    if [ "$(machine_major)" = "$1" ] && meets_floor "$(machine_version)"; then nodedir_for "$(machine_prefix)"; else install_pinned "$version"; fi
    ;;
esac
