#!/usr/bin/env bash
# berthd_migration_test.sh — containers moved and copied between two berthd hosts the test starts,
# by the stock lxc client (pull mode, lxd-protocol.md §4), checked on the hosts themselves:
# - lxc move of a stopped container with two snapshots and a marker file: the source is gone, the
#   target holds the container and both snapshots with their content, the owners are right inside
#   the container after it starts on the target, and the files on disk are shifted to its map;
# - lxc copy back (the base image pre-fills the target: the image is on both hosts), and of a
#   running container with --stateless (a second pass while it is frozen); without --stateless
#   (a live migration) it is refused at once, naming CRIU; --instance-only leaves the snapshots;
# - fs_progress in the target's operation; a wrong secret and a used one are refused; a target
#   given another certificate refuses to pull and keeps nothing.
# shellcheck disable=SC2016 # jq filters use jq's $variables
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
l() { timeout -k 5 120 lxc "$@" </dev/null; }
state_of() { lxc-info -P "$WORK/$1/containers" -n "$2" -sH 2>/dev/null || echo MISSING; }
trap 'rc=$?; set +e; kill_containers "$WORK/a/containers"; kill_containers "$WORK/b/containers"; (exit $rc); _cleanup' EXIT

bb_image "$WORK/bb.tar.gz"
FP=$(sha256sum "$WORK/bb.tar.gz" | cut -d' ' -f1)
run l remote add a "$A_URL" --accept-certificate --password "$PASSWORD"
assert_exit 0 "remote a"
run l remote add b "$B_URL" --accept-certificate --password "$PASSWORD"
assert_exit 0 "remote b"
run l image import "$WORK/bb.tar.gz" a: --alias bb
assert_exit 0 "the image on a"
SUBUID_BASE=$(awk -F: '$1=="root"{print $2; exit}' /etc/subuid)
SUBUID_BASE=${SUBUID_BASE:-1000000}

# --- a container with a marker owned by 1000:1000 and two snapshots, stopped
run l launch a:bb a:c1
assert_exit 0 "launch a:c1"
l exec a:c1 -- sh -c 'echo one > /root/marker && /bin/busybox chown 1000:1000 /root/marker'
l snapshot a:c1 s1
l exec a:c1 -- sh -c 'echo two > /root/marker'
l snapshot a:c1 s2
l exec a:c1 -- sh -c 'echo three > /root/marker'
l stop a:c1 --force

# --- lxc move a:c1 b:c1
run l move a:c1 b:c1
assert_exit 0 "lxc move a:c1 b:c1 (stopped, two snapshots)"
assert_contains "$OUT" "Transferring instance: c1" "lxc move shows the transfer's progress (fs_progress)"
run l list a: --format csv -c n
assert_not_contains "$OUT" "c1" "the source is gone from a after the move"
assert_eq MISSING "$(state_of a c1)" "liblxc on a no longer knows c1"
check "c1's volume is gone from a's pool" test ! -e "$WORK/a/storage/containers/c1"
run l info b:c1
assert_contains "$OUT" "s1" "b:c1 has snapshot s1"
assert_contains "$OUT" "s2" "b:c1 has snapshot s2"
check "s1 is a volume snapshot on b" test -d "$WORK/b/storage/containers-snapshots/c1/s1/rootfs"
assert_eq one "$(cat "$WORK/b/storage/containers-snapshots/c1/s1/rootfs/root/marker")" "s1 holds the marker as it was"
assert_eq two "$(cat "$WORK/b/storage/containers-snapshots/c1/s2/rootfs/root/marker")" "s2 holds the marker as it was"
assert_eq "$((SUBUID_BASE + 1000))" "$(stat -c %u "$WORK/b/storage/containers/c1/rootfs/root/marker")" \
    "the marker arrives owned as on the source's disk (its map's 1000)"
run l start b:c1
assert_exit 0 "b:c1 starts on the target"
assert_eq RUNNING "$(state_of b c1)" "liblxc runs c1 on b"
run l exec b:c1 -- sh -c 'cat /root/marker; stat -c %u:%g /root/marker'
assert_eq "three
1000:1000" "$OUT" "inside b:c1 the marker has its content and its owner 1000:1000"
run l config get b:c1 volatile.base_image
assert_eq "$FP" "$OUT" "volatile.base_image travelled"
run l restore b:c1 s1
assert_exit 0 "restore the migrated snapshot s1"
run l exec b:c1 -- cat /root/marker
assert_eq one "$OUT" "the restored snapshot has its content"

# --- copy back with the image on the target: pre-filled, then only the delta
run l stop b:c1 --force
run l copy b:c1 a:c2
assert_exit 0 "lxc copy b:c1 a:c2 (the image is on a: pre-filled)"
assert_contains "$(cat "$WORK/a.log")" "pre-filled from its base image" "a pre-filled c2 from the image it holds"
run l start a:c2
run l exec a:c2 -- cat /root/marker
assert_eq one "$OUT" "a:c2 starts with c1's content"
run l list b: --format csv -c n
assert_contains "$OUT" "c1" "a copy keeps the source"

# --- a running container: --stateless copies it (a frozen second pass); live is refused
run l start b:c1
T0=$(date +%s)
run l copy b:c1 a:c3
assert_exit 1 "a live copy of a running container is refused"
assert_contains "$ERR" "CRIU" "the refusal names CRIU"
check "the refusal is at once ($(($(date +%s) - T0)) s)" test $(($(date +%s) - T0)) -lt 20
run l copy b:c1 a:c3 --stateless
assert_exit 0 "lxc copy --stateless of a running container"
assert_eq RUNNING "$(state_of b c1)" "the source still runs after a stateless copy"
run l start a:c3
run l exec a:c3 -- cat /root/marker
assert_eq one "$OUT" "the stateless copy starts with the content"

run l copy b:c1 a:c6 --stateless --instance-only
assert_exit 0 "lxc copy --instance-only"
run l query a:/1.0/instances/c6/snapshots
assert_eq "[]" "$(jq -c . <<<"$OUT")" "an instance-only copy has no snapshots"

# A container the user froze is copied as it is, and stays frozen.
run l pause b:c1
run l copy b:c1 a:c7 --stateless --instance-only
assert_exit 0 "lxc copy --stateless of a frozen container"
assert_eq FROZEN "$(state_of b c1)" "a frozen source stays frozen after the copy"
run l start b:c1
run l delete a:c7

# --- the source's secrets: a wrong one and a used one are refused
SRC=$(curl -sk --cert "$LXD_CONF/client.crt" --key "$LXD_CONF/client.key" -X POST "$A_URL/1.0/instances/c2" \
    -d '{"name":"c2","migration":true,"live":false}')
OP=$(jq -r '.operation' <<<"$SRC")
FS_SECRET=$(jq -r '.metadata.metadata.fs' <<<"$SRC")
code() { curl -sk -o /dev/null -w '%{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
    -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' --max-time 5 "$A_URL$OP/websocket?secret=$1"; }
assert_eq 403 "$(code "0000$FS_SECRET")" "a wrong secret is refused"
sleep 11
run curl -sk --cert "$LXD_CONF/client.crt" --key "$LXD_CONF/client.key" "$A_URL$OP"
assert_contains "$OUT" "Timed out waiting for migration connections" "unconnected channels fail the operation after 10 s"
USED=$(code "$FS_SECRET")
check "a secret is refused once its operation ended ($USED)" test "${USED:0:1}" = 4

# --- a target given another certificate refuses to pull, and keeps nothing
SRC=$(curl -sk --cert "$LXD_CONF/client.crt" --key "$LXD_CONF/client.key" -X POST "$A_URL/1.0/instances/c2" \
    -d '{"name":"c2","migration":true,"live":false}')
OP=$(jq -r '.operation' <<<"$SRC")
BODY=$(jq -n --arg op "$A_URL$OP" --argjson s "$(jq '.metadata.metadata' <<<"$SRC")" \
    --rawfile cert "$WORK/b/server.crt" \
    '{name:"c9",architecture:"x86_64",profiles:["default"],source:{type:"migration",mode:"pull",operation:$op,secrets:$s,certificate:$cert}}')
TOP=$(curl -sk --cert "$LXD_CONF/client.crt" --key "$LXD_CONF/client.key" -X POST "$B_URL/1.0/instances" -d "$BODY" | jq -r '.operation')
run curl -sk --cert "$LXD_CONF/client.crt" --key "$LXD_CONF/client.key" "$B_URL$TOP/wait?timeout=30"
assert_contains "$OUT" "Failure" "the pull fails"
assert_contains "$OUT" "not the expected" "because the source's certificate is not the one given"
run l list b: --format csv -c n
assert_not_contains "$OUT" "c9" "b keeps no half-made c9"
check "no volume c9 on b" test ! -e "$WORK/b/storage/containers/c9"

finish
