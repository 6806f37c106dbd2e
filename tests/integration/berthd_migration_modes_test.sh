#!/usr/bin/env bash
# berthd_migration_modes_test.sh — the three ways to join a migration's two hosts, between two
# berthd hosts the test starts, driven by the stock lxc client (lxd-protocol.md §4.1):
# - push (lxc copy/move --mode push): the target makes the websocket operation, the source dials it;
# - relay (--mode relay): both make websocket operations and lxc copies the frames between them;
# each with a container that has two snapshots and a marker, checked on the target (content,
# snapshots, owners inside), and a running container with --stateless.
# A push to an operation that is not there fails at once and leaves nothing on either host.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

chmod 711 "$WORK"
PASSWORD="pw-$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
berthd_start "$WORK/a" "$PASSWORD"
A_URL=$BERTHD_URL
berthd_start "$WORK/b" "$PASSWORD"
B_URL=$BERTHD_URL
export LXD_CONF=$WORK/lxc
mkdir -p "$LXD_CONF"
# shellcheck disable=SC2317 # called through `run`
l() { timeout -k 5 120 lxc "$@" </dev/null; }
trap 'rc=$?; set +e; kill_containers "$WORK/a/containers"; kill_containers "$WORK/b/containers"; (exit $rc); _cleanup' EXIT

bb_image "$WORK/bb.tar.gz"
tb_lxc_q remote add a "$A_URL" --accept-certificate --password "$PASSWORD"
tb_lxc_q remote add b "$B_URL" --accept-certificate --password "$PASSWORD"
tb_lxc_q image import "$WORK/bb.tar.gz" a: --alias bb

run l info a:
assert_contains "$OUT" "container_push_target" "berthd offers container_push_target"
assert_contains "$OUT" "- container_push" "and container_push"

# made NAME: a stopped container on a with the marker (one, two, three) and snapshots s1, s2.
made() {
    tb_lxc_q launch a:bb "a:$1"
    tb_lxc_q exec "a:$1" -- sh -c 'echo one > /root/marker && /bin/busybox chown 1000:1000 /root/marker'
    tb_lxc_q snapshot "a:$1" s1
    tb_lxc_q exec "a:$1" -- sh -c 'echo two > /root/marker'
    tb_lxc_q snapshot "a:$1" s2
    tb_lxc_q exec "a:$1" -- sh -c 'echo three > /root/marker'
    tb_lxc_q stop "a:$1" --force
}
snap_marker() { cat "$WORK/$1/storage/containers-snapshots/$2/$3/rootfs/root/marker" 2>/dev/null || echo "<missing>"; }

# arrived HOST NAME: NAME is whole on HOST (its snapshots' content, its marker and owner inside).
arrived() {
    local host=$1 name=$2
    assert_eq one "$(snap_marker "$host" "$name" s1)" "$host:$name/s1 holds its content"
    assert_eq two "$(snap_marker "$host" "$name" s2)" "$host:$name/s2 holds its content"
    run l start "$host:$name"
    assert_exit 0 "$host:$name starts"
    run l exec "$host:$name" -- sh -c 'cat /root/marker; stat -c %u:%g /root/marker'
    assert_eq "three
1000:1000" "$OUT" "inside $host:$name the marker has its content and its owner"
}

for mode in push relay; do
    log "--- mode $mode"
    made "m$mode"
    run l move "a:m$mode" "b:m$mode" --mode "$mode"
    assert_exit 0 "lxc move --mode $mode (stopped, two snapshots)"
    run l list a: --format csv -c n
    assert_not_contains "$OUT" "m$mode" "the source is gone after the $mode move"
    arrived b "m$mode"
    # A running container, copied back without its memory.
    run l copy "b:m$mode" "a:r$mode" --mode "$mode" --stateless
    assert_exit 0 "lxc copy --mode $mode --stateless of a running container"
    arrived a "r$mode"
    run l list b: --format csv -c ns
    assert_contains "$OUT" "m$mode,RUNNING" "the source still runs after the $mode copy"
done

log "--- a push to an operation that is not there"
SRC_BODY=$(jq -n --rawfile cert "$WORK/b/server.crt" \
    '{name:"",migration:true,live:false,target:{operation:"'"$B_URL"'/1.0/operations/00000000-0000-0000-0000-000000000000",secrets:{control:"x1",fs:"x2"},certificate:$cert}}')
run curl -sk --cert "$LXD_CONF/client.crt" --key "$LXD_CONF/client.key" -X POST "$A_URL/1.0/instances/rpush" -d "$SRC_BODY"
assert_contains "$OUT" '"error_code":' "a push to an unknown operation fails in the request"
assert_contains "$OUT" "control channel" "naming the channel it could not connect"
run l list a: --format csv -c ns
assert_contains "$OUT" "rpush,RUNNING" "the source is untouched"

finish
