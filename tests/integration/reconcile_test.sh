#!/usr/bin/env bash
# reconcile_test.sh — what berth reconciles beyond the declared values, on two real LXD hosts:
#
# - removed keys: config keys, devices and profiles berth set and the file no longer declares are
#   removed (user.berth.managed records them on the host); what was set by hand stays;
# - adoption: a declared container made by hand with `lxc init` gets an explicit `adopt` action
#   and is then the fleet's (destroy deletes it); one owned by another fleet gets no action;
# - image drift: moving the image alias to a new image is reported; `--replace` recreates the
#   container (only with --allow-recreate) from the new image; an alias that does not exist makes
#   its containers unplanned and the plan incomplete (exit 1) while the rest is applied;
# - the CLI: --target, plan --destroy --out and apply of that saved plan.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE
FLEET=$WORK/fleet.yaml

# write_fleet WEB_EXTRA: web's extra keys (YAML lines, indented by 4), the rest fixed.
write_fleet() {
    tb_fleet_header "$FLEET"
    cat >>"$FLEET" <<EOF
containers:
  web:
    remote: h1
    image: bb
    state: stopped
${1:-}
  handmade:
    remote: h2
    image: bb
    state: stopped
    config: {user.role: adopted}
  theirs: {remote: h2, image: bb, state: stopped}
EOF
}

test_removed_keys() {
    tb_lxc_q profile create h1:extra
    write_fleet '    config: {limits.cpu: "1", user.role: web}
    devices: {scratch: {type: disk, source: /tmp, path: /mnt/scratch}}
    profiles: [default, extra]'
    tb_container h2 handmade stopped -c user.note=by-hand
    tb_container h2 theirs stopped -c user.berth.fleet=staging

    run berth plan -f "$FLEET" --json
    assert_exit 0 "plan with a hand-made container and another fleet's"
    assert_jq "$OUT" "$ACTION_SET" "adopt h2:handmade, launch h1:web" "handmade is adopted, web launched, theirs untouched"
    assert_jq "$OUT" '[.diagnostics[] | select(.path == "h2:theirs") | .summary | test("owned by fleet .staging.")] | any' \
        true "a warning says theirs belongs to fleet staging"
    assert_jq "$OUT" '.actions[] | select(.action == "adopt") | [.changes[].path] | sort | join(",")' \
        "config.user.berth.fleet,config.user.berth.managed,config.user.role" "the adopt action shows every change"

    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "apply launches and adopts"
    assert_eq default "$(lxc_config h2 handmade user.berth.fleet)" "handmade is marked as this fleet's"
    assert_eq adopted "$(lxc_config h2 handmade user.role)" "handmade got its declared config"
    assert_eq by-hand "$(lxc_config h2 handmade user.note)" "a key set by hand on handmade stays"
    assert_eq staging "$(lxc_config h2 theirs user.berth.fleet)" "theirs still belongs to staging"
    assert_eq '{"config":["limits.cpu","user.role"],"devices":["scratch"],"profiles":["default","extra"]}' \
        "$(lxc_config h1 web user.berth.managed)" "web carries berth's record"
    tb_lxc_q config set h1:web user.hand "set by hand"

    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "nothing to do after apply"

    # Drop limits.cpu, the device and the profile 'extra' from the file.
    write_fleet '    config: {user.role: web}
    profiles: [default]'
    run berth plan -f "$FLEET" --json
    assert_exit 0 "plan after removing keys"
    assert_jq "$OUT" "$ACTION_SET" "update h1:web" "one update"
    assert_jq "$OUT" '[.actions[0].changes[] | select(.after == null) | .path] | sort | join(",")' \
        "config.limits.cpu,devices.scratch" "limits.cpu and the device are removed"
    assert_jq "$OUT" '.actions[0].changes[] | select(.path == "profiles") | .after | join(",")' default \
        "the profile berth set is dropped"
    run berth plan -f "$FLEET"
    assert_contains "$OUT" 'config.limits.cpu: "1" -> (unset)' "the text plan shows the removal"

    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "apply removes what the file dropped"
    assert_eq "<unset>" "$(lxc_config h1 web limits.cpu)" "limits.cpu is gone from web"
    assert_eq "set by hand" "$(lxc_config h1 web user.hand)" "the key set by hand is still there"
    assert_jq "$(inst_json h1 web)" '.devices | has("scratch")' false "the scratch device is gone"
    assert_jq "$(inst_json h1 web)" '.profiles | join(",")' default "web has only the default profile"
    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "nothing to do after the removal"
}

test_target_and_destroy_plan() {
    tb_lxc_q config set h1:web user.role drifted
    tb_lxc_q config set h2:handmade user.role drifted
    run berth_t apply -f "$FLEET" --auto-approve --target h1:web
    check_hung apply
    assert_exit 0 "apply --target h1:web"
    assert_eq web "$(lxc_config h1 web user.role)" "the target was corrected"
    assert_eq drifted "$(lxc_config h2 handmade user.role)" "the container not targeted was left"
    run berth plan -f "$FLEET" --target nope
    assert_exit 1 "a target the file does not declare is an error"
    assert_contains "$ERR" "'nope'" "the error names the address"
    run berth_t apply -f "$FLEET" --auto-approve --target handmade
    check_hung apply
    assert_exit 0 "apply --target with a bare name"
    assert_eq adopted "$(lxc_config h2 handmade user.role)" "handmade corrected"
}

# A new image under the same alias: drift is reported, --replace recreates (with consent only).
test_image_drift() {
    local old new
    old=$(lxc_config h1 web volatile.base_image)
    tb_lxc_q snapshot h1:web keep
    tb_lxc_q publish h1:web/keep h1: --alias bb-next
    new=$(tb_lxc query h1:/1.0/images/aliases/bb-next | jq -r .target)
    [[ -n "$new" && "$new" != "$old" ]] || bail "publishing a second image failed" "$new"
    tb_lxc_q image alias delete h1:bb
    tb_lxc_q image alias create h1:bb "$new"

    run berth plan -f "$FLEET" --json
    assert_exit 0 "a plan with image drift, not replaced"
    assert_jq "$OUT" "$ACTION_SET" "" "drift alone plans no action"
    assert_jq "$OUT" '[.diagnostics[] | select(.path == "h1:web") | .summary | test("now resolves to")] | any' true \
        "a warning reports the drift"

    run berth_t apply -f "$FLEET" --auto-approve --replace h1:web
    check_hung apply
    assert_exit 1 "a recreate without consent is refused"
    assert_contains "$OUT" "--allow-recreate" "the refusal says how to consent"
    assert_eq "$old" "$(lxc_config h1 web volatile.base_image)" "nothing was recreated"

    run berth plan -f "$FLEET" --replace web --allow-recreate
    assert_contains "$OUT" "data and snapshots are not kept" "the plan line says what is lost"
    run berth_t apply -f "$FLEET" --auto-approve --replace web --allow-recreate
    check_hung apply
    assert_exit 0 "apply --replace --allow-recreate"
    assert_eq "$new" "$(lxc_config h1 web volatile.base_image)" "web runs the new image"
    assert_eq "" "$(lxc_snaps h1 web)" "its snapshots did not survive (as the plan said)"
    assert_eq "<unset>" "$(lxc_config h1 web user.hand)" "nor did anything set by hand"
    assert_eq default "$(lxc_config h1 web user.berth.fleet)" "the new web is the fleet's"
    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "no drift after the replace"
}

# An alias that does not exist: its containers are not planned, the rest is applied, exit 1.
test_missing_image() {
    write_fleet '    config: {user.role: web}
    profiles: [default]
  ghost: {remote: h2, image: "h1:no-such-alias"}
  fine: {remote: h2, image: bb, state: stopped}'
    run berth plan -f "$FLEET" --json
    assert_exit 1 "a plan with an alias that does not exist is incomplete"
    assert_jq "$OUT" '.complete' false "the JSON plan says incomplete"
    assert_jq "$OUT" '.not_planned | keys | join(",")' "h2:ghost" "ghost is not planned"
    assert_jq "$OUT" "$ACTION_SET" "launch h2:fine" "the rest is planned"
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 1 "apply exits 1: the plan was incomplete"
    assert_eq Stopped "$(lxc_status h2 fine)" "the rest was applied"
    assert_eq absent "$(lxc_status h2 ghost)" "ghost was not launched"
    assert_not_contains "$OUT" "No changes." "an incomplete plan never says No changes"
}

test_destroy_plan() {
    local p=$WORK/destroy.plan
    write_fleet '    config: {user.role: web}
    profiles: [default]
  fine: {remote: h2, image: bb, state: stopped}'
    run berth plan -f "$FLEET" --destroy --out "$p" --json
    assert_exit 0 "plan --destroy --out"
    assert_jq "$OUT" "$ACTION_SET" "delete h1:web, delete h2:fine, delete h2:handmade" "it deletes what the fleet owns"
    assert_jq "$OUT" '.destroy' true "the plan says it is a destroy plan"
    run berth_t apply "$p"
    check_hung apply
    assert_exit 0 "apply of the saved destroy plan"
    assert_eq "" "$(lxc_names h1)" "h1 is empty"
    assert_eq "theirs" "$(lxc_names h2)" "only the other fleet's container is left"
}

tb_start 2
add_remotes
test_removed_keys
test_target_and_destroy_plan
test_image_drift
test_missing_image
test_destroy_plan
finish
