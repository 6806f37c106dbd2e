#!/usr/bin/env bash
# tb.sh — start and stop a test bed of N real LXD 5.0 hosts on loopback.
#
# Each host is a separate `lxd` daemon (Debian's package) with its own
# LXD_DIR under the test bed directory, its own address 127.<slot>.0.<i>:8443,
# a random trust password and a `dir` storage pool. Nothing here touches
# /var/lib/lxd or the system's LXD service. See docs/testbed.md.
#
# Usage:
#   tb.sh start N DIR          start N hosts in DIR (DIR must not exist or be empty)
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

wait_daemon() {
    local dir=$1 i=$2 p
    if ! lxd_local "$dir" "$i" lxd waitready --timeout 60; then
        note "host$i did not become ready; last lines of its log:"
        tail -n 20 "$dir/host$i.log" "$dir/host$i.out" >&2 2>/dev/null || true
        return 1
    fi
    # If setsid had to fork, $! was not the daemon: find it by its log file.
    if ! pid_alive "$(host_pid "$dir" "$i")"; then
        for p in /proc/[0-9]*; do
            if [[ "$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")" == "lxd --group root --logfile $dir/host$i.log " ]]; then
                printf '%s\n' "${p#/proc/}" >"$dir/host$i.pid"
            fi
        done
    fi
}

init_host() {
    local dir=$1 i=$2 addr pwfile
    addr=$(host_addr "$dir" "$i")
    pwfile="$dir/host$i.password"
    (umask 077 && random_password >"$pwfile")
    chmod 600 "$pwfile"
    # The password goes through stdin, never on a command line.
    lxd_local "$dir" "$i" lxd init --preseed <<EOF
config:
  core.https_address: "$addr:$TB_PORT"
  core.trust_password: "$(cat "$pwfile")"
  images.auto_update_interval: "0"
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

# Stop host i: `lxd shutdown` (which stops its containers and restarts them
# when the daemon starts again), then kill what is left. With "force", the
# containers are force-stopped first (fast; used when the bed is removed).
halt_daemon() {
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
# callhooks): only those whose command line names this host's directory.
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
# (another bed's container) is never touched.
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
    (($# == 2)) || usage
    local n=$1 dir i slot
    if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > 100)); then
        die "N must be 1..100, got '$1'"
    fi
    dir=$(abs_dir "$2")
    need_cmd lxd lxc ss setsid realpath flock od
    [[ $EUID -eq 0 ]] || die "must run as root (LXD daemons)"
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
    slot=$(claim_slot "$dir")
    printf '%s\n' "$slot" >"$dir/slot"
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
    note "started $n host(s) on 127.$slot.0.1..$n:$TB_PORT; source $dir/env"
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
    # Stop the hosts in parallel.
    for ((i = 1; i <= n; i++)); do
        halt_daemon "$dir" "$i" force &
        pids+=("$!")
    done
    ((${#pids[@]} == 0)) || wait "${pids[@]}" || true
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
    local dir i pid state
    dir=$(abs_dir "$1")
    check_bed "$dir"
    for ((i = 1; i <= $(bed_n "$dir"); i++)); do
        pid=$(host_pid "$dir" "$i")
        state=down
        if pid_alive "$pid" && lxd_local "$dir" "$i" timeout 5 lxd waitready --timeout 2 >/dev/null 2>&1; then
            state=up
        fi
        printf 'host%s https://%s:%s pid=%s %s\n' "$i" "$(host_addr "$dir" "$i")" "$TB_PORT" "${pid:--}" "$state"
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
