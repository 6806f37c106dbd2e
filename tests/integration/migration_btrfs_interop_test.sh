#!/usr/bin/env bash
# migration_btrfs_interop_test.sh — btrfs send/receive between a real LXD 5.0 host and berthd, both
# on btrfs pools (loop files the test makes, mounts and removes), driven by the stock lxc client:
# LXD's stream format (the JSON header of subvolume UUIDs, then one stream per subvolume) both
# ways: a container with two snapshots moves LXD -> berthd and back, arrives whole (snapshots'
# content, owners inside, read-only snapshot subvolumes) and starts; both hosts say the move went
# by btrfs; running containers copy with --stateless both ways; a refresh from LXD into berthd
# goes by rsync (berthd's choice) and one from berthd into LXD by btrfs (LXD's), each bringing the
# changed file and a new snapshot; a nested subvolume in an LXD container arrives as a plain
# directory; a move from LXD's btrfs pool to a berthd dir pool falls back to rsync.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v mkfs.btrfs >/dev/null || bail "mkfs.btrfs is missing (Debian package btrfs-progs)" ""
# shellcheck disable=SC2317 # called through `run`
l() { timeout -k 5 180 lxc "$@" </dev/null; }

tb_start 1 lxd
chmod 711 "$WORK"
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup_pools() {
    tb_lxc storage delete h1:bt >/dev/null 2>&1 || true
    kill_containers "$WORK/b/containers"
    kill_containers "$WORK/d/containers"
    berthd_stop_all
    btrfs_unmount_all
}
trap 'rc=$?; set +e; cleanup_pools; (exit $rc); _cleanup' EXIT

btrfs_loop lxd-pool
btrfs_loop b-pool
PASSWORD="pw-$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
berthd_start "$WORK/b" "$PASSWORD" --storage-pool "$WORK/b-pool"
B_URL=$BERTHD_URL
berthd_start "$WORK/d" "$PASSWORD"
D_URL=$BERTHD_URL
tb_lxc_q remote add b "$B_URL" --accept-certificate --password "$PASSWORD"
tb_lxc_q remote add d "$D_URL" --accept-certificate --password "$PASSWORD"
tb_lxc_q storage create h1:bt btrfs "source=$WORK/lxd-pool"

snap_marker() { cat "$WORK/b-pool/containers-snapshots/$1/$2/rootfs/root/marker" 2>/dev/null || echo "<missing>"; }
lxd_snap_marker() {
    cat "$WORK/lxd-pool/containers-snapshots/$1/$2/rootfs/root/marker" 2>/dev/null || echo "<missing>"
}
# how HOST-LOG: the way the last migration the berthd whose log that is took part in went.
how() { grep -o 'by btrfs send/receive\|by rsync' "$WORK/$1.log" | tail -1; }
# shellcheck disable=SC2317 # called through `run`
inside() { l exec "$1" -- sh -c 'cat /root/marker; stat -c %u:%g /root/marker'; }

log "--- LXD (btrfs) -> berthd (btrfs)"
tb_lxc_q launch h1:bb h1:m1 -s bt
tb_lxc_q exec h1:m1 -- sh -c 'echo one > /root/marker && /bin/busybox chown 1000:1000 /root/marker'
tb_lxc_q snapshot h1:m1 s1
tb_lxc_q exec h1:m1 -- sh -c 'echo two > /root/marker'
tb_lxc_q snapshot h1:m1 s2
tb_lxc_q exec h1:m1 -- sh -c 'echo three > /root/marker'
tb_lxc_q stop h1:m1 --force
run l move h1:m1 b:m1
assert_exit 0 "lxc move h1:m1 b:m1 (LXD btrfs to berthd btrfs)"
assert_eq "by btrfs send/receive" "$(how b)" "berthd received it by btrfs send/receive"
assert_eq one "$(snap_marker m1 s1)" "b:m1/s1 holds its content"
assert_eq two "$(snap_marker m1 s2)" "b:m1/s2 holds its content"
assert_eq true "$(btrfs property get -ts "$WORK/b-pool/containers-snapshots/m1/s2" ro | cut -d= -f2)" \
    "b:m1/s2 is a read-only subvolume"
run l start b:m1
assert_exit 0 "b:m1 starts"
run inside b:m1
assert_eq "three
1000:1000" "$OUT" "inside b:m1 the marker has its content and its owner"
tb_lxc_q stop b:m1 --force

log "--- berthd (btrfs) -> LXD (btrfs)"
run l move b:m1 h1:m1 -s bt
assert_exit 0 "lxc move b:m1 h1:m1 -s bt (berthd btrfs to LXD btrfs)"
assert_eq "by btrfs send/receive" "$(how b)" "berthd sent it by btrfs send/receive"
assert_eq one "$(lxd_snap_marker m1 s1)" "h1:m1/s1 holds its content"
assert_eq two "$(lxd_snap_marker m1 s2)" "h1:m1/s2 holds its content"
run l start h1:m1
assert_exit 0 "h1:m1 starts on LXD"
run inside h1:m1
assert_eq "three
1000:1000" "$OUT" "inside h1:m1 the marker has its content and its owner"
run l restore h1:m1 s1
assert_exit 0 "LXD restores a snapshot that came from berthd by btrfs"
tb_lxc_q stop h1:m1 --force

log "--- running containers, --stateless, both ways: one btrfs stream of a snapshot, no second pass"
tb_lxc_q start h1:m1
run l copy h1:m1 b:run1 --stateless
assert_exit 0 "lxc copy --stateless of a running container, LXD btrfs to berthd btrfs"
assert_eq "by btrfs send/receive" "$(how b)" "by btrfs send/receive"
assert_eq one "$(cat "$WORK/b-pool/containers/run1/rootfs/root/marker" 2>/dev/null)" "b:run1 has the restored content"
tb_lxc_q start b:run1
run l copy b:run1 h1:run2 --stateless -s bt
assert_exit 0 "lxc copy --stateless of a running container, berthd btrfs to LXD btrfs"
assert_eq "by btrfs send/receive" "$(how b)" "by btrfs send/receive"
run l list b: --format csv -c ns
assert_contains "$OUT" "run1,RUNNING" "the berthd source still runs"
run l start h1:run2
assert_exit 0 "h1:run2 starts"
run l exec h1:run2 -- cat /root/marker
assert_eq one "$OUT" "inside h1:run2 the content"
tb_lxc_q stop h1:m1 --force
tb_lxc_q delete h1:run2 --force
tb_lxc_q delete b:run1 --force

log "--- refresh both ways"
run l copy h1:m1 b:r1
assert_exit 0 "lxc copy h1:m1 b:r1"
run l copy b:r1 h1:r2 -s bt
assert_exit 0 "lxc copy b:r1 h1:r2 -s bt"
tb_lxc_q start h1:m1
tb_lxc_q exec h1:m1 -- sh -c 'echo four > /root/marker'
tb_lxc_q stop h1:m1 --force
tb_lxc_q snapshot h1:m1 s3
run l copy h1:m1 b:r1 --refresh
assert_exit 0 "lxc copy --refresh h1:m1 b:r1 (LXD into berthd)"
assert_eq "by rsync" "$(how b)" "berthd takes a refresh by rsync"
assert_eq four "$(cat "$WORK/b-pool/containers/r1/rootfs/root/marker")" "b:r1 has the changed file"
assert_eq four "$(snap_marker r1 s3)" "b:r1 has the new snapshot s3"
echo five >"$WORK/b-pool/containers/r1/rootfs/root/marker"
tb_lxc_q snapshot b:r1 s4
run l copy b:r1 h1:r2 --refresh
assert_exit 0 "lxc copy --refresh b:r1 h1:r2 (berthd into LXD)"
assert_eq "by btrfs send/receive" "$(how b)" "LXD takes it by btrfs send/receive"
assert_eq five "$(lxd_snap_marker r2 s4)" "h1:r2 has the new snapshot s4"
run l start h1:r2
assert_exit 0 "h1:r2 starts"
run l exec h1:r2 -- cat /root/marker
assert_eq five "$OUT" "inside h1:r2 the changed file"
tb_lxc_q stop h1:r2 --force

log "--- a nested subvolume (Docker's storage inside a container, say): LXD sends it, berthd keeps its files"
tb_lxc_q init h1:bb h1:n1 -s bt
btrfs subvolume create "$WORK/lxd-pool/containers/n1/rootfs/root/inner" >/dev/null
echo nested >"$WORK/lxd-pool/containers/n1/rootfs/root/inner/file"
chown 1001000:1001000 "$WORK/lxd-pool/containers/n1/rootfs/root/inner/file"
tb_lxc_q snapshot h1:n1 s1
run l copy h1:n1 b:n1
assert_exit 0 "lxc copy h1:n1 b:n1 (LXD sends the nested subvolume)"
assert_eq "by btrfs send/receive" "$(how b)" "by btrfs send/receive"
assert_eq nested "$(cat "$WORK/b-pool/containers/n1/rootfs/root/inner/file" 2>/dev/null)" "b:n1 has the nested subvolume's file"
assert_eq "1001000:1001000" "$(stat -c %u:%g "$WORK/b-pool/containers/n1/rootfs/root/inner/file" 2>/dev/null)" \
    "owned as on the source's disk"
check "as a plain directory, not a subvolume" test "$(stat -c %i "$WORK/b-pool/containers/n1/rootfs/root/inner")" != 256
assert_eq nested "$(cat "$WORK/b-pool/containers-snapshots/n1/s1/rootfs/root/inner/file" 2>/dev/null)" \
    "b:n1/s1 has it too"
run l delete b:n1
assert_exit 0 "b:n1 deletes"
tb_lxc_q delete h1:n1

log "--- LXD (btrfs) -> berthd (dir): rsync"
run l copy h1:m1 d:m1
assert_exit 0 "lxc copy h1:m1 d:m1 (LXD btrfs to berthd dir)"
assert_eq "by rsync" "$(how d)" "it falls back to rsync"
assert_eq two "$(cat "$WORK/d/storage/containers-snapshots/m1/s2/rootfs/root/marker" 2>/dev/null)" "d:m1/s2 holds its content"

tb_lxc_q delete h1:m1 --force
tb_lxc_q delete h1:r2 --force
finish
