#!/usr/bin/env bash
# tb.sh — start and stop a test bed of N real hosts on loopback: LXD 5.0 or berthd.
#
# Each host is a separate daemon, either `lxd` (Debian's package) or berth's own
# `berthd` (BERTHD_BIN), with its own directory (LXD_DIR) under the test bed
# directory, its own address 127.<slot>.0.<i>:8443, a random trust password and
# a `dir` storage pool. Nothing here touches /var/lib/lxd or the system's LXD
# service. See docs/testbed.md.
#
# Usage:
#   tb.sh start N DIR [--kinds K1,K2,...] [--cluster]
#                              start N hosts in DIR (DIR must not exist or be empty);
#                              each K is lxd or berthd, host by host (default lxd,
#                              or env TB_KINDS); a single K applies to every host;
#                              --cluster: the N hosts (all lxd) are the members m1..mN
#                              of one LXD cluster (host1 bootstraps it, the others join)
#   tb.sh image DIR [i...]     build the busybox image once, import it as `bb`
#   tb.sh stop DIR             stop everything, unmount, remove DIR (idempotent)
#   tb.sh stop-host DIR i      stop host i's daemon
#   tb.sh start-host DIR i     start host i's daemon again
#   tb.sh unused-addr DIR      print an https URL on the bed's subnet where nothing listens
#   tb.sh token DIR i [NAME]   print a fresh certificate-add token of host i
#   tb.sh status DIR           show the hosts and whether they answer
set -euo pipefail

readonly TB_SLOTS_DIR=${TB_SLOTS_DIR:-/tmp/berth-tb-slots}
readonly TB_SLOT_MIN=10
readonly TB_SLOT_MAX=250
readonly TB_PORT=8443
readonly TB_MARKER=.berth-testbed
# LXD must never reach the internet: it tries images.linuxcontainers.org at
# startup. A proxy on the discard port makes those attempts fail at once.
readonly TB_PROXY=http://127.0.0.1:9
# berthd hands running tasks up to 60 s after SIGTERM before it exits.
readonly TB_BERTHD_STOP_SECS=70

PROG=$(basename "$0")

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

note() {
    printf '%s: %s\n' "$PROG" "$*" >&2
}

usage() {
    sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "'$c' not found; run scripts/install-deps.sh"
    done
}

# Absolute path without requiring it to exist; refuse paths that would be unsafe.
abs_dir() {
    local d
    d=$(realpath -m -- "$1")
    case "$d" in
        /|/var/lib/lxd|/var/lib/lxd/*|/var/snap/*) die "refusing to use '$d' as a test bed directory" ;;
    esac
    [[ "$d" =~ [[:space:]] ]] && die "test bed directory must not contain whitespace: '$d'"
    printf '%s\n' "$d"
}

check_bed() {
    local dir=$1
    [[ -f "$dir/$TB_MARKER" ]] || die "'$dir' is not a test bed (no $TB_MARKER); start one with: $PROG start N $dir"
}

bed_n() { cat "$1/n"; }
bed_slot() { cat "$1/slot"; }
host_addr() { printf '127.%s.0.%s\n' "$(bed_slot "$1")" "$2"; }
host_dir() { printf '%s/host%s\n' "$1" "$2"; }
host_pid() { cat "$1/host$2.pid" 2>/dev/null || true; }
# Are the bed's hosts the members of one LXD cluster (start --cluster)?
is_cluster() { [[ -f "$1/cluster" ]]; }
# lxd or berthd; a bed started before kinds existed has only lxd hosts.
host_kind() { cat "$1/host$2.kind" 2>/dev/null || echo lxd; }
# berthd keeps its containers in liblxc's lxcpath DIR/containers (daemon/daemon.cpp).
host_lxcpath() { printf '%s/containers\n' "$(host_dir "$1" "$2")"; }

check_host_index() {
    local dir=$1 i=$2 n
    n=$(bed_n "$dir")
    if ! [[ "$i" =~ ^[0-9]+$ ]] || ((i < 1 || i > n)); then
        die "host index must be 1..$n, got '$i'"
    fi
}

pid_alive() {
    local pid=$1
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # A zombie is not alive.
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}

# Is anything listening on a TCP address of 127.<slot>.0.0/24?
slot_has_listeners() {
    local k=$1
    ss -Hltn 2>/dev/null | awk '{print $4}' | grep -q "^127\.$k\.0\."
}

# lxc/lxd commands for host i of a bed, always with an explicit LXD_DIR.
lxd_local() {
    local dir=$1 i=$2
    shift 2
    LXD_DIR=$(host_dir "$dir" "$i") LXD_CONF="$dir/lxc-conf" "$@"
}

# Every ancestor of DIR must be searchable by others (x bit), or containers
# fail to start ("Could not access ... Please grant it x access").
check_traversable() {
    local d=$1
    while [[ "$d" != / ]]; do
        d=$(dirname "$d")
        if [[ "$(stat -c %A "$d")" != ?????????[xt] ]]; then
            rmdir "$1" 2>/dev/null || true
            die "'$d' is not searchable by others (mode $(stat -c %a "$d")); containers could not start below it. Run: chmod o+x '$d'"
        fi
    done
}

# ---------------------------------------------------------------- slots

# Claim a free slot k: a directory TB_SLOTS_DIR/k holding the owner's DIR,
# made under a lock so that concurrent test beds never share a slot. Slots
# whose owner is gone are reclaimed; slots with anything listening on
# 127.<k>.0.* are skipped.
claim_slot() {
    local dir=$1 k owner fd
    mkdir -p "$TB_SLOTS_DIR"
    chmod 1777 "$TB_SLOTS_DIR" 2>/dev/null || true
    exec {fd}>>"$TB_SLOTS_DIR/.lock"
    flock -w 60 "$fd" || die "could not lock $TB_SLOTS_DIR/.lock"
    for ((k = TB_SLOT_MIN; k <= TB_SLOT_MAX; k++)); do
        if [[ -d "$TB_SLOTS_DIR/$k" ]]; then
            owner=$(cat "$TB_SLOTS_DIR/$k/owner" 2>/dev/null || true)
            [[ -n "$owner" && -e "$owner/$TB_MARKER" ]] && continue
            rm -rf "${TB_SLOTS_DIR:?}/$k" # stale: its bed is gone
        fi
        slot_has_listeners "$k" && continue
        mkdir "$TB_SLOTS_DIR/$k"
        printf '%s\n' "$dir" >"$TB_SLOTS_DIR/$k/owner"
        exec {fd}>&-
        printf '%s\n' "$k"
        return 0
    done
    exec {fd}>&-
    die "no free test bed slot in $TB_SLOTS_DIR ($TB_SLOT_MIN..$TB_SLOT_MAX)"
}

release_slot() {
    local dir=$1 k=$2 owner
    [[ -n "$k" && -d "$TB_SLOTS_DIR/$k" ]] || return 0
    owner=$(cat "$TB_SLOTS_DIR/$k/owner" 2>/dev/null || true)
    if [[ "$owner" == "$dir" ]]; then
        rm -rf "${TB_SLOTS_DIR:?}/$k"
    fi
}

# ---------------------------------------------------------------- hosts

random_password() {
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# parse_kinds N SPEC: KINDS, the kind of each host in order. SPEC is K1,K2,...
# with each K lxd or berthd; missing or empty entries are lxd; a SPEC without a
# comma is every host's kind.
KINDS=()
parse_kinds() {
    local n=$1 spec=${2:-lxd} i k given=()
    IFS=, read -r -a given <<<"$spec"
    ((${#given[@]} <= n)) || die "kinds '$spec' name ${#given[@]} hosts, but the bed has $n"
    for k in "${given[@]}"; do
        [[ -z "$k" || "$k" == lxd || "$k" == berthd ]] || die "unknown host kind '$k' in '$spec'; each must be lxd or berthd"
    done
    KINDS=()
    for ((i = 0; i < n; i++)); do
        if [[ "$spec" != *,* ]]; then
            KINDS+=("$spec")
        else
            k=${given[i]:-}
            KINDS+=("${k:-lxd}")
        fi
    done
}

# The berthd executable: env BERTHD_BIN, else the one host i was started with,
# else `berthd` in PATH. Printed as an absolute path.
berthd_bin() {
    local dir=$1 i=$2 bin
    bin=${BERTHD_BIN:-$(cat "$dir/host$i.berthd" 2>/dev/null || echo berthd)}
    if [[ "$bin" != */* ]]; then
        bin=$(command -v "$bin" 2>/dev/null) ||
            die "berthd not found in PATH; set BERTHD_BIN to the berthd binary (e.g. build/daemon/berthd)"
    fi
    [[ -f "$bin" && -x "$bin" ]] || die "berthd binary '$bin' is missing or not executable; set BERTHD_BIN (e.g. build/daemon/berthd)"
    realpath -- "$bin"
}

# If setsid had to fork, $! was not the daemon: find it by its command line.
find_daemon_pid() {
    local dir=$1 i=$2 cmdline=$3 p
    pid_alive "$(host_pid "$dir" "$i")" && return 0
    for p in /proc/[0-9]*; do
        if [[ "$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")" == "$cmdline" ]]; then
            printf '%s\n' "${p#/proc/}" >"$dir/host$i.pid"
        fi
    done
}

# The trust password, made once per host and kept (mode 600).
make_password() {
    local pwfile="$1/host$2.password"
    [[ -s "$pwfile" ]] && return 0
    (umask 077 && random_password >"$pwfile")
    chmod 600 "$pwfile"
}

# Start host i's daemon (not init) and wait until it answers.
spawn_daemon() {
    local dir=$1 i=$2 hdir pid
    hdir=$(host_dir "$dir" "$i")
    pid=$(host_pid "$dir" "$i")
    if pid_alive "$pid"; then
        note "host$i already running (pid $pid)"
        return 0
    fi
    mkdir -p "$hdir"
    chmod 0711 "$hdir"
    case "$(host_kind "$dir" "$i")" in
        berthd) spawn_berthd "$dir" "$i" ;;
        *) spawn_lxd "$dir" "$i" ;;
    esac
}

berthd_cmdline() {
    local dir=$1 i=$2
    printf '%s --dir %s --listen %s --trust-password-file %s --log-level debug ' \
        "$(berthd_bin "$dir" "$i")" "$(host_dir "$dir" "$i")" "$(host_addr "$dir" "$i"):$TB_PORT" "$dir/host$i.password"
}

# berthd takes its https address and trust password at every start (the
# password from the file, never the command line); it has a default profile
# with the root disk on its pool, so there is nothing to init. It logs to stderr.
spawn_berthd() {
    local dir=$1 i=$2 bin
    bin=$(berthd_bin "$dir" "$i")
    printf '%s\n' "$bin" >"$dir/host$i.berthd"
    make_password "$dir" "$i"
    setsid "$bin" --dir "$(host_dir "$dir" "$i")" --listen "$(host_addr "$dir" "$i"):$TB_PORT" \
        --trust-password-file "$dir/host$i.password" --log-level debug \
        </dev/null >>"$dir/host$i.log" 2>&1 &
    printf '%s\n' "$!" >"$dir/host$i.pid"
}

spawn_lxd() {
    local dir=$1 i=$2 hdir
    hdir=$(host_dir "$dir" "$i")
    # setsid: the daemon must not die with the shell that started it, nor get
    # its terminal's signals. No stdin; its own log file.
    env LXD_DIR="$hdir" \
        http_proxy="$TB_PROXY" https_proxy="$TB_PROXY" \
        HTTP_PROXY="$TB_PROXY" HTTPS_PROXY="$TB_PROXY" \
        no_proxy=127.0.0.0/8,localhost NO_PROXY=127.0.0.0/8,localhost \
        setsid lxd --group root --logfile "$dir/host$i.log" \
        </dev/null >>"$dir/host$i.out" 2>&1 &
    printf '%s\n' "$!" >"$dir/host$i.pid"
}

# Does host i answer GET /1.0 on its unix socket (or, failing that, its https address)?
berthd_answers() {
    local dir=$1 i=$2
    curl -sf --max-time 2 --unix-socket "$(host_dir "$dir" "$i")/unix.socket" http://x/1.0 >/dev/null 2>&1 ||
        curl -skf --max-time 2 "https://$(host_addr "$dir" "$i"):$TB_PORT/1.0" >/dev/null 2>&1
}

wait_daemon() {
    local dir=$1 i=$2 t cmdline
    if [[ "$(host_kind "$dir" "$i")" == berthd ]]; then
        cmdline=$(berthd_cmdline "$dir" "$i")
        for ((t = 0; t < 100; t++)); do
            find_daemon_pid "$dir" "$i" "$cmdline"
            berthd_answers "$dir" "$i" && return 0
            # Gone (a bad option, a held lock, a taken port): no use waiting.
            pid_alive "$(host_pid "$dir" "$i")" || break
            sleep 0.1
        done
        note "host$i (berthd) did not answer on its unix socket or https address; last lines of its log:"
        tail -n 20 "$dir/host$i.log" >&2 2>/dev/null || true
        return 1
    fi
    if ! lxd_local "$dir" "$i" lxd waitready --timeout 60; then
        note "host$i did not become ready; last lines of its log:"
        tail -n 20 "$dir/host$i.log" "$dir/host$i.out" >&2 2>/dev/null || true
        return 1
    fi
    find_daemon_pid "$dir" "$i" "lxd --group root --logfile $dir/host$i.log "
}

init_host() {
    local dir=$1 i=$2 addr
    addr=$(host_addr "$dir" "$i")
    make_password "$dir" "$i"
    if [[ "$(host_kind "$dir" "$i")" == berthd ]]; then
        touch "$dir/host$i.initialized"
        return 0
    fi
    if is_cluster "$dir" && ((i > 1)); then
        join_member "$dir" "$i"
        touch "$dir/host$i.initialized"
        return 0
    fi
    # Host1 of a cluster bed bootstraps the cluster as member m1 (its trust password is the
    # cluster's); the others join it (join_member).
    local cluster_address='' cluster_section=''
    if is_cluster "$dir"; then
        cluster_address="  cluster.https_address: \"$addr:$TB_PORT\""
        cluster_section=$'cluster:\n  server_name: m1\n  enabled: true'
    fi
    # The password goes through stdin, never on a command line.
    lxd_local "$dir" "$i" lxd init --preseed <<EOF
config:
  core.https_address: "$addr:$TB_PORT"
$cluster_address
  core.trust_password: "$(cat "$dir/host$i.password")"
  images.auto_update_interval: "0"
$cluster_section
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
EOF
    touch "$dir/host$i.initialized"
}

# Host i (2..N) of a cluster bed joins the cluster host1 made as member m<i>, with a join token
# from host1 (testbed.md); every member's password file holds the cluster's. Joins run one after
# another: init_host is called in order.
join_member() {
    local dir=$1 i=$2 addr token
    addr=$(host_addr "$dir" "$i")
    cp "$dir/host1.password" "$dir/host$i.password"
    token=$(lxd_local "$dir" 1 lxc cluster add "m$i" --quiet </dev/null) || die "no join token for m$i from host1"
    lxd_local "$dir" "$i" lxd init --preseed <<EOF
cluster:
  enabled: true
  server_address: "$addr:$TB_PORT"
  cluster_token: "$token"
  member_config:
  - {entity: storage-pool, name: default, key: source, value: ""}
EOF
}

# Wait until host i accepts TCP connections on its https address.
wait_https() {
    local dir=$1 i=$2 addr t
    addr=$(host_addr "$dir" "$i")
    for ((t = 0; t < 100; t++)); do
        if ss -Hltn 2>/dev/null | awk '{print $4}' | grep -qx "$addr:$TB_PORT"; then
            return 0
        fi
        sleep 0.1
    done
    die "host$i does not listen on $addr:$TB_PORT"
}

# Stop host i. With "force", its containers are stopped too, fast (used when
# the bed is removed); without, they come back (LXD) or keep running (berthd).
halt_daemon() {
    case "$(host_kind "$1" "$2")" in
        berthd) halt_berthd "$@" ;;
        *) halt_lxd "$@" ;;
    esac
}

# berthd: SIGTERM, then wait for it to exit (it finishes running tasks first).
# Its containers run under their own liblxc monitors and outlive it by design;
# with "force" they are killed through liblxc afterwards, then whatever else
# names the host's directory.
halt_berthd() {
    local dir=$1 i=$2 mode=${3:-} pid hdir lxcpath t c
    hdir=$(host_dir "$dir" "$i")
    pid=$(host_pid "$dir" "$i")
    if pid_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((t = 0; t < TB_BERTHD_STOP_SECS * 10; t++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        if pid_alive "$pid"; then
            note "host$i (berthd, pid $pid) did not exit ${TB_BERTHD_STOP_SECS} s after SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$dir/host$i.pid"
    [[ "$mode" == force ]] || return 0
    lxcpath=$(host_lxcpath "$dir" "$i")
    if [[ -d "$lxcpath" ]]; then
        while IFS= read -r c; do
            [[ -n "$c" ]] || continue
            timeout 30 lxc-stop -P "$lxcpath" -n "$c" -k </dev/null >/dev/null 2>&1 ||
                note "host$i: lxc-stop -P $lxcpath -n $c -k failed"
        done < <(lxc-ls -P "$lxcpath" -1 --active 2>/dev/null)
    fi
    kill_leftovers "$hdir"
}

# LXD: `lxd shutdown` (which stops its containers and restarts them when the
# daemon starts again), then kill what is left.
halt_lxd() {
    local dir=$1 i=$2 mode=${3:-} pid hdir t
    hdir=$(host_dir "$dir" "$i")
    pid=$(host_pid "$dir" "$i")
    if pid_alive "$pid" && [[ -S "$hdir/unix.socket" ]]; then
        if [[ "$mode" == force ]]; then
            timeout 60 env LXD_DIR="$hdir" LXD_CONF="$dir/lxc-conf" \
                lxc stop --all --force -q </dev/null >/dev/null 2>&1 || true
        fi
        timeout 40 env LXD_DIR="$hdir" lxd shutdown --timeout 30 </dev/null >/dev/null 2>&1 || true
        for ((t = 0; t < 50; t++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
    fi
    if pid_alive "$pid"; then
        note "host$i (pid $pid) did not shut down; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    kill_leftovers "$hdir"
    rm -f "$dir/host$i.pid"
}

# Kill processes that belong to this host (container monitors, forkstart,
# callhooks, berthd itself): only those whose command line names this host's
# directory.
kill_leftovers() {
    local hdir=$1 p cmd pids=()
    for p in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline" || true)
        [[ "$cmd" == *"$hdir/"* || "$cmd" == *"$hdir "* ]] && pids+=("${p#/proc/}")
    done
    ((${#pids[@]} == 0)) && return 0
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.2
    remove_stale_cgroups "$hdir"
}

# After a hard kill liblxc leaves the (empty) cgroups of the host's containers
# behind. rmdir removes only empty ones, so a busy cgroup of the same name
# (another bed's container) is never touched. DIR/containers holds one entry
# per container for both kinds (LXD's links, berthd's lxcpath).
remove_stale_cgroups() {
    local hdir=$1 c name
    for c in "$hdir"/containers/*; do
        [[ -e "$c" ]] || continue
        name=$(basename "$c")
        find /sys/fs/cgroup/*/ /sys/fs/cgroup/ -maxdepth 1 -type d \
            \( -name "lxc.payload.$name" -o -name "lxc.monitor.$name" \) 2>/dev/null |
            while IFS= read -r d; do
                find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
            done
    done
}

# Unmount everything below DIR, deepest first; lazily if busy.
unmount_under() {
    local dir=$1 m mounts
    for _ in 1 2 3; do
        mapfile -t mounts < <(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
        ((${#mounts[@]} == 0)) && return 0
        for m in "${mounts[@]}"; do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
    done
    mapfile -t mounts < <(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo)
    ((${#mounts[@]} == 0)) || note "still mounted under $dir: ${mounts[*]}"
}

write_env() {
    local dir=$1 n i addr
    n=$(bed_n "$dir")
    {
        printf '# test bed %s — source this file\n' "$dir"
        printf 'export TB_DIR=%q\n' "$dir"
        printf 'export TB_N=%q\n' "$n"
        printf 'export TB_SLOT=%q\n' "$(bed_slot "$dir")"
        for ((i = 1; i <= n; i++)); do
            addr=$(host_addr "$dir" "$i")
            printf 'export TB_HOST%s_ADDR=%q\n' "$i" "$addr:$TB_PORT"
            printf 'export TB_HOST%s_URL=%q\n' "$i" "https://$addr:$TB_PORT"
            printf 'export TB_HOST%s_LXD_DIR=%q\n' "$i" "$(host_dir "$dir" "$i")"
            printf 'export TB_HOST%s_SOCKET=%q\n' "$i" "$(host_dir "$dir" "$i")/unix.socket"
            printf 'export TB_HOST%s_PASSWORD_FILE=%q\n' "$i" "$dir/host$i.password"
            printf 'export TB_HOST%s_KIND=%q\n' "$i" "$(host_kind "$dir" "$i")"
        done
        printf 'export LXD_CONF=%q\n' "$dir/lxc-conf"
    } >"$dir/env"
}

# Register host i as remote h<i> in the bed's private lxc client config.
add_lxc_remote() {
    local dir=$1 i=$2 addr
    addr=$(host_addr "$dir" "$i")
    LXD_CONF="$dir/lxc-conf" lxc remote remove "h$i" >/dev/null 2>&1 || true
    if ! LXD_CONF="$dir/lxc-conf" lxc remote add "h$i" "https://$addr:$TB_PORT" \
        --password "$(cat "$dir/host$i.password")" --accept-certificate </dev/null >"$dir/lxc-remote.out" 2>&1; then
        cat "$dir/lxc-remote.out" >&2
        return 1
    fi
}

# ---------------------------------------------------------------- commands

cmd_start() {
    local args=() spec=${TB_KINDS:-} n dir i slot list cluster=0
    while (($# > 0)); do
        case "$1" in
            --cluster) cluster=1; shift ;;
            --kinds) (($# >= 2)) || usage; spec=$2; shift 2 ;;
            --kinds=*) spec=${1#--kinds=}; shift ;;
            -*) note "unknown option '$1'"; usage ;;
            *) args+=("$1"); shift ;;
        esac
    done
    ((${#args[@]} == 2)) || usage
    n=${args[0]}
    if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > 100)); then
        die "N must be 1..100, got '$n'"
    fi
    dir=$(abs_dir "${args[1]}")
    parse_kinds "$n" "$spec"
    list=$(IFS=, && printf '%s' "${KINDS[*]}")
    if ((cluster)) && [[ ",$list," == *,berthd,* ]]; then
        die "--cluster makes an LXD cluster: every host must be lxd, got '$list'"
    fi
    need_cmd lxc ss setsid realpath flock od
    if [[ ",$list," == *,lxd,* ]]; then need_cmd lxd; fi
    if [[ ",$list," == *,berthd,* ]]; then
        need_cmd curl lxc-ls lxc-stop
        berthd_bin "$dir" 0 >/dev/null # dies now, before anything is made, if it is missing
    fi
    [[ $EUID -eq 0 ]] || die "must run as root (the daemons make namespaces, cgroups and mounts)"
    if [[ -e "$dir" ]]; then
        [[ -d "$dir" && -z "$(ls -A "$dir")" ]] || die "'$dir' exists and is not empty"
    fi
    # Unix socket paths are limited to 108 bytes.
    ((${#dir} + 30 < 108)) || die "'$dir' is too long for LXD's unix socket path; use a shorter one (e.g. under /tmp)"
    mkdir -p "$dir"
    # Container roots (mapped uids) must be able to traverse to their rootfs.
    chmod 0711 "$dir"
    check_traversable "$dir"
    touch "$dir/$TB_MARKER"
    printf '%s\n' "$n" >"$dir/n"
    if ((cluster)); then
        touch "$dir/cluster"
        list+=", one cluster"
    fi
    slot=$(claim_slot "$dir")
    printf '%s\n' "$slot" >"$dir/slot"
    for ((i = 1; i <= n; i++)); do printf '%s\n' "${KINDS[i - 1]}" >"$dir/host$i.kind"; done
    mkdir -p "$dir/lxc-conf"
    chmod 700 "$dir/lxc-conf"

    # On any failure below, tear down what was started.
    trap 'note "start failed; cleaning up $dir"; "$0" stop "$dir" || true' ERR
    for ((i = 1; i <= n; i++)); do spawn_daemon "$dir" "$i"; done
    for ((i = 1; i <= n; i++)); do wait_daemon "$dir" "$i"; done
    for ((i = 1; i <= n; i++)); do init_host "$dir" "$i"; done
    for ((i = 1; i <= n; i++)); do wait_https "$dir" "$i"; done
    write_env "$dir"
    for ((i = 1; i <= n; i++)); do add_lxc_remote "$dir" "$i"; done
    trap - ERR
    note "started $n host(s) ($list) on 127.$slot.0.1..$n:$TB_PORT; source $dir/env"
}

cmd_start_host() {
    (($# == 2)) || usage
    local dir i
    dir=$(abs_dir "$1")
    i=$2
    check_bed "$dir"
    check_host_index "$dir" "$i"
    spawn_daemon "$dir" "$i"
    wait_daemon "$dir" "$i"
    [[ -f "$dir/host$i.initialized" ]] || init_host "$dir" "$i"
    wait_https "$dir" "$i"
}

cmd_stop_host() {
    (($# == 2)) || usage
    local dir i
    dir=$(abs_dir "$1")
    i=$2
    check_bed "$dir"
    check_host_index "$dir" "$i"
    halt_daemon "$dir" "$i"
}

cmd_stop() {
    (($# == 1)) || usage
    local dir n i slot pids=()
    dir=$(abs_dir "$1")
    [[ -e "$dir" ]] || return 0
    if [[ ! -f "$dir/$TB_MARKER" ]]; then
        [[ -d "$dir" && -z "$(ls -A "$dir")" ]] && { rmdir "$dir"; return 0; }
        die "'$dir' is not a test bed (no $TB_MARKER); not removing it"
    fi
    n=$(cat "$dir/n" 2>/dev/null || echo 0)
    slot=$(cat "$dir/slot" 2>/dev/null || true)
    if [[ -f "$dir/cluster" ]]; then
        # A cluster: every container at once through a member that runs, while the cluster still
        # has its quorum; then all members together (one left alone waits for a quorum it lost).
        for ((i = 1; i <= n; i++)); do
            pid_alive "$(host_pid "$dir" "$i")" || continue
            timeout 60 env LXD_DIR="$(host_dir "$dir" "$i")" LXD_CONF="$dir/lxc-conf" \
                lxc stop --all --force -q </dev/null >/dev/null 2>&1 || true
            break
        done
        for ((i = 1; i <= n; i++)); do
            halt_daemon "$dir" "$i" &
            pids+=("$!")
        done
        wait "${pids[@]}" || true
    else
        # Stop the hosts in parallel.
        for ((i = 1; i <= n; i++)); do
            halt_daemon "$dir" "$i" force &
            pids+=("$!")
        done
        ((${#pids[@]} == 0)) || wait "${pids[@]}" || true
    fi
    unmount_under "$dir"
    if awk -v d="$dir/" 'index($5, d) == 1 {f=1} END {exit !f}' /proc/self/mountinfo; then
        die "mounts remain under $dir; not removing it"
    fi
    rm -rf --one-file-system -- "$dir"
    release_slot "$dir" "$slot"
}

build_image() {
    local dir=$1 img tmp a arch
    img="$dir/bb.tar.gz"
    [[ -s "$img" ]] && return 0
    need_cmd tar gzip
    local busybox
    busybox=$(command -v busybox || true)
    [[ -x /bin/busybox ]] && busybox=/bin/busybox
    [[ -n "$busybox" ]] || die "busybox not found; install busybox-static"
    arch=$(uname -m)
    tmp=$(mktemp -d "$dir/img.XXXXXX")
    mkdir -p "$tmp"/rootfs/{bin,sbin,etc,proc,sys,dev,tmp,root}
    cp "$busybox" "$tmp/rootfs/bin/busybox"
    for a in sh ls cat echo sleep hostname ps mount; do ln -s busybox "$tmp/rootfs/bin/$a"; done
    ln -s ../bin/busybox "$tmp/rootfs/sbin/init"
    cat >"$tmp/metadata.yaml" <<EOF
architecture: $arch
creation_date: $(date +%s)
properties: {os: busybox, release: "1.35", description: busybox test image}
EOF
    tar -C "$tmp" -czf "$img.part" metadata.yaml rootfs
    mv "$img.part" "$img"
    rm -rf "$tmp"
}

cmd_image() {
    (($# >= 1)) || usage
    local dir i hosts=()
    dir=$(abs_dir "$1")
    shift
    check_bed "$dir"
    if (($# == 0)); then
        for ((i = 1; i <= $(bed_n "$dir"); i++)); do hosts+=("$i"); done
    else
        hosts=("$@")
    fi
    build_image "$dir"
    for i in "${hosts[@]}"; do
        check_host_index "$dir" "$i"
        if lxd_local "$dir" "$i" lxc image info bb >/dev/null 2>&1; then
            continue
        fi
        lxd_local "$dir" "$i" lxc image import "$dir/bb.tar.gz" --alias bb -q </dev/null >/dev/null ||
            die "importing the bb image on host$i failed"
    done
}

cmd_unused_addr() {
    (($# == 1)) || usage
    local dir slot i
    dir=$(abs_dir "$1")
    check_bed "$dir"
    slot=$(bed_slot "$dir")
    for ((i = 254; i > $(bed_n "$dir"); i--)); do
        if ! ss -Hltn 2>/dev/null | awk '{print $4}' | grep -qx "127\.$slot\.0\.$i:$TB_PORT"; then
            printf 'https://127.%s.0.%s:%s\n' "$slot" "$i" "$TB_PORT"
            return 0
        fi
    done
    die "no unused address on 127.$slot.0.0/24"
}

cmd_token() {
    (($# == 2 || $# == 3)) || usage
    local dir i name
    dir=$(abs_dir "$1")
    i=$2
    name=${3:-berth-$RANDOM$RANDOM}
    check_bed "$dir"
    check_host_index "$dir" "$i"
    lxd_local "$dir" "$i" lxc config trust add --name "$name" -q </dev/null
}

cmd_status() {
    (($# == 1)) || usage
    local dir i pid kind state
    dir=$(abs_dir "$1")
    check_bed "$dir"
    for ((i = 1; i <= $(bed_n "$dir"); i++)); do
        pid=$(host_pid "$dir" "$i")
        kind=$(host_kind "$dir" "$i")
        state=down
        if pid_alive "$pid"; then
            if [[ "$kind" == berthd ]]; then
                berthd_answers "$dir" "$i" && state=up
            elif lxd_local "$dir" "$i" timeout 5 lxd waitready --timeout 2 >/dev/null 2>&1; then
                state=up
            fi
        fi
        printf 'host%s https://%s:%s %s pid=%s %s\n' "$i" "$(host_addr "$dir" "$i")" "$TB_PORT" "$kind" "${pid:--}" "$state"
    done
}

main() {
    (($# >= 1)) || usage
    local cmd=$1
    shift
    case "$cmd" in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        start-host) cmd_start_host "$@" ;;
        stop-host) cmd_stop_host "$@" ;;
        image) cmd_image "$@" ;;
        unused-addr) cmd_unused_addr "$@" ;;
        token) cmd_token "$@" ;;
        status) cmd_status "$@" ;;
        -h | --help | help) usage ;;
        *) note "unknown command '$cmd'"; usage ;;
    esac
}

main "$@"
