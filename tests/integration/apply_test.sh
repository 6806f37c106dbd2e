#!/usr/bin/env bash
# apply_test.sh — `berth apply` against two real LXD hosts.
#
# One fleet covers every kind of action: launches on both hosts (h2 pulls the
# image from h1), config, a stopped and a frozen container, snapshots, a copy
# on the same host, a copy of a snapshot across hosts and a move across hosts
# (the container is made by hand on the wrong host). After apply the plan is
# empty and `lxc` confirms every container, snapshot, config value and power
# state. Then: drift made by hand is planned exactly and corrected; a saved
# plan applies, and is refused as stale after a hand-made change; destroy
# removes what the file owns and leaves a hand-made container alone.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE # belt and braces: never the user's state file
FLEET=$WORK/fleet.yaml

write_fleet() {
    tb_fleet_header "$FLEET"
    cat >>"$FLEET" <<EOF
containers:
  web:
    remote: h1
    image: bb
    config:
      limits.memory: 64MiB
      user.role: frontend
    snapshots: [s1, s2]
  db:
    remote: h2
    image: bb
    config:
      user.role: database
  batch: {remote: h1, image: bb, state: stopped, config: {user.role: batch}}
  cold: {remote: h2, image: bb, state: frozen}
  web-clone: {remote: h1, copy_of: web, state: stopped}
  replica: {remote: h2, copy_of: web/s1}
  mover:
    remote: h2
    image: bb
    state: stopped
    snapshots: [m1]
    move: allowed
EOF
}

test_apply_full_fleet() {
    write_fleet
    # The container to move lives on the wrong host, made by hand, owned by the fleet.
    berth_marks
    tb_container h1 mover stopped "${BERTH_MARKS[@]}" -c user.note=moved
    tb_lxc_q snapshot h1:mover m1
    # A hand-made container that is none of berth's business.
    tb_container h1 stranger stopped

    run berth plan -f "$FLEET" --json
    assert_exit 0 "plan before apply succeeds"
    assert_jq "$OUT" "$ACTION_SET" \
        "copy h1:web-clone, copy h2:replica, launch h1:batch, launch h1:web, launch h2:cold, launch h2:db, move h2:mover, snapshot h1:web/s1, snapshot h1:web/s2" \
        "the plan has every kind of action"

    local t0=$SECONDS
    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
    check_hung apply
    assert_exit 0 "apply --auto-approve succeeds"
    log "apply took $((SECONDS - t0)) s"
    assert_contains "$OUT" "Apply complete" "the summary says the apply is complete"

    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "after apply, plan --detailed-exitcode is 0 (nothing left to do)"

    # Every container where it belongs, in its power state.
    assert_eq "batch,stranger,web,web-clone" "$(lxc_names h1)" "h1 holds batch, stranger, web, web-clone"
    assert_eq "cold,db,mover,replica" "$(lxc_names h2)" "h2 holds cold, db, mover, replica"
    assert_eq absent "$(lxc_status h1 mover)" "the moved container is gone from h1"
    local expect r n s
    for expect in h1:web:Running h1:batch:Stopped h1:web-clone:Stopped h2:db:Running \
        h2:cold:Frozen h2:replica:Running h2:mover:Stopped h1:stranger:Stopped; do
        IFS=: read -r r n s <<<"$expect"
        assert_eq "$s" "$(lxc_status "$r" "$n")" "$r:$n is $s"
    done
    # Config values and ownership.
    assert_eq 64MiB "$(lxc_config h1 web limits.memory)" "h1:web limits.memory"
    assert_eq frontend "$(lxc_config h1 web user.role)" "h1:web user.role"
    assert_eq database "$(lxc_config h2 db user.role)" "h2:db user.role"
    assert_eq batch "$(lxc_config h1 batch user.role)" "h1:batch user.role"
    assert_eq moved "$(lxc_config h2 mover user.note)" "the move kept h2:mover's config"
    for expect in h1:web h1:batch h1:web-clone h2:db h2:cold h2:replica h2:mover; do
        assert_eq default "$(lxc_config "${expect%%:*}" "${expect#*:}" user.berth.fleet)" "$expect is owned (user.berth.fleet)"
    done
    assert_eq "<unset>" "$(lxc_config h1 stranger user.berth.fleet)" "the stranger is not marked"
    # Copies carry their source's content: config from web.
    assert_eq frontend "$(lxc_config h1 web-clone user.role)" "the same-host copy has web's config"
    assert_eq frontend "$(lxc_config h2 replica user.role)" "the cross-host snapshot copy has web's config"
    # Snapshots.
    assert_eq "s1,s2" "$(lxc_snaps h1 web)" "h1:web has snapshots s1, s2"
    assert_eq "m1" "$(lxc_snaps h2 mover)" "the move brought snapshot m1 along"
}

test_drift() {
    tb_lxc_q config set h1:web user.role drifted
    tb_lxc_q stop h2:db --force

    run berth plan -f "$FLEET" --json
    assert_exit 0 "plan after drift succeeds"
    assert_jq "$OUT" "$ACTION_SET" "start h2:db, update h1:web" "plan shows exactly the two drifts"
    assert_jq "$OUT" '.actions[] | select(.action == "update") | .changes == [{path: "config.user.role", before: "drifted", after: "frontend"}]' \
        true "the update changes exactly user.role drifted -> frontend"

    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE" --json
    check_hung apply
    assert_exit 0 "apply corrects the drift"
    assert_jq "$(grep '"summary"' <<<"$OUT")" '"\(.succeeded) \(.failed)"' "2 0" "two actions succeeded, none failed"
    assert_jq "$(grep '"event":"finished"' <<<"$OUT" | jq -s '[.[].action] | sort | join(", ")')" '.' \
        "start h2:db, update h1:web" "the finished events name both actions"
    assert_eq frontend "$(lxc_config h1 web user.role)" "h1:web user.role is back"
    assert_eq Running "$(lxc_status h2 db)" "h2:db runs again"
    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "plan is empty after correcting the drift"
}

test_no_tty_refuses() {
    tb_lxc_q stop h2:db --force
    run berth_t apply -f "$FLEET" --state "$STATE"
    check_hung apply
    assert_exit 1 "apply without a TTY and without --auto-approve refuses"
    assert_icontains "$ERR" "auto-approve" "the refusal says how to approve"
    assert_eq Stopped "$(lxc_status h2 db)" "nothing was changed"
}

test_saved_plan() {
    local p1=$WORK/p1.plan p2=$WORK/p2.plan
    # (h2:db was stopped by the previous test.)
    run berth plan -f "$FLEET" --out "$p1"
    assert_exit 0 "plan --out saves a plan"
    run berth_t apply "$p1" --state "$STATE"
    check_hung apply
    assert_exit 0 "apply PLANFILE works (no confirmation for a saved plan)"
    assert_eq Running "$(lxc_status h2 db)" "the saved plan started h2:db"
    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "plan is empty after the saved plan"

    tb_lxc_q stop h2:db --force
    run berth plan -f "$FLEET" --out "$p2"
    assert_exit 0 "second plan --out"
    tb_lxc_q config set h2:db user.note by-hand
    run berth_t apply "$p2" --state "$STATE"
    check_hung apply
    assert_exit 1 "a stale saved plan is refused"
    assert_icontains "$OUT$ERR" "stale" "the refusal says the plan is stale"
    assert_contains "$ERR" "h2:db" "the refusal names the changed container"
    assert_eq Stopped "$(lxc_status h2 db)" "the stale plan changed nothing"

    # Repair with a fresh apply.
    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
    check_hung apply
    assert_exit 0 "a fresh apply after the stale plan"
}

test_destroy() {
    run berth_t destroy -f "$FLEET" --auto-approve --state "$STATE"
    check_hung destroy
    assert_exit 0 "destroy succeeds"
    assert_eq "stranger" "$(lxc_names h1)" "only the hand-made container is left on h1"
    assert_eq "" "$(lxc_names h2)" "h2 is empty"
    assert_eq Stopped "$(lxc_status h1 stranger)" "the hand-made container is untouched"
}

tb_start 2
add_remotes
test_apply_full_fleet
test_drift
test_no_tty_refuses
test_saved_plan
test_destroy
finish
