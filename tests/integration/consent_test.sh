#!/usr/bin/env bash
# consent_test.sh — restarts that config changes need, and the consent they need, on real LXD hosts.
#
# A key LXD applies only at start (security.nesting, security.privileged, ...) changed on a
# container declared running becomes a `restart` action that needs consent:
#  - without consent apply refuses it (exit 1): nothing of its keys reaches the host, the
#    container is not restarted, and the next plan still shows it;
#  - with --allow-restart the key is set and the container restarted (its init pid changes);
#  - live keys changed at the same time are applied even without consent; `restart: allowed`
#    in the fleet file is consent too;
#  - a plan saved with --allow-restart records the consent (`berth apply PLAN --allow-restart`
#    is an error); a plan saved without it refuses the restart;
#  - berth killed between the PUT (key + restart-pending mark) and the restart: the next plan
#    finds the mark and plans the restart, the next apply does it and removes the mark;
#  - a container declared stopped needs no consent: the key is set and it is stopped.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE
FLEET=$WORK/fleet.yaml
MARK=user.berth.restart-pending

# What each container declares besides remote and image (a YAML flow mapping's tail).
C1=
C2=
C3=
C4=
C5=

write_fleet() {
    tb_fleet_header "$FLEET"
    cat >>"$FLEET" <<EOF
containers:
  c1: {remote: h1, image: bb${C1}}
  c2: {remote: h1, image: bb${C2}}
  c3: {remote: h1, image: bb${C3}}
  c4: {remote: h1, image: bb${C4}}
  c5: {remote: h2, image: bb${C5}}
EOF
}

# init_pid REMOTE NAME: the pid of the container's init, as the host reports it.
init_pid() { tb_lxc query "$1:/1.0/instances/$2/state" 2>/dev/null | jq -r '.pid // "none"' 2>/dev/null || echo none; }

# assert_restarted BEFORE AFTER MSG: AFTER is a live pid other than BEFORE.
assert_restarted() {
    local before=$1 after=$2 msg=$3
    if [[ "$after" =~ ^[0-9]+$ ]] && ((after > 0)) && [[ "$after" != "$before" ]]; then
        _pass "$msg"
    else
        _fail "$msg" "init pid before: $before" "init pid after:  $after"
    fi
}

plan_json() {
    run berth plan -f "$FLEET" --json
    assert_exit 0 "${1:-plan --json succeeds}"
}

plan_is_empty() {
    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "$1"
}

apply_fleet() {
    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE" "$@"
    check_hung apply
}

# ---------------------------------------------------------------- setup

test_setup() {
    write_fleet
    apply_fleet
    assert_exit 0 "setup: berth launches c1..c5, running"
    local expect
    for expect in h1:c1 h1:c2 h1:c3 h1:c4 h2:c5; do
        assert_eq Running "$(lxc_status "${expect%%:*}" "${expect#*:}")" "$expect runs"
    done
    plan_is_empty "setup: plan is empty"
}

# ---------------------------------------------------------------- 1, 2: refused, then consented

test_refused_then_allowed() {
    local pid0 pid1
    pid0=$(init_pid h1 c1)
    C1=', config: {security.nesting: "true"}'
    write_fleet

    plan_json "plan with a restart-key change succeeds"
    assert_jq "$OUT" "$ACTION_SET" "restart h1:c1" "the plan is exactly one restart h1:c1"
    assert_jq "$OUT" '.actions[0] | "\(.disruption) \(.consented)"' "restart false" \
        "the restart has disruption restart and is not consented"
    assert_jq "$OUT" '[.actions[0].changes[] | select(.path != "config.user.berth.managed")] == [{path: "config.security.nesting", before: null, after: "true"}]' true \
        "the restart action carries the security.nesting change"

    apply_fleet
    assert_exit 1 "apply without consent exits 1"
    assert_contains "$OUT" "refused: restart h1:c1" "the summary reports the restart refused"
    assert_contains "$OUT" "--allow-restart" "the refusal says how to consent"
    assert_eq "<unset>" "$(lxc_config h1 c1 security.nesting)" "security.nesting did not reach the host"
    assert_eq "<unset>" "$(lxc_config h1 c1 "$MARK")" "no restart-pending mark on the host"
    assert_eq "$pid0" "$(init_pid h1 c1)" "c1 was not restarted (init pid unchanged)"
    assert_eq Running "$(lxc_status h1 c1)" "c1 still runs"

    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 2 "the next plan --detailed-exitcode exits 2"
    assert_contains "$OUT" "restart   h1:c1" "the next plan still shows the restart"
    assert_contains "$OUT" "needs consent" "and that it needs consent"

    apply_fleet --allow-restart
    assert_exit 0 "apply --allow-restart exits 0"
    assert_eq true "$(lxc_config h1 c1 security.nesting)" "security.nesting is set on the host"
    pid1=$(init_pid h1 c1)
    assert_restarted "$pid0" "$pid1" "c1 was restarted (init pid $pid0 -> $pid1)"
    assert_eq Running "$(lxc_status h1 c1)" "c1 runs after the restart"
    assert_eq "<unset>" "$(lxc_config h1 c1 "$MARK")" "no restart-pending mark is left"
    plan_is_empty "plan --detailed-exitcode is 0 after the consented restart"
}

# ---------------------------------------------------------------- 3: live and restart keys together

test_mixed() {
    local pid0 pid1
    pid0=$(init_pid h1 c2)
    C2=', config: {limits.memory: 96MiB, security.privileged: "true"}'
    write_fleet

    plan_json "plan with a live and a restart key succeeds"
    assert_jq "$OUT" "$ACTION_SET" "restart h1:c2, update h1:c2" "the plan is an update and a restart of c2"
    assert_jq "$OUT" '.actions[] | select(.action == "update") | [.changes[].path | select(. != "config.user.berth.managed")] | join(",")' "config.limits.memory" \
        "the update holds only limits.memory"
    assert_jq "$OUT" '.actions[] | select(.action == "restart") | [.changes[].path | select(. != "config.user.berth.managed")] | join(",")' "config.security.privileged" \
        "the restart holds only security.privileged"
    assert_jq "$OUT" '.actions[] | select(.action == "update") | "\(.disruption) \(.consented)"' "none true" \
        "the update needs no consent"

    apply_fleet
    assert_exit 1 "apply without consent exits 1"
    assert_contains "$OUT" "refused: restart h1:c2" "the restart is refused"
    assert_eq 96MiB "$(lxc_config h1 c2 limits.memory)" "the live key limits.memory was applied"
    assert_eq "<unset>" "$(lxc_config h1 c2 security.privileged)" "security.privileged did not reach the host"
    assert_eq "<unset>" "$(lxc_config h1 c2 "$MARK")" "no restart-pending mark on the host"
    assert_eq "$pid0" "$(init_pid h1 c2)" "c2 was not restarted (init pid unchanged)"

    plan_json "plan after the partial apply succeeds"
    assert_jq "$OUT" "$ACTION_SET" "restart h1:c2" "the next plan shows only the restart"

    C2=', restart: allowed, config: {limits.memory: 96MiB, security.privileged: "true"}'

    write_fleet
    plan_json "plan with restart: allowed succeeds"
    assert_jq "$OUT" '.actions[] | select(.action == "restart") | .consented' true \
        "restart: allowed in the fleet file consents to the restart"
    apply_fleet
    assert_exit 0 "apply with restart: allowed exits 0"
    assert_eq true "$(lxc_config h1 c2 security.privileged)" "security.privileged is set on the host"
    pid1=$(init_pid h1 c2)
    assert_restarted "$pid0" "$pid1" "c2 was restarted (init pid $pid0 -> $pid1)"
    assert_eq "<unset>" "$(lxc_config h1 c2 "$MARK")" "no restart-pending mark is left"
    plan_is_empty "plan is empty after restart: allowed"
}

# ---------------------------------------------------------------- 4: saved plans

test_saved_plan() {
    local p=$WORK/restart.plan p2=$WORK/norestart.plan pid0 pid1
    pid0=$(init_pid h1 c3)
    C3=', config: {security.nesting: "true"}'
    write_fleet

    run berth plan -f "$FLEET" --allow-restart --out "$p"
    assert_exit 0 "plan --allow-restart --out saves a plan"
    run berth show "$p" --json
    assert_exit 0 "show --json of the saved plan"
    assert_jq "$OUT" "$ACTION_SET" "restart h1:c3" "the saved plan is the restart of c3"
    assert_jq "$OUT" '.actions[0].consented' true "the saved plan records the restart as consented"
    assert_jq "$OUT" '.consent.restart' true "the saved plan records --allow-restart"
    run berth show "$p"
    assert_exit 0 "show of the saved plan"
    assert_contains "$OUT" "restart   h1:c3" "the text shows the restart"
    assert_not_contains "$OUT" "needs consent" "the text does not mark it as needing consent"

    run berth_t apply "$p" --allow-restart --state "$STATE"
    check_hung apply
    assert_exit 1 "apply PLAN --allow-restart is an error"
    assert_icontains "$ERR" "already records" "the error says the saved plan already records its consent"
    assert_eq "<unset>" "$(lxc_config h1 c3 security.nesting)" "and nothing changed on the host"
    assert_eq "$pid0" "$(init_pid h1 c3)" "c3 was not restarted"

    run berth_t apply "$p" --state "$STATE"
    check_hung apply
    assert_exit 0 "apply of the consented saved plan exits 0"
    assert_eq true "$(lxc_config h1 c3 security.nesting)" "security.nesting is set on the host"
    pid1=$(init_pid h1 c3)
    assert_restarted "$pid0" "$pid1" "c3 was restarted (init pid $pid0 -> $pid1)"
    assert_eq "<unset>" "$(lxc_config h1 c3 "$MARK")" "no restart-pending mark is left"
    plan_is_empty "plan is empty after the saved plan"

    # Saved without consent: the restart is refused.
    C3=', config: {security.nesting: "true", security.privileged: "true"}'
    write_fleet
    run berth plan -f "$FLEET" --out "$p2"
    assert_exit 0 "plan --out without --allow-restart"
    run berth show "$p2" --json
    assert_jq "$OUT" '[.actions[] | "\(.id) \(.consented)"] | join(",")' "restart h1:c3 false" \
        "the saved plan has the restart, not consented"
    run berth_t apply "$p2" --state "$STATE"
    check_hung apply
    assert_exit 1 "apply of a saved plan without consent exits 1"
    assert_contains "$OUT" "refused: restart h1:c3" "the restart is refused"
    assert_eq "<unset>" "$(lxc_config h1 c3 security.privileged)" "security.privileged did not reach the host"
    assert_eq "$pid1" "$(init_pid h1 c3)" "c3 was not restarted"
    # Back to the applied declaration, so that later plans are about their own test only.
    C3=', config: {security.nesting: "true"}'
    write_fleet
    plan_is_empty "plan is empty with the change withdrawn"
}

# ---------------------------------------------------------------- 5: killed between PUT and restart

test_lost_restart() {
    local pid0 pid1
    pid0=$(init_pid h1 c4)
    C4=', config: {security.nesting: "true"}'
    write_fleet

    BERTH_TEST_KILL_AT_STEP=restart run berth_t apply -f "$FLEET" --auto-approve --allow-restart --state "$STATE"
    ((RC != 124)) || bail "the apply to be killed hung instead" "$(_last_output)"
    assert_exit 137 "berth killed itself at the restart step (SIGKILL)"
    assert_eq true "$(lxc_config h1 c4 security.nesting)" "the PUT before the restart set security.nesting"
    assert_eq true "$(lxc_config h1 c4 "$MARK")" "and the restart-pending mark"
    assert_eq "$pid0" "$(init_pid h1 c4)" "c4 was not restarted"

    plan_json "plan after the killed run succeeds"
    assert_jq "$OUT" '[.actions[] | select(.id == "restart h1:c4")] | length' 1 "the plan has a restart of c4"
    assert_jq "$OUT" '.actions[] | select(.id == "restart h1:c4") | .reason | test("interrupted")' true \
        "its reason says an interrupted run's restart is pending"
    assert_jq "$OUT" '.actions[] | select(.id == "restart h1:c4") | .disruption' restart "it is a disruption restart"

    apply_fleet --allow-restart
    assert_exit 0 "apply --allow-restart after the killed run exits 0"
    log "the apply after the killed run said on stderr: $(tr '\n' ' ' <<<"$ERR")"
    pid1=$(init_pid h1 c4)
    assert_restarted "$pid0" "$pid1" "c4 was restarted (init pid $pid0 -> $pid1)"
    assert_eq Running "$(lxc_status h1 c4)" "c4 runs"
    assert_eq true "$(lxc_config h1 c4 security.nesting)" "security.nesting is still set"
    assert_eq "<unset>" "$(lxc_config h1 c4 "$MARK")" "the restart-pending mark is gone"
    plan_is_empty "plan is empty after the recovered restart"
}

# ---------------------------------------------------------------- 6: declared stopped

test_declared_stopped() {
    C5=', state: stopped, config: {security.nesting: "true"}'
    write_fleet
    plan_json "plan for a running container declared stopped succeeds"
    assert_jq "$OUT" "$ACTION_SET" "stop h2:c5, update h2:c5" "the plan updates c5 and stops it"
    assert_jq "$OUT" '.actions[] | select(.action == "update") | [.changes[].path | select(. != "config.user.berth.managed")] | join(",")' "config.security.nesting" \
        "the update carries security.nesting"
    assert_jq "$OUT" '[.actions[] | select(.action == "restart")] | length' 0 "no restart action"
    assert_jq "$OUT" '[.actions[] | select(.consented | not)] | length' 0 "nothing needs consent"

    apply_fleet
    assert_exit 0 "one apply without flags exits 0"
    assert_eq true "$(lxc_config h2 c5 security.nesting)" "security.nesting is set on the host"
    assert_eq Stopped "$(lxc_status h2 c5)" "c5 is stopped"
    assert_eq "<unset>" "$(lxc_config h2 c5 "$MARK")" "no restart-pending mark"
    plan_is_empty "plan is empty"
}

tb_start 2
add_remotes
test_setup
test_refused_then_allowed
test_mixed
test_saved_plan
test_lost_restart
test_declared_stopped
finish
