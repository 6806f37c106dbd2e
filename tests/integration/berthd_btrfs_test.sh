#!/usr/bin/env bash
# berthd_btrfs_test.sh — berthd on a btrfs storage pool (a loop file the test makes and mounts):
# containers' volumes are subvolumes, snapshots are read-only subvolume snapshots, copies and
# restores work, and deletes leave no subvolume behind; driven by the stock lxc client.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v mkfs.btrfs >/dev/null || bail "mkfs.btrfs is missing (Debian package btrfs-progs)" ""
PASSWORD="pw-$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
chmod 711 "$WORK" # containers' mapped root must reach their rootfs
POOL=$WORK/pool
mkdir -p "$POOL"
truncate -s 1G "$WORK/pool.img"
mkfs.btrfs -q "$WORK/pool.img" >/dev/null
mount -o loop "$WORK/pool.img" "$POOL"
DIR=$WORK/berthd
LXCPATH=$DIR/containers
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup_pool() {
    kill_containers "$LXCPATH"
    # berthd first (the pool is busy while it runs), each waited for at most BERTHD_STOP_TIMEOUT s.
    _berthd_stop_all || true
    umount "$POOL" 2>/dev/null || umount -l "$POOL" 2>/dev/null || true
}
# Then lib.sh's own clean-up (berthd stopped, the work dir removed), with the test's exit status.
trap 'rc=$?; set +e; cleanup_pool; (exit $rc); _cleanup' EXIT

BERTHD_PORT=$(free_port)
export BERTHD_PORT
berthd_start "$DIR" "$PASSWORD" --storage-pool "$POOL"
export LXD_CONF=$WORK/lxc
mkdir -p "$LXD_CONF"
# shellcheck disable=SC2317 # called through `run`
l() { lxc "$@" </dev/null; }
is_subvolume() { [[ $(stat -c %i "$1" 2>/dev/null) == 256 ]] && echo yes || echo no; }

bb_image "$WORK/bb.tar.gz"
tb_lxc_q remote add b "$BERTHD_URL" --accept-certificate --password "$PASSWORD"
tb_lxc_q image import "$WORK/bb.tar.gz" b: --alias bb

run l storage list b: --format csv
assert_contains "$OUT" "default,btrfs,$POOL" "lxc storage list: the pool's driver is btrfs"
run l launch b:bb b:c1
assert_exit 0 "launch on a btrfs pool"
assert_eq RUNNING "$(lxc-info -P "$LXCPATH" -n c1 -sH)" "c1 runs"
assert_eq yes "$(is_subvolume "$POOL/containers/c1")" "c1's volume is a subvolume"
echo one >"$POOL/containers/c1/rootfs/root/mark"
run l storage volume list b:default --format csv
assert_contains "$OUT" "container,c1," "lxc storage volume list shows c1's volume"
run l snapshot b:c1 s1
assert_exit 0 "snapshot"
assert_eq yes "$(is_subvolume "$POOL/containers-snapshots/c1/s1")" "the snapshot is a subvolume"
assert_eq true "$(btrfs property get -ts "$POOL/containers-snapshots/c1/s1" ro | cut -d= -f2)" "and read-only"
echo two >"$POOL/containers/c1/rootfs/root/mark"
run l restore b:c1 s1
assert_exit 0 "restore"
assert_eq one "$(cat "$POOL/containers/c1/rootfs/root/mark")" "restore brought s1's files back"
assert_eq yes "$(is_subvolume "$POOL/containers/c1")" "the restored volume is a subvolume"
run l copy b:c1/s1 b:c2
assert_exit 0 "copy of a snapshot"
assert_eq yes "$(is_subvolume "$POOL/containers/c2")" "the copy is a subvolume"
assert_eq false "$(btrfs property get -ts "$POOL/containers/c2" ro | cut -d= -f2)" "and writable"
run l start b:c2
assert_exit 0 "the copy starts"
run l delete --force b:c1
assert_exit 0 "delete c1 with its snapshot"
run l delete --force b:c2
assert_exit 0 "delete c2"
assert_eq "" "$(btrfs subvolume list -o "$POOL" | awk '{print $NF}' | tr '\n' ' ' | sed 's/ $//')" "no subvolume is left"

finish
