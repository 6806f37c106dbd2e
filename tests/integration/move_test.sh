#!/usr/bin/env bash
# move_test.sh — offline moves between two real LXD hosts, there and back.
#
# A stopped container with a snapshot and a running one are moved from h1 to
# h2 by changing their remote in the fleet file, then back. A marker file
# written into the rootfs before the move (and another one that only the
# snapshot holds) is on the other host afterwards; the source is gone; the
# snapshots, config and power state came along. Without consent the moves are
# refused and nothing changes.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE
FLEET=$WORK/fleet.yaml

read_marker() { cat "$1/root/berth-marker" 2>/dev/null || echo "<missing>"; }

# write_fleet REMOTE SNAPSHOTS MOVE
write_fleet() {
    tb_fleet_header "$FLEET"
    cat >>"$FLEET" <<EOF
containers:
  mv:
    remote: $1
    image: bb
    state: stopped
    config: {user.note: keep-me, limits.memory: 96MiB}
    snapshots: [$2]
    move: $3
  run:
    remote: $1
    image: bb
    state: running
    move: $3
EOF
}

# check_on HOST OTHER: both containers are on host HOST (index) and not on OTHER, intact.
check_on() {
    local h=$1 o=$2
    assert_eq "mv,run" "$(lxc_names "h$h")" "h$h holds mv and run"
    assert_eq "" "$(lxc_names "h$o")" "h$o holds nothing (the sources are gone)"
    assert_eq Stopped "$(lxc_status "h$h" mv)" "h$h:mv is stopped, as declared"
    assert_eq Running "$(lxc_status "h$h" run)" "h$h:run runs again after its move"
    assert_eq "after-snapshot" "$(read_marker "$(rootfs "$h" mv)")" "the marker file is in h$h:mv's rootfs"
    assert_eq "run-marker" "$(read_marker "$(rootfs "$h" run)")" "the marker file is in h$h:run's rootfs"
    assert_eq "snap1" "$(lxc_snaps "h$h" mv)" "h$h:mv has its snapshot"
    assert_eq "before-snapshot" "$(read_marker "$(rootfs "$h" mv snap1)")" "the snapshot's content came along"
    assert_eq keep-me "$(lxc_config "h$h" mv user.note)" "h$h:mv kept its config"
    assert_eq 96MiB "$(lxc_config "h$h" mv limits.memory)" "h$h:mv kept limits.memory"
    assert_eq default "$(lxc_config "h$h" mv user.berth.fleet)" "h$h:mv is still owned"
    if [[ ! -e "$(rootfs "$o" mv)" ]]; then
        _pass "no rootfs of mv left on h$o"
    else
        _fail "no rootfs of mv left on h$o" "$(rootfs "$o" mv) exists"
    fi
    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "plan is empty after the move to h$h"
}

tb_start 2
add_remotes

# Launch on h1, write a marker, snapshot, change the marker.
write_fleet h1 "" denied
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "initial apply on h1"
mkdir -p "$(rootfs 1 mv)/root"
echo before-snapshot >"$(rootfs 1 mv)/root/berth-marker"
write_fleet h1 snap1 denied
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "apply takes snapshot snap1"
echo after-snapshot >"$(rootfs 1 mv)/root/berth-marker"
mkdir -p "$(rootfs 1 run)/root"
echo run-marker >"$(rootfs 1 run)/root/berth-marker"
assert_eq "before-snapshot" "$(read_marker "$(rootfs 1 mv snap1)")" "setup: the snapshot holds the first marker"

# Declared on h2 without consent: refused, nothing moves.
write_fleet h2 snap1 denied
run berth plan -f "$FLEET" --json
assert_jq "$OUT" '[.actions[] | select(.action == "move") | "\(.source)->\(.address) \(.disruption)"] | sort | join(", ")' \
    "h1:mv->h2:mv move, h1:run->h2:run move" "the plan moves both, as disruptive moves"
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE" --json
check_hung apply
assert_exit 1 "apply without move consent exits 1"
# A running container's move is stop (source), move, start (target); the start is skipped.
assert_jq "$(grep '"summary"' <<<"$OUT")" '"\(.succeeded) \(.refused) \(.skipped)"' "0 3 1" \
    "the moves and the stop before one are refused, the start after it skipped"
assert_icontains "$(grep '"refused"' <<<"$OUT" | head -1)" "allow-move" "the refusal names --allow-move"
assert_eq "mv,run" "$(lxc_names h1)" "nothing moved without consent"

# --allow-move: to h2.
t0=$SECONDS
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE" --allow-move --json
check_hung apply
assert_exit 0 "apply --allow-move moves both to h2"
log "move to h2 took $((SECONDS - t0)) s"
assert_jq "$(grep '"summary"' <<<"$OUT")" '"\(.succeeded) \(.failed)"' "4 0" "four actions succeeded"
assert_eq "move h2:mv, move h2:run, start h2:run, stop h1:run" \
    "$(grep '"event":"finished"' <<<"$OUT" | jq -rs '[.[].action] | sort | join(", ")')" \
    "finished: both moves, and the stop and start around the running one's"
check_on 2 1

# Back to h1, consent from the file this time.
write_fleet h1 snap1 allowed
t0=$SECONDS
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "apply with move: allowed moves both back to h1"
log "move back to h1 took $((SECONDS - t0)) s"
check_on 1 2

finish
