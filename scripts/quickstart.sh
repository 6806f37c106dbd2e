#!/usr/bin/env bash
# quickstart.sh — see berth work, on a fresh Debian 12 machine as root:
# installs what it needs, builds berth and berthd (Release, in build/), starts
# two local berthd hosts on loopback (tests/testbed/tb.sh; no LXD runs), trusts
# them with `berth remote add`, and runs `berth validate`, `berth plan` and
# `berth apply` on examples/quickstart.yaml (a copy across the two hosts
# included), then shows that the next plan is empty. The hosts are stopped and
# removed on exit.
#
# Environment:
#   BERTH_BIN=PATH            use this berth binary instead of building one
#   BERTH_SKIP_DEPS=1         do not run scripts/install-deps.sh
#   BERTH_QUICKSTART_FILE=F   another fleet file (default examples/quickstart.yaml)
#   BERTH_QUICKSTART_KEEP=1   leave the hosts running (stop them with
#                             tests/testbed/tb.sh stop DIR, DIR is printed)
#   BERTH_JOBS=N              parallel build jobs (default 2)
#   BERTH_QUICKSTART_KINDS=K  the hosts' kind: berthd (default), lxd (two LXD 5.0
#                             hosts from Debian's lxd package), or lxd,berthd
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
readonly TB_SH="$ROOT/tests/testbed/tb.sh"
FLEET=${BERTH_QUICKSTART_FILE:-$ROOT/examples/quickstart.yaml}
KINDS=${BERTH_QUICKSTART_KINDS:-berthd}
WORK=
TB=

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'quickstart: error: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local rc=$?
    if [[ -n "$TB" ]]; then
        if [[ "${BERTH_QUICKSTART_KEEP:-0}" == 1 ]]; then
            echo "quickstart: hosts left running; stop them with: $TB_SH stop $TB" >&2
            return "$rc"
        fi
        "$TB_SH" stop "$TB" || echo "quickstart: stopping the test bed $TB failed" >&2
    fi
    [[ -n "$WORK" ]] && rm -rf "$WORK"
    return "$rc"
}

# The remote in FILE whose url is ${env:VAR}: the key, below `remotes:`, at
# the indentation of the remotes' names, last seen before the variable.
remote_name_for() {
    local var=$1 file=$2 name
    name=$(awk -v needle="\${env:$var}" '
        /^[^[:space:]#]/ { in_remotes = ($0 ~ /^remotes:/); indent = -1; next }
        !in_remotes || /^[[:space:]]*(#|$)/ { next }
        {
            match($0, /^[[:space:]]*/)
            if (indent < 0) indent = RLENGTH
            if (RLENGTH == indent && match($0, /^[[:space:]]*[A-Za-z0-9_.-]+:/)) {
                key = substr($0, RSTART, RLENGTH - 1)
                gsub(/[[:space:]]/, "", key)
            }
            if (index($0, needle) && key != "") { print key; exit }
        }' "$file")
    [[ -n "$name" ]] || die "no remote in $file has url \${env:$var}"
    printf '%s\n' "$name"
}

build() {
    if [[ -n "${BERTH_BIN:-}" ]]; then
        [[ -x "$BERTH_BIN" ]] || die "BERTH_BIN '$BERTH_BIN' is not executable"
        BERTH=$BERTH_BIN
        if [[ "$KINDS" == *berthd* ]]; then
            export BERTHD_BIN=${BERTHD_BIN:-$(dirname "$BERTH_BIN")/../daemon/berthd}
            [[ -x "$BERTHD_BIN" ]] || die "no berthd at $BERTHD_BIN (set BERTHD_BIN)"
        fi
        return 0
    fi
    step "Building berth and berthd (Release) in build/"
    cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release -DBERTH_SANITIZE=OFF >/dev/null
    cmake --build "$ROOT/build" -j "${BERTH_JOBS:-2}" --target berth berthd berthd-helper
    BERTH="$ROOT/build/cli/berth"
    export BERTHD_BIN="$ROOT/build/daemon/berthd"
}

main() {
    cd "$ROOT"
    [[ -f "$FLEET" ]] || die "fleet file $FLEET not found"
    if [[ "${BERTH_SKIP_DEPS:-0}" != 1 ]]; then
        step "Installing dependencies"
        "$ROOT/scripts/install-deps.sh"
    fi
    build

    WORK=$(mktemp -d "${BERTH_TB_ROOT:-/tmp}/berth-quickstart.XXXXXX")
    chmod 711 "$WORK" # the hosts' containers must traverse it
    TB="$WORK/tb"
    local cfg="$WORK/config" a b
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    step "Starting two hosts ($KINDS) on loopback"
    "$TB_SH" start 2 "$TB" --kinds "$KINDS"
    "$TB_SH" image "$TB" 1
    # shellcheck disable=SC1091
    source "$TB/env"
    export BERTH_QUICKSTART_A=$TB_HOST1_URL BERTH_QUICKSTART_B=$TB_HOST2_URL
    echo "host A: $BERTH_QUICKSTART_A (image bb imported)"
    echo "host B: $BERTH_QUICKSTART_B"

    a=$(remote_name_for BERTH_QUICKSTART_A "$FLEET")
    b=$(remote_name_for BERTH_QUICKSTART_B "$FLEET")
    step "Trusting the hosts: berth remote add $a / $b"
    # The trust password is read from the test bed's file, never echoed.
    "$BERTH" --config-dir "$cfg" remote add "$a" "$BERTH_QUICKSTART_A" \
        --password "$(cat "$TB_HOST1_PASSWORD_FILE")" --accept-certificate </dev/null
    "$BERTH" --config-dir "$cfg" remote add "$b" "$BERTH_QUICKSTART_B" \
        --password "$(cat "$TB_HOST2_PASSWORD_FILE")" --accept-certificate </dev/null
    "$BERTH" --config-dir "$cfg" remote list

    step "berth validate -f ${FLEET#"$ROOT"/}"
    "$BERTH" --config-dir "$cfg" validate -f "$FLEET"

    step "berth plan -f ${FLEET#"$ROOT"/}"
    "$BERTH" --config-dir "$cfg" plan -f "$FLEET"

    # ------------------------------------------------------------------
    step "berth apply -f ${FLEET#"$ROOT"/}"
    "$BERTH" --config-dir "$cfg" apply -f "$FLEET" --auto-approve --state "$cfg/state.db"
    step "berth plan again: nothing left to do"
    "$BERTH" --config-dir "$cfg" plan -f "$FLEET" --detailed-exitcode  # exits 0 only when nothing changes
    # ------------------------------------------------------------------

    step "Done; stopping the hosts"
}

main "$@"
