#!/usr/bin/env bash
# systemd_unit_test.sh — the systemd units in examples/ (berth-watch.service, the git pull service
# and timer, berth-apply.service and its timer) are ones systemd takes as written:
# `systemd-analyze verify` loads each without a single message (an unknown key, a bad value, a
# missing ExecStart binary or man page: systemd only warns and carries on, so any output fails the
# test). verify wants the ExecStart binaries to exist, so each unit is checked in a copy that names
# the berth built here for /usr/bin/berth; the man pages its Documentation= names are looked up
# among man/*.1. Also: berth-watch.service gives berth more time to stop than it gives its running
# actions, and every option its ExecStart passes is one `berth watch --help` lists.
# (examples_test.sh checks what is particular to berth-apply.service.)
#
# Environment: BERTH_BIN (the berth built), BERTH_SOURCE_DIR (the source tree).
set -euo pipefail

readonly BERTH=${BERTH_BIN:?BERTH_BIN must name the berth executable to test}
readonly SOURCE_DIR=${BERTH_SOURCE_DIR:?BERTH_SOURCE_DIR must name the source tree}
readonly EXAMPLES=$SOURCE_DIR/examples
[[ -x $BERTH ]] || { echo "systemd_unit_test: $BERTH is not executable" >&2; exit 1; }
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "systemd_unit_test: FAILED, not run: systemd-analyze is not installed (Debian package systemd;" \
        "scripts/install-deps.sh installs it)" >&2
    exit 1
fi
BERTH_ABS=$(realpath "$BERTH")
readonly BERTH_ABS
# berthd.service runs berthd: the one built here, beside berth (ctest passes BERTHD_BIN).
BERTHD_ABS=$(realpath "${BERTHD_BIN:-$(dirname "$BERTH_ABS")/../daemon/berthd}")
readonly BERTHD_ABS
[[ $BERTH_ABS != *[[:space:]]* ]] ||
    { echo "systemd_unit_test: $BERTH_ABS has a space, which an ExecStart= line cannot take" >&2; exit 1; }

WORK=$(mktemp -d)
readonly WORK
trap 'rm -rf "$WORK"' EXIT
FAILURES=0
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    FAILURES=$((FAILURES + 1))
}

mapfile -t units < <(find "$EXAMPLES" -maxdepth 1 -type f \( -name '*.service' -o -name '*.timer' \) | LC_ALL=C sort)
((${#units[@]} > 0)) || { echo "systemd_unit_test: no units in $EXAMPLES" >&2; exit 1; }
[[ -f $EXAMPLES/berth-watch.service ]] || fail "examples/berth-watch.service is missing"

# The copies: /usr/bin/berth is the berth built here; other programs (git) are where Debian puts them.
mkdir -p "$WORK/units"
for unit in "${units[@]}"; do
    sed -e "s|/usr/bin/berth\\b|$BERTH_ABS|g" -e "s|/usr/bin/berthd\\b|$BERTHD_ABS|g" "$unit" \
        >"$WORK/units/$(basename "$unit")"
done

# Documentation=man:PAGE(1): verify runs man on it. The pages are found among ours, not installed
# ones; without man, verify is told not to look (man_test.sh checks the pages themselves).
mkdir -p "$WORK/man/man1"
for page in "$SOURCE_DIR"/man/*.1; do ln -s "$page" "$WORK/man/man1/"; done
verify_args=()
command -v man >/dev/null 2>&1 || { verify_args+=(--man=no); echo "man is not installed: Documentation= not checked"; }

# verify UNIT...: systemd-analyze verify's exit status and every line it prints, in OUT.
verify() {
    local rc=0
    OUT=$(cd "$WORK/units" && MANPATH=$WORK/man systemd-analyze verify "${verify_args[@]}" "$@" 2>&1) || rc=$?
    return "$rc"
}

names=()
for unit in "${units[@]}"; do names+=("$(basename "$unit")"); done
# Each on its own (a timer with the service it starts), then all together.
for name in "${names[@]}"; do
    set -- "./$name"
    [[ $name == *.timer && -f $WORK/units/${name%.timer}.service ]] && set -- "$@" "./${name%.timer}.service"
    if ! verify "$@"; then
        fail "systemd-analyze verify $name failed: $OUT"
    elif [[ -n $OUT ]]; then
        fail "systemd-analyze verify $name warns: $OUT"
    else
        echo "ok: systemd-analyze verify $name"
    fi
done
if ! verify "${names[@]/#/./}" || [[ -n $OUT ]]; then
    fail "systemd-analyze verify of all the units together: $OUT"
fi

# The check is not blind: an unknown key is a warning (systemd ignores it and exits 0).
cp "$WORK/units/berth-watch.service" "$WORK/units/bad.service"
printf '[Service]\nProtectEverything=yes\n' >>"$WORK/units/bad.service"
verify ./bad.service || true
if [[ $OUT == *ProtectEverything* ]]; then
    echo "ok: an unknown key is reported"
else
    fail "systemd-analyze verify said nothing of an unknown key: '$OUT'"
fi
rm "$WORK/units/bad.service"

# --- berth-watch.service ---------------------------------------------------------------------------

unit=$EXAMPLES/berth-watch.service
# key UNIT KEY: the last value of KEY (as systemd takes it), continuation lines joined.
key() {
    sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$1" | sed -n "s/^$2=//p" | tail -n 1
}
# seconds VALUE: a systemd time span (30s, 2min, 1min 30s, 90) or berth's duration (30s, 2m) in seconds.
seconds() {
    local total=0 part n unit
    local -a parts
    read -r -a parts <<<"$(sed -E 's/([0-9]+)\s*([a-z]*)/\1\2 /g' <<<"$1")"
    for part in "${parts[@]}"; do
        n=${part%%[a-z]*}
        unit=${part#"$n"}
        case $unit in
        "" | s | sec) total=$((total + n)) ;;
        m | min) total=$((total + n * 60)) ;;
        h) total=$((total + n * 3600)) ;;
        *) echo "unknown unit in '$1'" >&2; return 1 ;;
        esac
    done
    echo "$total"
}

exec_start=$(key "$unit" ExecStart)
read -r -a argv <<<"$exec_start"
[[ ${argv[0]-} == /usr/bin/berth ]] || fail "berth-watch.service runs '${argv[0]-}', not /usr/bin/berth"
# Global options come before the command.
watch_at=-1
for ((i = 1; i < ${#argv[@]}; i++)); do [[ ${argv[i]} == watch ]] && { watch_at=$i; break; }; done
((watch_at > 0)) || fail "berth-watch.service's ExecStart runs no 'watch': $exec_start"
[[ " ${argv[*]:1:watch_at} " == *" --config-dir "* ]] ||
    fail "berth-watch.service: --config-dir does not come before watch: $exec_start"
[[ $(key "$unit" Type) == simple ]] || fail "berth-watch.service is not Type=simple"
[[ $(key "$unit" Restart) == on-failure ]] || fail "berth-watch.service does not restart on failure"
[[ $(key "$unit" KillSignal) == SIGTERM ]] || fail "berth-watch.service does not stop with SIGTERM"
[[ $(key "$unit" StateDirectory) == berth ]] || fail "berth-watch.service has no StateDirectory=berth"
[[ $exec_start == *"--state /var/lib/berth/state.db"* ]] ||
    fail "berth-watch.service keeps its state elsewhere than its StateDirectory: $exec_start"
for hardening in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes; do
    [[ $(key "$unit" "${hardening%%=*}") == "${hardening#*=}" ]] || fail "berth-watch.service lacks $hardening"
done

# Stopping: systemd waits TimeoutStopSec, then kills; berth's running actions may take
# --shutdown-timeout (default 30s). The first must be the longer.
shutdown=30s
for ((i = watch_at + 1; i < ${#argv[@]}; i++)); do
    case ${argv[i]} in
    --shutdown-timeout) shutdown=${argv[i + 1]-} ;;
    --shutdown-timeout=*) shutdown=${argv[i]#*=} ;;
    esac
done
stop=$(key "$unit" TimeoutStopSec)
if [[ -z $stop ]]; then
    fail "berth-watch.service sets no TimeoutStopSec (systemd's default 90s is not tied to --shutdown-timeout)"
elif (($(seconds "$stop") <= $(seconds "$shutdown"))); then
    fail "berth-watch.service: TimeoutStopSec=$stop is not longer than --shutdown-timeout $shutdown"
else
    echo "ok: TimeoutStopSec=$stop > --shutdown-timeout $shutdown"
fi

# help_options COMMAND...: the options `berth COMMAND... --help` lists (before its subcommands), one a line.
help_options() {
    "$BERTH" "$@" --help 2>/dev/null | sed '/^Subcommands:/,$d' | grep -oE '^ +(-[A-Za-z],)?--[a-z][a-z-]*' |
        tr ',' '\n' | sed 's/^ *//'
}
# check_options WHAT OPTIONS_HAD FIRST LAST: the options among argv[FIRST..LAST) are in OPTIONS_HAD.
check_options() {
    local what=$1 had=$2 option
    for ((i = $3; i < $4; i++)); do
        option=${argv[i]%%=*}
        [[ $option == -* ]] || continue
        grep -qxF -- "$option" <<<"$had" || fail "berth-watch.service passes $option to $what, which does not list it"
    done
}
# Every option passed to watch is one it has (once berth has the command), and the global ones are global.
top_help=$("$BERTH" --help)
if sed -n '/^Subcommands:/,$p' <<<"$top_help" | grep -qE '^  watch( |$)'; then
    before=$FAILURES
    check_options "berth watch" "$(help_options watch)" $((watch_at + 1)) ${#argv[@]}
    ((FAILURES > before)) || echo "ok: the options of berth-watch.service's ExecStart are berth watch's"
else
    echo "note: $BERTH has no watch command: the options of the ExecStart line were not checked"
fi
check_options "berth (before watch)" "$(help_options)" 1 "$watch_at"

if ((FAILURES > 0)); then
    echo "systemd_unit_test: $FAILURES failed" >&2
    exit 1
fi
echo "systemd_unit_test: all passed"
