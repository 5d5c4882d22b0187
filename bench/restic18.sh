# Sourced by the bench scripts: the restic 0.18.1 that Cairn's aims are measured against.
#
#   RESTIC18   path of the binary (default ${XDG_CACHE_HOME:-~/.cache}/cairn/bin/restic,
#              the tool cache provisioning and .ci/run fill)
#   RESTIC_DEB Debian's restic (default /usr/bin/restic: 0.14.0 on bookworm)
#
# require_restic18 builds the pinned version into the cache when the cache has none, and
# refuses a binary of another version: ratios against "restic 0.18.1" must be against it.
# Debian's restic is named by its full path because the cache directory is often first on
# PATH, where a plain `restic` would be the 0.18.1 build.
RESTIC18_VERSION=0.18.1
RESTIC18_DEFAULT=${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin/restic
RESTIC18=${RESTIC18:-$RESTIC18_DEFAULT}
RESTIC_DEB=${RESTIC_DEB:-/usr/bin/restic}

require_restic18() {
  if [ ! -x "$RESTIC18" ]; then
    if [ "$RESTIC18" != "$RESTIC18_DEFAULT" ]; then
      echo "RESTIC18=$RESTIC18 is not an executable; point it at a restic $RESTIC18_VERSION binary or unset it to use the tool cache" >&2
      return 1
    fi
    command -v go > /dev/null || {
      echo "restic $RESTIC18_VERSION is not in $RESTIC18 and Go is not installed to build it; install Go, or set RESTIC18 to a restic $RESTIC18_VERSION binary" >&2
      return 1
    }
    echo "building restic $RESTIC18_VERSION into $(dirname "$RESTIC18") (go install, a few minutes)" >&2
    mkdir -p "$(dirname "$RESTIC18")"
    GOBIN=$(dirname "$RESTIC18") go install "github.com/restic/restic/cmd/restic@v$RESTIC18_VERSION" || {
      echo "could not build restic $RESTIC18_VERSION (see go's message above); set RESTIC18 to a restic $RESTIC18_VERSION binary instead" >&2
      return 1
    }
  fi
  local v
  v=$("$RESTIC18" version 2> /dev/null | awk '{print $2}')
  [ "$v" = "$RESTIC18_VERSION" ] || {
    echo "$RESTIC18 is restic ${v:-of unknown version}, not $RESTIC18_VERSION; delete it to have it rebuilt, or set RESTIC18 to a restic $RESTIC18_VERSION binary" >&2
    return 1
  }
}
