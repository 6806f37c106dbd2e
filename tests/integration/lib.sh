# shellcheck shell=bash
# lib.sh — helpers for berth's integration tests (sourced, not run).
#
# A test sources this file, calls tb_start to get its own test bed of real
# hosts, LXD or berthd (stopped again on exit, whatever happens), runs berth through `berth`
# (private --config-dir, no colour) or `run` (captures OUT, ERR, RC), checks
# with the assert_* functions, and ends with `finish`.
#
# Environment: BERTH_BIN (berth binary), BERTH_SOURCE_DIR (repository root),
# optional BERTH_TB_ROOT (where test beds are created; default /tmp),
# optional BERTH_TB_KINDS (the test bed's host kinds, tb.sh start --kinds: lxd,
# berthd or a list; default lxd), BERTHD_BIN (the berthd binary for those),
# optional BERTH_TEST_KEEP=1 (keep the test bed and work dir for debugging).
set -euo pipefail

: "${BERTH_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${BERTH_BIN:=$BERTH_SOURCE_DIR/build/cli/berth}"
: "${BERTHD_BIN:=$BERTH_SOURCE_DIR/build/daemon/berthd}"
export BERTH_SOURCE_DIR BERTH_BIN BERTHD_BIN
# Colour never in captured output; no proxy for loopback.
export NO_COLOR=1
export no_proxy=127.0.0.0/8,localhost NO_PROXY=127.0.0.0/8,localhost

TB_SH="$BERTH_SOURCE_DIR/tests/testbed/tb.sh"
TEST_NAME=$(basename "$0" .sh)
TB_DIR=
WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-$TEST_NAME.XXXXXX")
BERTH_CFG="$WORK/config"
mkdir -p "$BERTH_CFG"
chmod 700 "$BERTH_CFG"
PASSED=0
FAILED=0
OUT=
ERR=
RC=0
TEST_T0=$(date +%s)

log() { printf '# %s\n' "$*"; }

_cleanup() {
    local rc=$?
    if [[ "${BERTH_TEST_KEEP:-0}" == 1 ]]; then
        log "keeping test bed $TB_DIR and work dir $WORK (BERTH_TEST_KEEP=1)"
        return "$rc"
    fi
    _berthd_stop_all || true
    if [[ -n "$TB_DIR" ]]; then
        "$TB_SH" stop "$TB_DIR" || log "stopping test bed $TB_DIR failed"
    fi
    rm -rf "$WORK"
    # A berthd that did not stop fails the test, whatever its checks said (exit: the status an EXIT
    # trap leaves is the one the script exited with, not the trap's).
    if [[ "${BERTHD_STOP_FAILED:-0}" == 1 && "$rc" == 0 ]]; then exit 1; fi
    return "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

# tb_start N [KINDS]: start a test bed with N hosts, import the bb image on all
# of them, and source its env (TB_HOST<i>_URL, TB_HOST<i>_KIND, LXD_CONF, ...).
# KINDS (tb.sh start --kinds: "berthd", "berthd,lxd", ...) is for a test that
# wants a mixed bed; without it the hosts are BERTH_TB_KINDS (default lxd).
tb_start() {
    local n=${1:-2} kinds=${2:-${BERTH_TB_KINDS:-lxd}} t0 i list=
    [[ -x "$BERTH_BIN" ]] || { echo "BERTH_BIN '$BERTH_BIN' is not executable" >&2; exit 1; }
    t0=$(date +%s)
    TB_DIR=$(mktemp -d "${BERTH_TB_ROOT:-/tmp}/tb.XXXXXX")
    "$TB_SH" start "$n" "$TB_DIR" --kinds "$kinds"
    "$TB_SH" image "$TB_DIR"
    # shellcheck disable=SC1091
    source "$TB_DIR/env"
    for ((i = 1; i <= n; i++)); do
        add_secret "$(tb_password "$i")"
        list+="${list:+,}$(tb_kind "$i")"
    done
    log "test bed $TB_DIR with $n host(s) ($list) ready in $(($(date +%s) - t0)) s"
}

# Kind of host i of the test bed: lxd or berthd.
tb_kind() {
    local kind="TB_HOST$1_KIND"
    printf '%s\n' "${!kind:-lxd}"
}

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# berthd_start DIR PASSWORD [ARGS...]: start berthd with its directory DIR on a free loopback port
# (BERTHD_PORT if set) and the trust password PASSWORD (through a file, never the command line);
# its log is DIR.log.
# Sets BERTHD_PID and BERTHD_URL; stopped (SIGTERM) when the test ends.
BERTHD_PIDS=()
BERTHD_LOGS=() # BERTHD_LOGS[i] is the log of BERTHD_PIDS[i]
berthd_start() {
    local dir=$1 password=$2 port i
    shift 2
    port=${BERTHD_PORT:-$(free_port)}
    mkdir -p "$dir"
    (umask 077 && printf '%s\n' "$password" >"$dir.password")
    add_secret "$password"
    "$BERTHD_BIN" --dir "$dir" --listen "127.0.0.1:$port" --trust-password-file "$dir.password" \
        --log-level debug "$@" >"$dir.log" 2>&1 &
    BERTHD_PID=$!
    BERTHD_PIDS+=("$BERTHD_PID")
    BERTHD_LOGS+=("$dir.log")
    BERTHD_URL="https://127.0.0.1:$port"
    for ((i = 0; i < 100; i++)); do
        curl -skf --max-time 2 "$BERTHD_URL/1.0" >/dev/null 2>&1 && return 0
        kill -0 "$BERTHD_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "berthd did not come up on $BERTHD_URL; its log:" >&2
    cat "$dir.log" >&2
    exit 1
}

# bb_image FILE: the test bed's busybox image (testbed.md) as a unified tarball at FILE, for a
# berthd the test started itself (LXD test beds import theirs through tb.sh).
bb_image() {
    local img=$WORK/bb-image a
    mkdir -p "$img"/rootfs/{bin,sbin,etc,proc,sys,dev,tmp,root}
    cp /bin/busybox "$img/rootfs/bin/"
    for a in sh ls cat echo sleep hostname ps mount id; do ln -s busybox "$img/rootfs/bin/$a"; done
    ln -s ../bin/busybox "$img/rootfs/sbin/init"
    printf 'architecture: x86_64\ncreation_date: %s\nproperties: {os: busybox, release: "1.35", description: busybox test image}\n' \
        "$(date +%s)" >"$img/metadata.yaml"
    tar -C "$img" -czf "$1" metadata.yaml rootfs
}

# btrfs_loop NAME: a 1 GiB btrfs filesystem in a loop file, mounted at $WORK/NAME (a storage pool
# the test makes); btrfs_unmount_all unmounts every one (after whatever uses them has stopped).
BTRFS_MOUNTS=()
btrfs_loop() {
    mkdir -p "$WORK/$1"
    truncate -s 1G "$WORK/$1.img"
    mkfs.btrfs -q "$WORK/$1.img" >/dev/null
    mount -o loop "$WORK/$1.img" "$WORK/$1"
    BTRFS_MOUNTS+=("$WORK/$1")
}
# berthd_stop_all: SIGTERM to every berthd the test started, and wait for each (at most
# BERTHD_STOP_TIMEOUT s; one still running then is shown, killed and fails the test).
berthd_stop_all() { _berthd_stop_all || true; }

BERTHD_STOP_TIMEOUT=90
BERTHD_STOP_FAILED=0 # 1 once a berthd did not stop on SIGTERM: _cleanup fails the test

# Whether process PID runs (a zombie, dead and not yet waited for, does not).
_running() {
    local stat
    [[ -r "/proc/$1/stat" ]] && read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) } # after the command name, which may hold spaces and parentheses
    [[ "${stat%% *}" != Z ]]
}

# _berthd_stop_all: SIGTERM to every berthd still running, then waits for each at most
# BERTHD_STOP_TIMEOUT s. One that is still running then, or that gave up stopping by itself (its
# watchdog), is shown on stderr: the end of its log and, when gdb is there, its threads' stacks;
# it is killed and BERTHD_STOP_FAILED set. False when one did not stop.
_berthd_stop_all() {
    local i pid log deadline failed=0
    local -a signalled=()
    for i in ${BERTHD_PIDS[@]+"${!BERTHD_PIDS[@]}"}; do
        pid=${BERTHD_PIDS[i]}
        if _running "$pid" && kill -TERM "$pid" 2>/dev/null; then
            signalled+=("$i")
        else
            wait "$pid" 2>/dev/null || true # gone already (the test killed it): reaped, no more
        fi
    done
    deadline=$((SECONDS + ${BERTHD_STOP_TIMEOUT:-90}))
    for i in ${signalled[@]+"${signalled[@]}"}; do
        pid=${BERTHD_PIDS[i]}
        log=${BERTHD_LOGS[i]:-}
        while _running "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
        if _running "$pid"; then
            {
                echo "berthd $pid did not stop within ${BERTHD_STOP_TIMEOUT:-90} s"
                _berthd_show "$pid" "$log"
                if command -v gdb >/dev/null; then
                    echo "--- its threads"
                    timeout 60 gdb -p "$pid" -batch -ex 'thread apply all bt' 2>&1 | grep -v '^\[' || true
                fi
            } >&2
            kill -KILL "$pid" 2>/dev/null || true
            failed=1
        elif [[ -n "$log" ]] && grep -q 'berthd: still stopping' "$log" 2>/dev/null; then
            {
                echo "berthd $pid gave up stopping (its stop outlasted its own limit)"
                _berthd_show "$pid" "$log"
            } >&2
            failed=1
        fi
        wait "$pid" 2>/dev/null || true
    done
    if ((failed != 0)); then BERTHD_STOP_FAILED=1; fi
    return "$failed"
}

# The last 40 lines of a berthd's log (LOG, which may be unknown).
_berthd_show() {
    local pid=$1 log=$2
    if [[ -n "$log" && -r "$log" ]]; then
        echo "--- the last 40 lines of its log, $log"
        _mask "$(tail -n 40 "$log")"
    else
        echo "--- (no log known for berthd $pid)"
    fi
}

btrfs_unmount_all() {
    local m
    for m in ${BTRFS_MOUNTS[@]+"${BTRFS_MOUNTS[@]}"}; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

# kill_containers LXCPATH: stop, at once, every container liblxc runs under LXCPATH (the
# clean-up of a test that started berthd: its containers outlive it by design).
kill_containers() {
    local c
    for c in $(lxc-ls -P "$1" 2>/dev/null); do lxc-stop -P "$1" -n "$c" -k >/dev/null 2>&1 || true; done
}

# Password of host i (never print it).
tb_password() { cat "$TB_DIR/host$1.password"; }

# Run the stock lxc client against the test bed (remotes h1..hN).
tb_lxc() { LXD_CONF="$LXD_CONF" lxc "$@" </dev/null; }

# Quiet lxc for test setup: output only if it fails, and then the test stops.
tb_lxc_q() {
    local out
    if ! out=$(LXD_CONF="$LXD_CONF" lxc "$@" </dev/null 2>&1); then
        echo "setup failed: lxc $*" >&2
        echo "$out" >&2
        exit 1
    fi
}

# tb_container REMOTE NAME STATE [lxc init options...]: make a container by
# hand from the bb image in the given power state (running|stopped|frozen).
tb_container() {
    local remote=$1 name=$2 state=$3
    shift 3
    tb_lxc_q init "$remote:bb" "$remote:$name" -q "$@"
    case "$state" in
        stopped) ;;
        running) tb_lxc_q start "$remote:$name" ;;
        frozen) tb_lxc_q start "$remote:$name" && tb_lxc_q pause "$remote:$name" ;;
        *) echo "tb_container: unknown state $state" >&2; exit 1 ;;
    esac
}

# berth_marks [CONFIG_KEY...]: the `lxc init` options that make a hand-made container look as berth
# leaves one it made: owned by fleet "default" (user.berth.fleet) with berth's record of the config
# keys it declares (user.berth.managed; no devices, no profiles). In BERTH_MARKS (an array).
berth_marks() {
    local keys
    keys=$(printf '%s\n' "$@" | jq -R 'select(length > 0)' | jq -cs 'sort')
    # shellcheck disable=SC2034 # used by the tests that source this file
    BERTH_MARKS=(-c user.berth.fleet=default
        -c "user.berth.managed={\"config\":$keys,\"devices\":[],\"profiles\":[]}")
}

# berth with the test's private config dir; no colour.
berth() { "$BERTH_BIN" --config-dir "$BERTH_CFG" --no-color "$@"; }

# run CMD...: run without failing the test; sets OUT, ERR, RC.
run() {
    local o e
    o=$(mktemp "$WORK/out.XXXXXX")
    e=$(mktemp "$WORK/err.XXXXXX")
    RC=0
    "$@" >"$o" 2>"$e" </dev/null || RC=$?
    OUT=$(cat "$o")
    ERR=$(cat "$e")
    rm -f "$o" "$e"
}

_pass() {
    PASSED=$((PASSED + 1))
    printf 'ok %d - %s\n' "$((PASSED + FAILED))" "$1"
}

# Secrets (passwords, tokens) that failure messages must not show.
SECRETS=()
add_secret() { SECRETS+=("$1"); }

_mask() {
    local text=$1 s
    for s in ${SECRETS[@]+"${SECRETS[@]}"}; do
        [[ -n "$s" ]] && text=${text//"$s"/"<secret>"}
    done
    printf '%s\n' "$text"
}

_fail() {
    FAILED=$((FAILED + 1))
    printf 'not ok %d - %s\n' "$((PASSED + FAILED))" "$1"
    shift
    local line
    for line in "$@"; do _mask "$line" | sed 's/^/#   /'; done
}

# The last `run`'s output, for failure messages.
_last_output() {
    printf 'exit status: %s\n' "$RC"
    printf 'stdout:\n%s\n' "$(head -c 4000 <<<"$OUT")"
    printf 'stderr:\n%s\n' "$(head -c 4000 <<<"$ERR")"
}

assert_eq() {
    local expected=$1 actual=$2 msg=${3:-values are equal}
    if [[ "$expected" == "$actual" ]]; then
        _pass "$msg"
    else
        _fail "$msg" "expected: $expected" "actual:   $actual"
    fi
}

assert_contains() {
    local haystack=$1 needle=$2 msg=${3:-output contains [$2]}
    if [[ "$haystack" == *"$needle"* ]]; then
        _pass "$msg"
    else
        _fail "$msg" "'$needle' not found in:" "$(head -c 4000 <<<"$haystack")"
    fi
}

# Case-insensitive variant.
assert_icontains() {
    local haystack=$1 needle=$2 msg=${3:-output contains [$2] (any case)}
    if [[ "${haystack,,}" == *"${needle,,}"* ]]; then
        _pass "$msg"
    else
        _fail "$msg" "'$needle' not found in:" "$(head -c 4000 <<<"$haystack")"
    fi
}

assert_not_contains() {
    local haystack=$1 needle=$2 msg=${3:-output does not contain [$2]}
    if [[ "$haystack" != *"$needle"* ]]; then
        _pass "$msg"
    else
        _fail "$msg" "'$needle' found in:" "$(head -c 4000 <<<"$haystack")"
    fi
}

# assert_exit EXPECTED [MSG]: the last `run` exited with EXPECTED.
# check MESSAGE COMMAND...: passes when the command succeeds, fails otherwise.
check() {
    local message=$1
    shift
    if "$@"; then _pass "$message"; else _fail "$message"; fi
}

assert_exit() {
    local expected=$1 msg=${2:-exit status $1}
    if [[ "$RC" == "$expected" ]]; then
        _pass "$msg"
    else
        local out
        out=$(_last_output)
        _fail "$msg (got $RC)" "$out"
    fi
}

# assert_jq JSON FILTER EXPECTED [MSG]: jq -r FILTER of JSON equals EXPECTED.
assert_jq() {
    local json=$1 filter=$2 expected=$3 msg=${4:-jq [$2] == [$3]} actual
    if ! actual=$(jq -r "$filter" <<<"$json" 2>&1); then
        _fail "$msg" "jq failed: $actual" "input: $(head -c 2000 <<<"$json")"
        return 0
    fi
    if [[ "$actual" == "$expected" ]]; then
        _pass "$msg"
    else
        _fail "$msg" "expected: $expected" "actual:   $actual"
    fi
}

# The secret must not appear in TEXT (the text itself is not printed).
assert_no_secret() {
    local text=$1 secret=$2 msg=${3:-secret does not appear}
    if [[ -n "$secret" && "$text" == *"$secret"* ]]; then
        _fail "$msg" "the secret was found (output not shown)"
    else
        _pass "$msg"
    fi
}

# The secret must not appear in any file below DIR.
assert_no_secret_in_dir() {
    local dir=$1 secret=$2 msg=${3:-secret does not appear in files under $1} hits
    hits=$(grep -rlF -- "$secret" "$dir" 2>/dev/null || true)
    if [[ -z "$hits" ]]; then
        _pass "$msg"
    else
        _fail "$msg" "found in: $hits"
    fi
}

# Is the last `run`'s stdout valid JSON? Prints a failure otherwise.
assert_json() {
    local msg=${1:-output is valid JSON}
    if [[ -n "$OUT" ]] && jq -e 'type == "object" or type == "array"' >/dev/null 2>&1 <<<"$OUT"; then
        _pass "$msg"
    else
        local out
        out=$(_last_output)
        _fail "$msg" "$out"
    fi
}

# Stop the test early (e.g. the CLI is missing a command everything else needs).
bail() {
    _fail "$1" "${@:2}"
    finish
}

finish() {
    local secs=$(($(date +%s) - TEST_T0))
    echo "1..$((PASSED + FAILED))"
    echo "$TEST_NAME: $PASSED passed, $FAILED failed (${secs} s)"
    if ((FAILED > 0)); then exit 1; fi
    exit 0
}

# add_remotes: berth remote add h1 and h2 of the test bed, with their trust passwords.
add_remotes() {
    local i url
    for i in 1 2; do
        url="TB_HOST${i}_URL"
        run berth remote add "h$i" "${!url}" --password "$(tb_password "$i")" --accept-certificate
        ((RC == 0)) || bail "berth remote add h$i" "$(_last_output)"
    done
}

# tb_fleet_header FILE: the top of a fleet file for the test bed: version, remotes h1 and h2 (with
# REMOTE2_EXTRA appended to h2's flow map) and image bb on h1. The caller appends the rest.
tb_fleet_header() {
    cat >"$1" <<EOF
version: 1
remotes:
  h1: {url: "${TB_HOST1_URL}"}
  h2: {url: "${TB_HOST2_URL}"${REMOTE2_EXTRA:-}}
images:
  bb: {remote: h1, alias: bb}
EOF
}

# "action remote:container[/snapshot]" for every action of a plan's JSON, sorted, comma-joined.
# shellcheck disable=SC2034 # used by the tests that source this file
ACTION_SET='[.actions[] | "\(.action) \(.remote):\(.container)\(if .snapshot then "/" + .snapshot else "" end)"] | sort | join(", ")'

# berth apply/destroy with a deadline: a hung apply fails the test instead of hanging it.
# shellcheck disable=SC2317 # called through `run`
berth_t() { timeout -k 10 "${BERTH_APPLY_TIMEOUT:-180}" "$BERTH_BIN" --config-dir "$BERTH_CFG" --no-color "$@"; }
# After `run berth_t ...`: stop the test when berth hung (the hosts are not in a known state).
check_hung() { ((RC != 124 && RC != 137)) || bail "berth $1 did not finish within ${BERTH_APPLY_TIMEOUT:-180} s" "$(_last_output)"; }

# What a host says, through the stock client.
inst_json() { tb_lxc query "$1:/1.0/instances/$2" 2>/dev/null || echo '{}'; }
lxc_status() { inst_json "$1" "$2" | jq -r '.status // "absent"'; }
lxc_config() { inst_json "$1" "$2" | jq -r --arg k "$3" '.config[$k] // "<unset>"'; }
lxc_snaps() {
    tb_lxc query "$1:/1.0/instances/$2/snapshots" 2>/dev/null |
        jq -r '[.[] | split("/") | last] | sort | join(",")' 2>/dev/null || echo "<none>"
}
# lxc_names REMOTE [PREFIX]: the instance names on a remote (starting with PREFIX), sorted, comma-joined.
lxc_names() {
    tb_lxc query "$1:/1.0/instances" | jq -r --arg p "${2:-}" \
        '[.[] | split("/") | last | select(startswith($p))] | sort | join(",")'
}
# rootfs HOSTINDEX NAME [SNAPSHOT]: the container's (or snapshot's) rootfs on that host (dir pool:
# LXD's storage-pools/default, berthd's storage; the layout below is the same).
rootfs() {
    local dir="TB_HOST$1_LXD_DIR" pool
    pool=${!dir}/storage-pools/default
    [[ "$(tb_kind "$1")" == berthd ]] && pool=${!dir}/storage
    if [[ -n "${3:-}" ]]; then
        printf '%s/containers-snapshots/%s/%s/rootfs\n' "$pool" "$2" "$3"
    else
        printf '%s/containers/%s/rootfs\n' "$pool" "$2"
    fi
}
