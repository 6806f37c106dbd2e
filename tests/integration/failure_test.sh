#!/usr/bin/env bash
# failure_test.sh — `berth apply` when things go wrong, against two real LXD hosts.
#
#  - lock: while one apply runs, a second fails at once naming the holder (host,
#    pid); with --lock-timeout it waits for the first instead.
#  - a missing image: the plan reports the missing alias clearly and nothing is
#    changed; an alias that vanishes after a saved plan fails only its launch.
#  - SIGKILL of berth during a parallel launch of 12 containers, and during a
#    move (after the migration started): the next apply converges, with exactly
#    the declared containers, none duplicated, the moved one once with its data.
#  - a stopped host: only its actions fail (the others succeed, exit 1, the
#    summary names it), whether it is down when the apply starts or goes down
#    while the apply runs; once it is back, the next apply converges.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE

# fleet_header FILE: the top of a fleet file (both remotes, image bb on h1).
fleet_header() {
    tb_fleet_header "$1"
    cat >>"$1" <<EOF
containers:
EOF
}

# start_bg NAME ARGS...: start berth in the background, its stdout in $WORK/NAME.out,
# stderr in $WORK/NAME.err; BG_PID is berth's own pid.
start_bg() {
    local name=$1
    shift
    "$BERTH_BIN" --config-dir "$BERTH_CFG" --no-color "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null &
    BG_PID=$!
}

# wait_for FILE PATTERN [SECONDS]: wait until a line of FILE matches the extended regex.
wait_for() {
    local file=$1 pattern=$2 secs=${3:-60} i
    for ((i = 0; i < secs * 20; i++)); do
        grep -Eq -- "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# wait_pid PID: its exit status in BG_RC.
wait_pid() {
    BG_RC=0
    wait "$1" 2>/dev/null || BG_RC=$?
}

# apply_and_kill NAME FLEET PATTERN SECONDS WHAT: start `berth apply --json` in the background,
# wait until its event stream matches PATTERN (else stop the test: WHAT never happened), then
# SIGKILL it. Its exit status is in BG_RC, its events in $WORK/NAME.out.
apply_and_kill() {
    local name=$1 fleet=$2 pattern=$3 seconds=$4 what=$5 pid
    start_bg "$name" apply -f "$fleet" --auto-approve --state "$STATE" --json
    pid=$BG_PID
    if ! wait_for "$WORK/$name.out" "$pattern" "$seconds"; then
        kill -KILL "$pid" 2>/dev/null || true
        bail "$what never happened" "$(cat "$WORK/$name.out" "$WORK/$name.err")"
    fi
    if [[ -n "${KILL_SETTLE_PATTERN:-}" ]]; then
        wait_for "$WORK/$name.out" "$KILL_SETTLE_PATTERN" 30 || true
        sleep 0.5
    fi
    kill -KILL "$pid"
    wait_pid "$pid"
}


# ---------------------------------------------------------------- lock

test_lock() {
    local fleet=$WORK/lock.yaml a_pid t0 i
    fleet_header "$fleet"
    for i in 1 2 3 4 5 6; do
        echo "  lk$i: {remote: h$(((i % 2) + 1)), image: bb, state: stopped}" >>"$fleet"
    done
    # One at a time so that it runs for a while.
    start_bg lockA apply -f "$fleet" --auto-approve --state "$STATE" --json --parallelism 1
    a_pid=$BG_PID
    wait_for "$WORK/lockA.out" '"event":"started"' 60 || bail "the first apply never started an action" "$(cat "$WORK/lockA.err")"

    t0=$(date +%s%N)
    run berth_t apply -f "$fleet" --auto-approve --state "$STATE"
    local ms=$((($(date +%s%N) - t0) / 1000000))
    assert_exit 1 "a second apply fails while the first holds the lock"
    if ((ms < 5000)); then _pass "it fails at once (${ms} ms)"; else _fail "it fails at once" "took ${ms} ms"; fi
    assert_icontains "$ERR" "locked" "the error says the state is locked"
    assert_contains "$ERR" "pid $a_pid" "the error names the holder's pid"
    assert_contains "$ERR" "host $(hostname)" "the error names the holder's host"
    assert_contains "$ERR" "force-unlock" "the error says how to release a dead lock"

    # With --lock-timeout a third one waits for the first and then finds nothing to do.
    run berth_t apply -f "$fleet" --auto-approve --state "$STATE" --lock-timeout 120s
    check_hung apply
    assert_exit 0 "with --lock-timeout a second apply waits for the lock and succeeds"
    wait_pid "$a_pid"
    assert_eq 0 "$BG_RC" "the first apply succeeded"
    assert_eq "lk2,lk4,lk6" "$(lxc_names h1 lk)" "h1 holds lk2, lk4, lk6 once each"
    assert_eq "lk1,lk3,lk5" "$(lxc_names h2 lk)" "h2 holds lk1, lk3, lk5 once each"
}

# ---------------------------------------------------------------- missing image

test_missing_image() {
    local fleet=$WORK/noimg.yaml plan=$WORK/noimg.plan fp
    fleet_header "$fleet"
    cat >>"$fleet" <<EOF
  ok1: {remote: h1, image: bb, state: stopped}
  ghost1: {remote: h2, image: h1:no-such-alias, state: stopped}
EOF
    run berth plan -f "$fleet" --json
    assert_exit 1 "plan with a missing image alias exits 1"
    assert_jq "$OUT" '.not_planned["h2:ghost1"] | test("no-such-alias")' true \
        "the plan lists the container whose alias is missing as not planned, naming the alias"
    assert_jq "$OUT" '.complete' false "the plan is incomplete"
    assert_contains "$OUT" "image alias 'no-such-alias' does not exist on remote 'h1'" "the message is clear"
    run berth_t apply -f "$fleet" --auto-approve --state "$STATE"
    check_hung apply
    assert_exit 1 "apply with a missing image alias exits 1"
    assert_contains "$OUT$ERR" "image alias 'no-such-alias' does not exist on remote 'h1'" \
        "apply names the missing alias and the remote where it is missing"
    assert_contains "$OUT" "could not be planned, were not changed" "apply says what it did not change"
    assert_eq absent "$(lxc_status h2 ghost1)" "nothing was launched from a missing image"
    assert_eq Stopped "$(lxc_status h1 ok1)" "the rest of the plan was applied"

    # An alias that exists when the plan is saved and vanishes before the apply: that
    # launch fails with a clear message, the other one succeeds.
    fp=$(tb_lxc query h1:/1.0/images/aliases/bb | jq -r .target)
    tb_lxc_q image alias create h1:soon-gone "$fp"
    fleet_header "$fleet"
    cat >>"$fleet" <<EOF
  ok2: {remote: h1, image: bb, state: stopped}
  ghost2: {remote: h2, image: h1:soon-gone, state: stopped}
EOF
    run berth plan -f "$fleet" --out "$plan"
    assert_exit 0 "plan with an alias that exists (saved)"
    tb_lxc_q image alias delete h1:soon-gone
    run berth_t apply "$plan" --state "$STATE" --json
    check_hung apply
    assert_exit 1 "apply of the saved plan exits 1 when its image vanished"
    assert_jq "$(grep '"summary"' <<<"$OUT")" '"\(.succeeded) \(.failed)"' "1 1" "one launch succeeded, one failed"
    assert_jq "$(grep '"event":"failed"' <<<"$OUT")" '.action' "launch h2:ghost2" "the failed action is the launch from the vanished alias"
    assert_contains "$(grep '"event":"failed"' <<<"$OUT")" "soon-gone" "its error names the alias"
    assert_eq Stopped "$(lxc_status h1 ok2)" "the other launch succeeded"
    assert_eq absent "$(lxc_status h2 ghost2)" "no half-made container is left behind"
}

# ---------------------------------------------------------------- SIGKILL during launches

test_kill_during_launch() {
    local fleet=$WORK/many.yaml i
    fleet_header "$fleet"
    for i in $(seq -w 1 12); do
        echo "  many$i: {remote: h$(((10#$i % 2) + 1)), image: bb, config: {user.n: \"$i\"}}" >>"$fleet"
    done
    apply_and_kill kill1 "$fleet" '"event":"finished"' 120 "a finished action in the apply of 12 launches"
    assert_eq 137 "$BG_RC" "berth was killed (SIGKILL) in the middle of the launches"
    log "killed after $(grep -c '"event":"finished"' "$WORK/kill1.out") finished and $(grep -c '"event":"started"' "$WORK/kill1.out") started actions"

    run berth_t apply -f "$fleet" --auto-approve --state "$STATE"
    check_hung apply
    assert_exit 0 "the next apply converges"
    assert_icontains "$ERR" "took over the lock" "it takes over the lock of the killed run"
    assert_eq "many02,many04,many06,many08,many10,many12" "$(lxc_names h1 many)" "h1 holds exactly its 6 containers"
    assert_eq "many01,many03,many05,many07,many09,many11" "$(lxc_names h2 many)" "h2 holds exactly its 6 containers"
    local bad=""
    for i in $(seq -w 1 12); do
        r=h$(((10#$i % 2) + 1))
        [[ "$(lxc_status "$r" "many$i")" == Running ]] || bad+=" $r:many$i=$(lxc_status "$r" "many$i")"
    done
    assert_eq "" "$bad" "all 12 run"
    run berth plan -f "$fleet" --detailed-exitcode
    assert_exit 0 "plan is empty after the recovery"
}

# ---------------------------------------------------------------- SIGKILL during a move

test_kill_during_move() {
    local fleet=$WORK/move.yaml
    fleet_header "$fleet"
    echo "  crashmv: {remote: h1, image: bb, state: stopped, snapshots: [before], move: allowed}" >>"$fleet"
    run berth_t apply -f "$fleet" --auto-approve --state "$STATE"
    check_hung apply
    assert_exit 0 "setup: crashmv launched on h1"
    # Data, so that the transfer takes a moment (a second or more: berthd hosts move ~300 MB/s
    # here, LXD hosts ~40 MB/s), and a marker.
    local mb=100
    [[ "$TB_HOST1_KIND" == berthd ]] && mb=600
    mkdir -p "$(rootfs 1 crashmv)/root"
    dd if=/dev/urandom of="$(rootfs 1 crashmv)/root/data" bs=1M count="$mb" status=none
    echo moved-once >"$(rootfs 1 crashmv)/root/berth-marker"

    sed -i 's/crashmv: {remote: h1/crashmv: {remote: h2/' "$fleet"
    # Killed inside the migration: the source operation exists and the target is pulling.
    KILL_SETTLE_PATTERN='"event":"progress".*(->|migrating)' \
        apply_and_kill kill2 "$fleet" '"event":"started".*"move h2:crashmv"|"move h2:crashmv".*"event":"started"' 60 \
        "the start of the move"
    assert_eq 137 "$BG_RC" "berth was killed (SIGKILL) during the move"
    log "killed after: $(grep -c . "$WORK/kill2.out") events; on h1: [$(lxc_names h1 crashmv)], on h2: [$(lxc_names h2 crashmv)]"

    run berth_t apply -f "$fleet" --auto-approve --state "$STATE"
    check_hung apply
    assert_exit 0 "the next apply converges after the killed move"
    assert_eq "" "$(lxc_names h1 crashmv)" "the source is gone from h1"
    assert_eq "crashmv" "$(lxc_names h2 crashmv)" "the container exists exactly once, on h2"
    assert_eq moved-once "$(cat "$(rootfs 2 crashmv)/root/berth-marker" 2>/dev/null || echo '<missing>')" \
        "its marker file came along"
    assert_eq $((mb * 1048576)) "$(stat -c %s "$(rootfs 2 crashmv)/root/data" 2>/dev/null || echo 0)" \
        "its data came along whole"
    assert_eq before "$(lxc_snaps h2 crashmv)" "its snapshot came along"
    assert_eq Stopped "$(lxc_status h2 crashmv)" "it is stopped, as declared"
    assert_jq "$(inst_json h2 crashmv)" '[.config | keys[] | select(startswith("user.berth.") and . != "user.berth.fleet" and . != "user.berth.managed")] | join(",")' "" \
        "no leftover berth marker keys (e.g. an incomplete-transfer mark) on the moved container"
    run berth plan -f "$fleet" --detailed-exitcode
    assert_exit 0 "plan is empty after the recovered move"

    # And back, killed once the target is verified, when the source is being deleted.
    sed -i 's/crashmv: {remote: h2/crashmv: {remote: h1/' "$fleet"
    apply_and_kill kill3 "$fleet" '"event":"progress".*deleting the source' 120 \
        "the deletion of the source in the move back"
    assert_eq 137 "$BG_RC" "berth was killed (SIGKILL) while deleting the move's source"
    log "killed; on h1: [$(lxc_names h1 crashmv)], on h2: [$(lxc_names h2 crashmv)]"
    run berth_t apply -f "$fleet" --auto-approve --state "$STATE"
    check_hung apply
    assert_exit 0 "the next apply converges"
    assert_eq "crashmv" "$(lxc_names h1 crashmv)" "the container exists exactly once, on h1"
    assert_eq "" "$(lxc_names h2 crashmv)" "and no longer on h2"
    assert_eq moved-once "$(cat "$(rootfs 1 crashmv)/root/berth-marker" 2>/dev/null || echo '<missing>')" \
        "its marker file is there"
    assert_eq before "$(lxc_snaps h1 crashmv)" "its snapshot is there"
    run berth plan -f "$fleet" --detailed-exitcode
    assert_exit 0 "plan is empty"
}

# ---------------------------------------------------------------- a stopped host

test_stopped_host() {
    local fleet=$WORK/down.yaml
    fleet_header "$fleet"
    cat >>"$fleet" <<EOF
  up1: {remote: h1, image: bb, state: stopped}
  up2: {remote: h1, image: bb, state: stopped}
  down1: {remote: h2, image: bb, state: stopped}
EOF
    "$TB_SH" stop-host "$TB_DIR" 2
    run berth_t apply -f "$fleet" --auto-approve --state "$STATE" --json
    check_hung apply
    assert_exit 1 "apply with h2 down exits 1"
    assert_jq "$(grep '"summary"' <<<"$OUT")" '"\(.succeeded) \(.failed)"' "2 0" \
        "h1's two launches succeed (h2's containers cannot be planned)"
    assert_jq "$(grep '"summary"' <<<"$OUT")" '.complete' false "the summary says the apply was not complete"
    assert_contains "$(grep '"summary"' <<<"$OUT")" "h2" "the JSON summary names the unreachable remote"
    assert_eq "up1,up2" "$(lxc_names h1 up)" "h1's containers were launched"

    run berth_t apply -f "$fleet" --auto-approve --state "$STATE"
    check_hung apply
    assert_exit 1 "text mode: exit 1 with h2 down"
    assert_contains "$OUT" "h2" "text summary names h2"

    # The host goes down while the apply runs: its actions fail, the others succeed.
    "$TB_SH" start-host "$TB_DIR" 2
    # h2 one action at a time, so that some of its launches are still to come when it stops.
    REMOTE2_EXTRA=", parallelism: 1" fleet_header "$fleet"
    # Enough of them on h2 that the host's shutdown (which takes a moment to refuse requests)
    # comes before the last ones, however fast each launch is.
    for i in 1 2 3; do echo "  late-a$i: {remote: h1, image: bb, state: stopped}" >>"$fleet"; done
    for i in 1 2 3 4 5 6 7 8; do echo "  late-b$i: {remote: h2, image: bb, state: stopped}" >>"$fleet"; done
    start_bg down apply -f "$fleet" --auto-approve --state "$STATE" --json
    local pid=$BG_PID
    wait_for "$WORK/down.out" '"action":"launch h2:late-b.*"event":"started"|"event":"started".*"action":"launch h2:late-b' 60 || true
    "$TB_SH" stop-host "$TB_DIR" 2
    wait_pid "$pid"
    RC=$BG_RC OUT=$(cat "$WORK/down.out") ERR=$(cat "$WORK/down.err")
    assert_exit 1 "apply exits 1 when h2 goes down during it"
    assert_jq "$(grep '"summary"' <<<"$OUT")" '.failed > 0' true "some actions failed"
    assert_eq "" "$(grep '"event":"failed"' <<<"$OUT" | jq -r 'select(.action | test(" h2:") | not) | .action')" \
        "only h2's actions failed"
    assert_eq "late-a1,late-a2,late-a3" "$(lxc_names h1 late)" "h1's launches all succeeded"
    assert_contains "$(grep '"event":"failed"' <<<"$OUT" | head -1)" "h2" "the failure names h2"

    # Back up: the next apply converges.
    "$TB_SH" start-host "$TB_DIR" 2
    run berth_t apply -f "$fleet" --auto-approve --state "$STATE"
    check_hung apply
    assert_exit 0 "with h2 back, the next apply converges"
    assert_eq "late-b1,late-b2,late-b3,late-b4,late-b5,late-b6,late-b7,late-b8" "$(lxc_names h2 late)" \
        "h2 holds exactly its eight containers"
    run berth plan -f "$fleet" --detailed-exitcode
    assert_exit 0 "plan is empty"
}

tb_start 2
add_remotes
test_lock
test_missing_image
test_kill_during_launch
test_kill_during_move
test_stopped_host
finish
