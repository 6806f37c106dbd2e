#!/usr/bin/env bash
# migration_interop_test.sh — containers moved and copied between a real LXD 5.0 host (h1) and a
# berthd host (h2) by the stock lxc client, both directions (lxd-protocol.md §4): a container with
# two snapshots and a marker file owned by 1000:1000 arrives whole, with the right owners inside
# it, its snapshots' content, and starts on the target; after a move the source is gone; a running
# container copies with --stateless both ways; moves in push and relay mode, both ways. (berth's
# moves on such a bed: move_test, run on a mixed bed as integration.mixed.move_test.)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# shellcheck disable=SC2317 # called through `run`
l() { timeout -k 5 180 lxc "$@" </dev/null; }
marker() { cat "$1/root/marker" 2>/dev/null || echo "<missing>"; }

tb_start 2 lxd,berthd
[[ "$(tb_kind 1)" == lxd && "$(tb_kind 2)" == berthd ]] || bail "the test bed is not lxd,berthd"

# in_container REMOTE NAME: the marker's content and owner as the container sees them.
# shellcheck disable=SC2317 # called through `run`
in_container() { l exec "$1:$2" -- sh -c 'cat /root/marker; stat -c %u:%g /root/marker'; }

# made_on REMOTE NAME: a stopped container with the marker (one, two, three) and snapshots s1, s2.
made_on() {
    tb_container "$1" "$2" running
    tb_lxc_q exec "$1:$2" -- sh -c 'echo one > /root/marker && /bin/busybox chown 1000:1000 /root/marker'
    tb_lxc_q snapshot "$1:$2" s1
    sleep 1.1
    tb_lxc_q exec "$1:$2" -- sh -c 'echo two > /root/marker'
    tb_lxc_q snapshot "$1:$2" s2
    sleep 1.1
    tb_lxc_q exec "$1:$2" -- sh -c 'echo three > /root/marker'
    tb_lxc_q stop "$1:$2" --force
}

# arrived FROM TO NAME: NAME moved from host FROM to host TO (indexes), whole.
arrived() {
    local from=$1 to=$2 name=$3
    assert_eq "" "$(lxc_names "h$from" "$name")" "h$from no longer has $name after the move"
    check "no volume of $name is left on h$from" test ! -e "$(rootfs "$from" "$name")"
    assert_eq "s1,s2" "$(lxc_snaps "h$to" "$name")" "h$to:$name has both snapshots"
    assert_eq one "$(marker "$(rootfs "$to" "$name" s1)")" "h$to:$name/s1 holds its content"
    assert_eq two "$(marker "$(rootfs "$to" "$name" s2)")" "h$to:$name/s2 holds its content"
    run l start "h$to:$name"
    assert_exit 0 "h$to:$name starts on the target"
    assert_eq Running "$(lxc_status "h$to" "$name")" "h$to:$name runs"
    run in_container "h$to" "$name"
    assert_eq "three
1000:1000" "$OUT" "inside h$to:$name the marker has its content and its owner 1000:1000"
    run l exec "h$to:$name" -- sh -c 'stat -c %u:%g /bin/busybox'
    assert_eq "0:0" "$OUT" "inside h$to:$name the image's files belong to root"
}

# --- LXD -> berthd
made_on h1 m1
run l move h1:m1 h2:m1
assert_exit 0 "lxc move h1:m1 h2:m1 (LXD to berthd)"
arrived 1 2 m1
run l restore h2:m1 s1
assert_exit 0 "restore a snapshot that came from LXD"
run l exec h2:m1 -- cat /root/marker
assert_eq one "$OUT" "the restored snapshot's content"

# --- berthd -> LXD
made_on h2 m2
run l move h2:m2 h1:m2
assert_exit 0 "lxc move h2:m2 h1:m2 (berthd to LXD)"
arrived 2 1 m2
run l restore h1:m2 s2
assert_exit 0 "LXD restores a snapshot that came from berthd"
run l exec h1:m2 -- cat /root/marker
assert_eq two "$OUT" "the restored snapshot's content on LXD"

# --- running containers, stateless, both ways
run l copy h1:m2 h2:m3 --stateless
assert_exit 0 "lxc copy --stateless of a running container, LXD to berthd"
run l start h2:m3
run l exec h2:m3 -- cat /root/marker
assert_eq two "$OUT" "the copy on berthd starts with the content"
run l copy h2:m1 h1:m4 --stateless
assert_exit 0 "lxc copy --stateless of a running container, berthd to LXD"
# Thawed after its last, frozen pass (which the target may finish a moment before).
for _ in 1 2 3 4 5 6 7 8 9 10; do [[ "$(lxc_status h2 m1)" == Running ]] && break; sleep 0.5; done
assert_eq Running "$(lxc_status h2 m1)" "the berthd source runs again after the copy"
run l start h1:m4
run l exec h1:m4 -- sh -c 'cat /root/marker; stat -c %u:%g /root/marker'
assert_eq "one
1000:1000" "$OUT" "the copy on LXD starts with the content and owners"

# --- push and relay, both ways: whoever makes the websocket operation, the transfer is the same
for mode in push relay; do
    made_on h1 "l$mode"
    run l move "h1:l$mode" "h2:l$mode" --mode "$mode"
    assert_exit 0 "lxc move --mode $mode, LXD to berthd"
    arrived 1 2 "l$mode"
    run l stop "h2:l$mode" --force
    run l move "h2:l$mode" "h1:l$mode" --mode "$mode"
    assert_exit 0 "lxc move --mode $mode, berthd to LXD"
    arrived 2 1 "l$mode"
done

finish
