#!/usr/bin/env bash
# migration_faults_test.sh — migrations between two berthd hosts cut short, and what is left:
# - kill -9 of the target berthd while berth apply moves a container to it: the source is intact
#   and starts; after its restart the target holds no half-made container, volume or journal
#   entry; the next berth apply converges (the move completes);
# - kill -9 of the source berthd while berth moves the container back: after its restart the
#   source is intact and starts, the target (which saw its channels end) kept nothing; the next
#   apply converges;
# - the connection cut by a TCP proxy the test places between the hosts (the target dials the
#   source through it) and kills mid-transfer: the source is intact, the target kept nothing;
# - kill -9 of the target in the middle of lxc copy --refresh, after it made one of the arriving
#   snapshots: its restart removes that snapshot (journalled), and the next refresh succeeds.
# The container holds 200 MB of random data, so that each transfer lasts long enough to be cut.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

chmod 711 "$WORK"
PASSWORD="pw-$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
A_PORT=$(free_port)
B_PORT=$(free_port)
start_a() { BERTHD_PORT=$A_PORT berthd_start "$WORK/a" "$PASSWORD"; }
start_b() { BERTHD_PORT=$B_PORT berthd_start "$WORK/b" "$PASSWORD"; B_PID=$BERTHD_PID; }
start_a
start_b
A_URL=https://127.0.0.1:$A_PORT
B_URL=https://127.0.0.1:$B_PORT
export LXD_CONF=$WORK/lxc
mkdir -p "$LXD_CONF"
# shellcheck disable=SC2317 # called through `run`
l() { timeout -k 5 180 lxc "$@" </dev/null; }
trap 'rc=$?; set +e; kill ${PROXY_PID:-} 2>/dev/null; kill_containers "$WORK/a/containers"; kill_containers "$WORK/b/containers"; (exit $rc); _cleanup' EXIT

bb_image "$WORK/bb.tar.gz"
run l remote add a "$A_URL" --accept-certificate --password "$PASSWORD"
run l remote add b "$B_URL" --accept-certificate --password "$PASSWORD"
run l image import "$WORK/bb.tar.gz" a: --alias bb
assert_exit 0 "the image on a"
run berth remote add a "$A_URL" --password "$PASSWORD" --accept-certificate
assert_exit 0 "berth remote a"
run berth remote add b "$B_URL" --password "$PASSWORD" --accept-certificate
assert_exit 0 "berth remote b"
STATE=$WORK/state.db
FLEET=$WORK/fleet.yaml
# fleet REMOTE: the container `big`, stopped, on REMOTE, free to move.
fleet() {
    cat >"$FLEET" <<EOF
version: 1
remotes:
  a: {url: "$A_URL"}
  b: {url: "$B_URL"}
images:
  bb: {remote: a, alias: bb}
containers:
  big: {remote: $1, image: bb, state: stopped, move: allowed}
EOF
}
apply() { berth_t apply -f "$FLEET" --auto-approve --state "$STATE"; }

fleet a
run apply
assert_exit 0 "big made on a"
ROOTFS_A=$WORK/a/storage/containers/big/rootfs
mkdir -p "$ROOTFS_A/data"
# 600 MB: a move takes long enough (about 2 s between berthd hosts) to be killed in the middle,
# and for berth's progress line to show a total and an ETA.
for i in 1 2 3 4; do head -c 150M /dev/urandom >"$ROOTFS_A/data/blob$i"; done
echo marker >"$ROOTFS_A/root/marker"
SUM=$(cat "$ROOTFS_A"/data/blob* | sha256sum | cut -d' ' -f1)

# shellcheck disable=SC2317 # called through `check`
# wait_arriving HOST: until HOST's pool holds at least 20 MB of big (the transfer is under way).
wait_arriving() {
    local vol=$WORK/$1/storage/containers/big i
    for ((i = 0; i < 600; i++)); do
        if [[ -d "$vol" ]] && (($(du -sm "$vol" 2>/dev/null | cut -f1) >= 20)); then return 0; fi
        sleep 0.05
    done
    return 1
}
# intact HOST: big on HOST has its data and marker, and starts (then stops again).
intact() {
    local root=$WORK/$1/storage/containers/big/rootfs
    assert_eq "$SUM" "$(cat "$root"/data/blob* | sha256sum | cut -d' ' -f1)" "big's data is intact on $1"
    assert_eq marker "$(cat "$root/root/marker")" "big's marker is intact on $1"
    run l start "$1:big"
    assert_exit 0 "big starts on $1"
    run l stop "$1:big" --force
}
# nothing_on HOST: no trace of big on HOST.
nothing_on() {
    run l list "$1:" --format csv -c n
    assert_not_contains "$OUT" "big" "$1 lists no big"
    check "$1 holds no volume of big" test ! -e "$WORK/$1/storage/containers/big"
    check "$1 holds no liblxc config of big" test ! -e "$WORK/$1/containers/big"
}

# --- kill -9 the target mid-transfer
fleet b
apply >"$WORK/apply1.log" 2>&1 &
APPLY=$!
check "the move to b is under way" wait_arriving b
kill -9 "$B_PID"
if wait "$APPLY"; then _fail "berth apply should fail when the target dies"; else _pass "berth apply fails when the target dies"; fi
intact a
start_b
nothing_on b
assert_contains "$(cat "$WORK/b.log")" "removed instance big" "b's restart removed what the crash left"
run apply
assert_exit 0 "the next berth apply converges: big moves to b"
assert_contains "$OUT" "s left" "berth's progress line shows the volume's total and an ETA"
run l list a: --format csv -c n
assert_not_contains "$OUT" "big" "a no longer has big"
intact b

# --- kill -9 the source mid-transfer
fleet a
apply >"$WORK/apply2.log" 2>&1 &
APPLY=$!
check "the move back to a is under way" wait_arriving a
kill -9 "$B_PID"
if wait "$APPLY"; then _fail "berth apply should fail when the source dies"; else _pass "berth apply fails when the source dies"; fi
for _ in $(seq 50); do [[ -e "$WORK/a/storage/containers/big" ]] || break; sleep 0.2; done
nothing_on a
start_b
intact b
run apply
assert_exit 0 "the next berth apply converges: big moves to a"
nothing_on b
intact a

# --- the connection cut between the hosts
PROXY_PORT=$(free_port)
"$BERTH_SOURCE_DIR/tests/testbed/tcp_proxy.py" "$PROXY_PORT" 127.0.0.1 "$A_PORT" &
PROXY_PID=$!
# Until the proxy listens (python starts slowly on a busy machine).
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null && break; sleep 0.1; done
run l remote add ap "https://127.0.0.1:$PROXY_PORT" --accept-certificate --password "$PASSWORD"
assert_exit 0 "a through the proxy"
l copy ap:big b:big >"$WORK/copy.log" 2>&1 &
COPY=$!
check "the copy through the proxy is under way" wait_arriving b
kill -9 "$PROXY_PID"
if wait "$COPY"; then _fail "lxc copy should fail when the connection is cut"; else _pass "lxc copy fails when the connection is cut"; fi
for _ in $(seq 50); do [[ -e "$WORK/b/storage/containers/big" ]] || break; sleep 0.2; done
nothing_on b
intact a
run berth plan -f "$FLEET" --state "$STATE" --detailed-exitcode
assert_exit 0 "berth plan has nothing to do"

# --- kill -9 the target in the middle of a refresh
run l copy a:big b:big
assert_exit 0 "a copy a:big b:big to refresh"
tb_lxc_q snapshot a:big s1
head -c 300M /dev/urandom >"$ROOTFS_A/data/blob5"
tb_lxc_q snapshot a:big s2
l copy a:big b:big --refresh >"$WORK/refresh.log" 2>&1 &
REFRESH=$!
# shellcheck disable=SC2317 # called through `check`
s2_arriving() {
    local vol=$WORK/b/storage/containers/big i
    for ((i = 0; i < 600; i++)); do
        if grep -q "migration: big/s1: [0-9]* bytes received" "$WORK/b.log" &&
            (($(du -sm "$vol" 2>/dev/null | cut -f1) >= 620)); then return 0; fi
        sleep 0.05
    done
    return 1
}
check "the refresh made s1 on b and is bringing s2" s2_arriving
kill -9 "$B_PID"
if wait "$REFRESH"; then _fail "lxc copy --refresh should fail when the target dies"; else _pass "lxc copy --refresh fails when the target dies"; fi
start_b
assert_contains "$(cat "$WORK/b.log")" "removed snapshot big/s1" "b's restart removed the snapshot the refresh left unrecorded"
check "b holds no snapshot of big on disk" test -z "$(ls -A "$WORK/b/storage/containers-snapshots/big" 2>/dev/null)"
run l copy a:big b:big --refresh
assert_exit 0 "the next refresh succeeds"
run l info b:big
assert_contains "$OUT" "s2" "b:big has s2"
assert_eq "$(sha256sum <"$ROOTFS_A/data/blob5")" \
    "$(sha256sum <"$WORK/b/storage/containers-snapshots/big/s2/rootfs/data/blob5" 2>/dev/null)" \
    "b:big/s2 holds the new data"

finish
