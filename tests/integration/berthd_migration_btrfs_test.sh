#!/usr/bin/env bash
# berthd_migration_btrfs_test.sh — migrations between berthd hosts on btrfs pools (loop files the
# test makes, mounts and removes) and on a dir pool, driven by the stock lxc client:
# - btrfs to btrfs goes by btrfs send/receive: the container and its two snapshots arrive whole,
#   as subvolumes (the snapshots read-only), and start; a copy back the other way too, and of a
#   snapshot as an instance of its own;
# - btrfs to dir and dir to btrfs fall back to rsync, and arrive whole;
# - lxc copy --refresh (by rsync, to a btrfs pool and to a dir pool): after one file changed,
#   about that file crosses the wire (the target's log counts the bytes of each stream), a new
#   snapshot arrives, one gone from the source goes from the target; a running target is refused.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v mkfs.btrfs >/dev/null || bail "mkfs.btrfs is missing (Debian package btrfs-progs)" ""
chmod 711 "$WORK" # containers' mapped root must reach their rootfs
PASSWORD="pw-$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup_pools() {
    local h
    for h in a b c; do kill_containers "$WORK/$h/containers"; done
    berthd_stop_all
    btrfs_unmount_all
}
trap 'rc=$?; set +e; cleanup_pools; (exit $rc); _cleanup' EXIT

btrfs_loop a-pool
btrfs_loop b-pool
berthd_start "$WORK/a" "$PASSWORD" --storage-pool "$WORK/a-pool"
A_URL=$BERTHD_URL
berthd_start "$WORK/b" "$PASSWORD" --storage-pool "$WORK/b-pool"
B_URL=$BERTHD_URL
berthd_start "$WORK/c" "$PASSWORD"
C_URL=$BERTHD_URL
export LXD_CONF=$WORK/lxc
mkdir -p "$LXD_CONF"
# shellcheck disable=SC2317 # called through `run`
l() { timeout -k 5 120 lxc "$@" </dev/null; }
bb_image "$WORK/bb.tar.gz"
tb_lxc_q remote add a "$A_URL" --accept-certificate --password "$PASSWORD"
tb_lxc_q remote add b "$B_URL" --accept-certificate --password "$PASSWORD"
tb_lxc_q remote add c "$C_URL" --accept-certificate --password "$PASSWORD"
tb_lxc_q image import "$WORK/bb.tar.gz" a: --alias bb

pool_of() { case $1 in a | b) echo "$WORK/$1-pool" ;; c) echo "$WORK/c/storage" ;; esac; }
is_subvolume() { [[ $(stat -c %i "$1" 2>/dev/null) == 256 ]] && echo yes || echo no; }
ro() { btrfs property get -ts "$1" ro 2>/dev/null | cut -d= -f2; }
snap_marker() { cat "$(pool_of "$1")/containers-snapshots/$2/$3/rootfs/root/marker" 2>/dev/null || echo "<missing>"; }
# The bytes the last migration into HOST's NAME moved for the volume (the target's log).
moved() { grep -o "migration: $2: [0-9]* bytes" "$WORK/$1.log" | tail -1 | awk '{print $3}'; }
# how HOST: the way the last migration into HOST went (its log).
how() { grep -o 'by btrfs send/receive\|by rsync' "$WORK/$1.log" | tail -1; }

# whole HOST NAME: NAME on HOST has s1 and s2 with their content, starts, and has its marker.
whole() {
    local host=$1 name=$2
    assert_eq one "$(snap_marker "$host" "$name" s1)" "$host:$name/s1 holds its content"
    assert_eq two "$(snap_marker "$host" "$name" s2)" "$host:$name/s2 holds its content"
    run l start "$host:$name"
    assert_exit 0 "$host:$name starts"
    run l exec "$host:$name" -- sh -c 'cat /root/marker; stat -c %u:%g /root/marker'
    assert_eq "three
1000:1000" "$OUT" "inside $host:$name the marker has its content and its owner"
    tb_lxc_q stop "$host:$name" --force
}

tb_lxc_q launch a:bb a:c1
tb_lxc_q exec a:c1 -- sh -c 'echo one > /root/marker && /bin/busybox chown 1000:1000 /root/marker'
tb_lxc_q snapshot a:c1 s1
tb_lxc_q exec a:c1 -- sh -c 'echo two > /root/marker'
tb_lxc_q snapshot a:c1 s2
tb_lxc_q exec a:c1 -- sh -c 'echo three > /root/marker'
tb_lxc_q stop a:c1 --force

log "--- btrfs to btrfs: btrfs send/receive"
run l move a:c1 b:c1
assert_exit 0 "lxc move a:c1 b:c1 (btrfs to btrfs)"
assert_eq "by btrfs send/receive" "$(how b)" "it went by btrfs send/receive"
assert_eq yes "$(is_subvolume "$WORK/b-pool/containers/c1")" "b:c1's volume is a subvolume"
assert_eq false "$(ro "$WORK/b-pool/containers/c1")" "and writable"
assert_eq true "$(ro "$WORK/b-pool/containers-snapshots/c1/s2")" "its snapshot s2 is read-only"
check "s2 keeps the UUID it was received from" \
    test -n "$(btrfs subvolume show "$WORK/b-pool/containers-snapshots/c1/s2" | awk '/Received UUID/ {print $3}' | tr -d -)"
check "nothing is left in b's migration directory" test -z "$(ls -A "$WORK/b-pool/migration")"
check "nothing is left in a's migration directory" test -z "$(ls -A "$WORK/a-pool/migration")"
whole b c1
run l copy b:c1 a:c2
assert_exit 0 "lxc copy b:c1 a:c2 (btrfs to btrfs, back)"
assert_eq "by btrfs send/receive" "$(how a)" "it went by btrfs send/receive"
whole a c2
run l copy b:c1/s1 a:fromsnap
assert_exit 0 "lxc copy b:c1/s1 a:fromsnap (a snapshot as an instance, btrfs to btrfs)"
assert_eq "by btrfs send/receive" "$(how a)" "it went by btrfs send/receive"
assert_eq one "$(cat "$WORK/a-pool/containers/fromsnap/rootfs/root/marker")" "a:fromsnap holds the snapshot's content"
assert_eq false "$(ro "$WORK/a-pool/containers/fromsnap")" "and is writable"

log "--- btrfs to dir and back: rsync"
run l copy b:c1 c:c1
assert_exit 0 "lxc copy b:c1 c:c1 (btrfs to dir)"
assert_eq "by rsync" "$(how c)" "btrfs to dir goes by rsync"
whole c c1
run l copy c:c1 a:c3
assert_exit 0 "lxc copy c:c1 a:c3 (dir to btrfs)"
assert_eq "by rsync" "$(how a)" "dir to btrfs goes by rsync"
whole a c3

log "--- refresh (by rsync, btrfs pools or not)"
# 4 MB of data the refresh must not send again, and one small file it must.
head -c 4000000 /dev/urandom >"$WORK/b-pool/containers/c1/rootfs/root/big"
for host in a c; do
    run l copy b:c1 "$host:r1"
    assert_exit 0 "a first copy b:c1 $host:r1"
    check "the first copy moved the 4 MB ($(moved "$host" r1) bytes)" test "$(moved "$host" r1)" -gt 4000000
done
echo changed >"$WORK/b-pool/containers/c1/rootfs/root/marker"
for host in a c; do
    run l copy b:c1 "$host:r1" --refresh
    assert_exit 0 "lxc copy --refresh b:c1 $host:r1 after one file changed"
    assert_eq "by rsync" "$(how "$host")" "the refresh went by rsync"
    check "it moved about the changed file, not the 4 MB ($(moved "$host" r1) bytes)" test "$(moved "$host" r1)" -lt 100000
    assert_eq changed "$(cat "$(pool_of "$host")/containers/r1/rootfs/root/marker")" "$host:r1 has the changed file"
done
tb_lxc_q snapshot b:c1 s3
tb_lxc_q delete b:c1/s1
for host in a c; do
    run l copy b:c1 "$host:r1" --refresh
    assert_exit 0 "lxc copy --refresh b:c1 $host:r1 after a snapshot came and one went"
    check "it moved about nothing ($(moved "$host" r1/s3) bytes for s3)" test "$(moved "$host" r1/s3)" -lt 100000
    assert_eq changed "$(snap_marker "$host" r1 s3)" "$host:r1 has the new snapshot s3"
    assert_eq two "$(snap_marker "$host" r1 s2)" "$host:r1 keeps s2"
    run l info "$host:r1"
    assert_not_contains "$OUT" "s1 (" "$host:r1's s1, gone from the source, is gone"
    check "$host:r1 has no s1 on disk" test ! -e "$(pool_of "$host")/containers-snapshots/r1/s1"
done
assert_eq true "$(ro "$WORK/a-pool/containers-snapshots/r1/s3")" "on btrfs the refreshed snapshot is a read-only subvolume"
run l start a:r1
assert_exit 0 "the refreshed a:r1 starts"
run l exec a:r1 -- cat /root/marker
assert_eq changed "$OUT" "inside a:r1 the file is the changed one"
run l copy b:c1 a:r1 --refresh
assert_exit 1 "a refresh of a running target is refused"
assert_contains "$ERR" "stop it before refreshing it" "saying to stop it first"
run l exec a:r1 -- cat /root/marker
assert_eq changed "$OUT" "the running target is untouched"

finish
