#!/usr/bin/env bash
# berthd_instances_test.sh — images, instances and snapshots on a berthd the test starts, driven by
# the stock lxc client, with the effects checked on the host (liblxc's view through lxc-info, files
# in the pool, cgroup settings) and not only lxc's exit codes:
# - image import with an alias, image list/info, the fingerprint LXD computes, image delete;
# - launch (unprivileged, LXD's id map), list, info, config set/get (limits.memory in the cgroup; an
#   unknown key refused naming it), stop/start/restart, pause/resume;
# - snapshot, restore, copy of a container (with its snapshots, or --instance-only) and of a
#   snapshot, rename, delete, delete --force;
# - snapshots with expires_at are deleted when it passes; an ephemeral container that powers itself
#   off is deleted, another is recorded stopped; boot.autostart starts a container when berthd starts;
# - a running container survives a restart of berthd and is found again.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSWORD="pw-$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
# Containers' mapped root must reach its rootfs: every directory above it needs x for others.
chmod 711 "$WORK"
DIR=$WORK/berthd
BERTHD_PORT=$(free_port)
export BERTHD_PORT
berthd_start "$DIR" "$PASSWORD"
URL=$BERTHD_URL
LXCPATH=$DIR/containers
POOL=$DIR/storage
export LXD_CONF=$WORK/lxc
mkdir -p "$LXD_CONF"
l() { lxc "$@" </dev/null; }
state_of() { lxc-info -P "$LXCPATH" -n "$1" -sH 2>/dev/null || echo MISSING; }
# wait_until SECONDS CONDITION: until the shell condition holds (berthd's housekeeping runs every 5 s).
wait_until() {
    local end=$((SECONDS + $1))
    until eval "$2"; do
        [ "$SECONDS" -lt "$end" ] || return 0
        sleep 0.5
    done
}

# The containers this test starts are stopped when it ends, whatever happened.
# Then lib.sh's own clean-up (berthd stopped, the work dir removed), with the test's exit status.
trap 'rc=$?; set +e; kill_containers "$LXCPATH"; (exit $rc); _cleanup' EXIT

# --- the test bed's busybox image
bb_image "$WORK/bb.tar.gz"
FP=$(sha256sum "$WORK/bb.tar.gz" | cut -d' ' -f1)

run l remote add b "$URL" --accept-certificate --password "$PASSWORD"
assert_exit 0 "lxc remote add"

# --- images
run l image import "$WORK/bb.tar.gz" b: --alias bb
assert_exit 0 "lxc image import with an alias"
assert_contains "$OUT" "$FP" "the fingerprint is the tarball's sha256, as LXD computes it"
run l image list b: --format csv
assert_contains "$OUT" "bb,${FP:0:12},no,busybox test image,x86_64,CONTAINER" "lxc image list shows it with its alias"
run l image info b:bb
assert_contains "$OUT" "os: busybox" "lxc image info shows its properties"
assert_eq 1 "$(find "$DIR/images" -maxdepth 1 -name "$FP" | wc -l)" "the image file is in DIR/images"
run l image import "$WORK/bb.tar.gz" b:
assert_exit 1 "the same image twice is refused"

# --- launch, list, info
run l launch b:bb b:c1
assert_exit 0 "lxc launch"
assert_eq RUNNING "$(state_of c1)" "liblxc runs c1"
run l list b: --format csv
assert_contains "$OUT" "c1,RUNNING,,,CONTAINER,0" "lxc list (default columns)"
run l info b:c1
assert_contains "$OUT" "Status: RUNNING" "lxc info"
PID=$(lxc-info -P "$LXCPATH" -n c1 -pH)
assert_contains "$OUT" "PID: $PID" "lxc info shows liblxc's init pid"
SUBUID_BASE=$(awk -F: '$1=="root"{print $2; exit}' /etc/subuid)
assert_eq "${SUBUID_BASE:-1000000}" "$(stat -c %u "/proc/$PID")" "init runs as the mapped root (unprivileged, LXD's map)"
assert_eq "${SUBUID_BASE:-1000000}" "$(stat -c %u "$POOL/containers/c1/rootfs/bin")" "the rootfs is shifted to that map"
run l config get b:c1 volatile.base_image
assert_eq "$FP" "$OUT" "volatile.base_image is the image"
run l config get b:c1 image.os
assert_eq busybox "$OUT" "image.* keys come from the image's properties"
run l config get b:c1 volatile.idmap.next
assert_contains "$OUT" '"Isuid":true' "volatile.idmap.next holds LXD's JSON id map"

# --- config
run l config set b:c1 limits.memory 128MB
assert_exit 0 "lxc config set limits.memory on a running container"
run l config get b:c1 limits.memory
assert_eq 128MB "$OUT" "lxc config get reads it back"
# c1's memory cgroup, from its init's /proc entry (v1 "N:memory:/path", else the v2 "0::/path").
PID=$(lxc-info -P "$LXCPATH" -n c1 -pH)
CG=$(awk -F: '$2=="memory"{print "/sys/fs/cgroup/memory" $3 "/memory.limit_in_bytes"; exit}' "/proc/$PID/cgroup")
[ -n "$CG" ] || CG=$(awk -F: '$1=="0"{print "/sys/fs/cgroup" $3 "/memory.max"; exit}' "/proc/$PID/cgroup")
assert_eq 128000000 "$(cat "$CG" 2>/dev/null || echo "none at $CG")" "the limit is in c1's memory cgroup"
run l config set b:c1 user.note hello
assert_exit 0 "user.* keys are stored"
run l config set b:c1 bogus.key 1
assert_exit 1 "an unknown key is refused"
assert_contains "$ERR" "bogus.key" "and the error names it"
# The list (recursion=1) is made from text kept between changes: it must show each change at once,
# and agree with the same list made from the objects (a filter takes that path) and with a GET.
# list1 QUERY [JQ ARGS...]: the list with QUERY appended, through jq -S (by default the whole).
list1() {
    local query=$1
    shift
    [[ $# -gt 0 ]] || set -- .
    l query "b:/1.0/instances?recursion=1$query" | jq -S "$@"
}
assert_eq "hello" "$(list1 "" -r '.[] | select(.name == "c1") | .config["user.note"]')" \
    "the instance list shows a key set a moment before"
assert_eq "$(list1 "&filter=type%20eq%20container")" "$(list1 "")" \
    "the instance list is the same as the list made from the objects"
assert_eq "$(l query b:/1.0/instances/c1 | jq -S .)" "$(list1 "" '.[] | select(.name == "c1")')" \
    "and its c1 is GET /1.0/instances/c1"

# --- power
run l stop b:c1
assert_exit 0 "lxc stop"
assert_eq STOPPED "$(state_of c1)" "liblxc stopped c1"
run l start b:c1
assert_exit 0 "lxc start"
assert_eq RUNNING "$(state_of c1)" "liblxc runs c1 again"
OLD_PID=$(lxc-info -P "$LXCPATH" -n c1 -pH)
run l restart b:c1
assert_exit 0 "lxc restart"
NEW_PID=$(lxc-info -P "$LXCPATH" -n c1 -pH)
assert_eq yes "$([ -n "$NEW_PID" ] && [ "$NEW_PID" != "$OLD_PID" ] && echo yes || echo "no: $OLD_PID -> $NEW_PID")" \
    "restart made a new init"
run l pause b:c1
assert_exit 0 "lxc pause"
assert_eq FROZEN "$(state_of c1)" "liblxc froze c1"
run l list b:c1 --format csv -c ns
assert_eq "c1,FROZEN" "$OUT" "lxc list shows FROZEN"
assert_eq "Frozen 110" "$(list1 "" -r '.[] | select(.name == "c1") | "\(.status) \(.status_code)"')" \
    "the instance list (recursion=1) shows it frozen at once"
run l start b:c1
assert_exit 0 "lxc start of a frozen container resumes it"
assert_eq RUNNING "$(state_of c1)" "c1 runs again"

# --- snapshots
echo before >"$POOL/containers/c1/rootfs/root/mark"
run l snapshot b:c1
assert_exit 0 "lxc snapshot (named snap0)"
run l snapshot b:c1 s1
assert_exit 0 "lxc snapshot with a name"
run l info b:c1
assert_contains "$OUT" "snap0" "lxc info lists snap0"
assert_contains "$OUT" "s1" "and s1"
assert_eq before "$(cat "$POOL/containers-snapshots/c1/snap0/rootfs/root/mark")" "the snapshot holds the files"
echo after >"$POOL/containers/c1/rootfs/root/mark"
run l restore b:c1 snap0
assert_exit 0 "lxc restore"
assert_eq before "$(cat "$POOL/containers/c1/rootfs/root/mark")" "restore brought the snapshot's files back"
assert_eq RUNNING "$(state_of c1)" "a running container runs again after restore"

# --- snapshot expiry: one with expires_at goes when it passes (as LXD prunes them), one made
# with --no-expiry stays
WHEN=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%S+00:00)
run l query -X POST -d "{\"name\":\"brief\",\"expires_at\":\"$WHEN\"}" b:/1.0/instances/c1/snapshots
assert_exit 0 "a snapshot with expires_at"
assert_eq "$(date -u -d "$WHEN" +%Y-%m-%dT%H:%M:%SZ)" "$(l query b:/1.0/instances/c1/snapshots/brief | jq -r .expires_at)" \
    "its expires_at, in UTC"
run l snapshot b:c1 kept --no-expiry
assert_exit 0 "lxc snapshot --no-expiry"
wait_until 30 '! l query b:/1.0/instances/c1/snapshots | grep -q /brief'
assert_eq 0 "$(find "$POOL/containers-snapshots/c1" -maxdepth 1 -name brief | wc -l)" \
    "the expired snapshot is gone, with its files"
assert_eq "0001-01-01T00:00:00Z" "$(l query b:/1.0/instances/c1/snapshots/kept | jq -r .expires_at)" \
    "the one without expiry stays"
run l delete b:c1/kept
assert_exit 0 "lxc delete of a snapshot"
run l query -X POST -d '{"name":"bad","expires_at":"tomorrow"}' b:/1.0/instances/c1/snapshots
assert_exit 1 "an expires_at that is no time is refused"

# --- copies, rename, delete
run l copy b:c1 b:c2
assert_exit 0 "lxc copy of a container"
assert_eq before "$(cat "$POOL/containers/c2/rootfs/root/mark")" "the copy has the files"
run l config get b:c2 user.note
assert_eq hello "$OUT" "and the config"
assert_eq "s1,snap0" "$(l query b:/1.0/instances/c2/snapshots | jq -r '[.[] | split("/") | last] | sort | join(",")')" \
    "and the snapshots (lxc copy without --instance-only)"
assert_eq before "$(cat "$POOL/containers-snapshots/c2/s1/rootfs/root/mark")" "a copied snapshot holds its files"
run l copy b:c1 b:c1-only --instance-only
assert_exit 0 "lxc copy --instance-only"
assert_eq "[]" "$(l query b:/1.0/instances/c1-only/snapshots | jq -c .)" "copies no snapshot"
run l delete b:c1-only
assert_exit 0 "lxc delete of the instance-only copy"
run l copy b:c1/s1 b:c3
assert_exit 0 "lxc copy of a snapshot"
assert_eq before "$(cat "$POOL/containers/c3/rootfs/root/mark")" "the snapshot copy has its files"
run l start b:c2
assert_exit 0 "the copy starts"
assert_eq RUNNING "$(state_of c2)" "liblxc runs the copy"
run l rename b:c3 b:c4
assert_exit 0 "lxc rename of a stopped container"
assert_eq MISSING "$(state_of c3)" "the old name is gone from liblxc"
assert_eq 1 "$(find "$POOL/containers" -maxdepth 1 -name c4 | wc -l)" "the volume has the new name"
run l delete b:c2
assert_exit 1 "lxc delete of a running container is refused"
run l delete --force b:c2
assert_exit 0 "lxc delete --force"
assert_eq 0 "$(find "$POOL/containers" "$LXCPATH" -maxdepth 1 -name c2 | wc -l)" "c2's volume and config are gone"
run l delete b:c4
assert_exit 0 "lxc delete"

# --- what happens without berthd: an ephemeral container that powers itself off is deleted; another
# one is recorded stopped, and stays stopped across a restart of berthd, while one with
# boot.autostart is started by it
run l launch b:bb b:e1 --ephemeral
assert_exit 0 "lxc launch --ephemeral"
run l launch b:bb b:c5
assert_exit 0 "lxc launch c5"
for c in e1 c5; do lxc-attach -P "$LXCPATH" -n "$c" -- /bin/busybox poweroff </dev/null || true; done
wait_until 30 '[ "$(state_of e1)" = MISSING ]'
assert_eq "" "$(l list b:e1 --format csv -c n)" "the ephemeral container that powered off is deleted"
assert_eq 0 "$(find "$POOL/containers" -maxdepth 1 -name e1 | wc -l)" "with its volume"
wait_until 30 '[ "$(l config get b:c5 volatile.last_state.power)" = STOPPED ]'
assert_eq STOPPED "$(state_of c5)" "c5 powered off"
run l init b:bb b:c6
assert_exit 0 "lxc init c6"
run l config set b:c6 boot.autostart true
assert_exit 0 "boot.autostart on a stopped container"

# --- a restart of berthd leaves running containers running, and finds them again
PID=$(lxc-info -P "$LXCPATH" -n c1 -pH)
kill -TERM "$BERTHD_PID"
wait "$BERTHD_PID" 2>/dev/null || true
assert_eq RUNNING "$(state_of c1)" "c1 keeps running while berthd is down"
berthd_start "$DIR" "$PASSWORD"
run l list b:c1 --format csv -c ns
assert_eq "c1,RUNNING" "$OUT" "berthd finds c1 running after a restart"
assert_eq "$PID" "$(lxc-info -P "$LXCPATH" -n c1 -pH)" "the same init"
wait_until 30 '[ "$(state_of c6)" = RUNNING ]'
assert_eq RUNNING "$(state_of c6)" "berthd starts the container with boot.autostart"
assert_eq STOPPED "$(state_of c5)" "and not the one that powered itself off"
run l delete --force b:c5 b:c6
assert_exit 0 "delete c5 and c6"

# --- the image goes
run l delete --force b:c1
assert_exit 0 "delete c1"
run l image delete b:bb
assert_exit 0 "lxc image delete"
run l image list b: --format csv
assert_eq "" "$OUT" "no image left"
assert_eq 0 "$(find "$DIR/images" -maxdepth 1 -name "$FP*" | wc -l)" "its file is gone"
assert_eq 0 "$(lxc-ls -P "$LXCPATH" | wc -w)" "no container left"

finish
