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

# The tools a run compares, as named in TOOLS (cairn restic18 restic borg). The three helpers
# below serve run.sh, scale.sh and run-remote.sh alike; CAIRN (an array) is the command that
# runs Cairn.
#
# check_tools ALLOWED...: every tool in TOOLS is one of ALLOWED and is here (restic 0.18.1 is
# built into the tool cache when missing); says what to install otherwise.
check_tools() {
  local t
  for t in $TOOLS; do
    case " $* " in *" $t "*) ;; *)
      echo "unknown tool '$t' in TOOLS; use any of: $*" >&2
      return 1
      ;;
    esac
    case $t in
      restic18) require_restic18 || return 1 ;;
      restic) [ -x "$RESTIC_DEB" ] || {
        echo "Debian's restic is not at $RESTIC_DEB: apt-get install -y restic (or set RESTIC_DEB)" >&2
        return 1
      } ;;
      borg) command -v borg > /dev/null || {
        echo "borg is missing: apt-get install -y borgbackup" >&2
        return 1
      } ;;
    esac
  done
}

# tool_versions: each tool's own version line, for the run's env.txt.
tool_versions() {
  local t
  for t in $TOOLS; do
    case $t in
      cairn) echo "cairn: $("${CAIRN[@]}" --version 2> /dev/null)" ;;
      restic18) echo "restic18: $("$RESTIC18" version) ($RESTIC18)" ;;
      restic) echo "restic: $("$RESTIC_DEB" version) ($RESTIC_DEB)" ;;
      borg) echo "borg: $(borg --version)" ;;
    esac
  done
}

# tool_labels: "tool<TAB>label" per tool, the result tables' column heads. A script adds what
# it ran each tool with by setting LABEL_DETAIL[tool] (an associative array) first.
tool_labels() {
  local t label notes
  for t in $TOOLS; do
    notes=()
    case $t in
      cairn) label="cairn $("${CAIRN[@]}" --version 2> /dev/null)" ;;
      restic18) label="restic $("$RESTIC18" version | awk '{print $2}')" ;;
      restic) label="restic $("$RESTIC_DEB" version | awk '{print $2}')" notes=(Debian) ;;
      borg) label="borg $(borg --version | awk '{print $2}')" ;;
      *) label=$t ;;
    esac
    if declare -p LABEL_DETAIL > /dev/null 2>&1 && [ -n "${LABEL_DETAIL[$t]:-}" ]; then notes+=("${LABEL_DETAIL[$t]}"); fi
    if [ ${#notes[@]} -gt 0 ]; then label="$label ($(IFS=';'; echo "${notes[*]}" | sed 's/;/; /g'))"; fi
    printf '%s\t%s\n' "$t" "$label"
  done
}
