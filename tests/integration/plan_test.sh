#!/usr/bin/env bash
# plan_test.sh — `berth plan` against two real LXD hosts.
#
# Containers are made by hand with `lxc` (right place, wrong place, wrong
# config, wrong power state, missing, missing snapshot, owned and unowned
# strays); the plan must list exactly the expected actions. An unreachable
# third remote makes the plan partial (Unknown, exit 1) without hiding the
# other actions. Plans are stable byte for byte, and a saved plan shows the same.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# action_list "a x" "b y" ...: the same sorted, joined form as ACTION_SET.
action_list() {
    printf '%s\n' "$@" | jq -R . | jq -rs 'sort | join(", ")'
}

EXPECTED=(
    "freeze h2:freezeme"
    "copy h2:clone"
    "launch h1:missing"
    "move h1:wrongplace"
    "snapshot h2:snapme/s2"
    "start h1:startme"
    "stop h2:stopme"
    "unfreeze h2:unfreezeme"
    "update h1:wrongconfig"
)
EXPECTED_ACTIONS=$(action_list "${EXPECTED[@]}")

write_fleet() {
    local file=$1 extra_remotes=${2:-} extra_containers=${3:-} top=${4:-}
    cat >"$file" <<EOF
version: 1
${top}
remotes:
  h1:
    url: ${TB_HOST1_URL}
  h2:
    url: ${TB_HOST2_URL}
${extra_remotes}
images:
  bb: {remote: h1, alias: bb}
containers:
  right:
    remote: h1
    image: bb
    state: running
    config:
      limits.memory: 128MiB
  wrongplace: {remote: h1, image: bb, state: stopped}
  wrongconfig:
    remote: h1
    image: bb
    state: stopped
    config:
      limits.memory: 256MiB
  startme: {remote: h1, image: bb, state: running}
  stopme: {remote: h2, image: bb, state: stopped}
  freezeme: {remote: h2, image: bb, state: frozen}
  unfreezeme: {remote: h2, image: bb, state: running}
  missing: {remote: h1, image: bb, state: running}
  snapme:
    remote: h2
    image: bb
    state: stopped
    snapshots: [s1, s2]
  clone: {remote: h2, copy_of: right, state: stopped}
${extra_containers}
EOF
}

setup_hosts() {
    # Owned, with berth's record (of limits.memory where it is declared), as if berth made them.
    berth_marks
    local own=("${BERTH_MARKS[@]}")
    berth_marks limits.memory
    local own_mem=("${BERTH_MARKS[@]}")
    # h1
    tb_container h1 right running "${own_mem[@]}" -c limits.memory=128MiB
    tb_container h1 wrongconfig stopped "${own_mem[@]}" -c limits.memory=128MiB -c user.note=by-hand
    tb_container h1 startme stopped "${own[@]}"
    tb_container h1 stranger running # not berth's: never touched
    # h2
    tb_container h2 wrongplace stopped "${own[@]}"
    tb_container h2 stopme running "${own[@]}"
    tb_container h2 freezeme running "${own[@]}"
    tb_container h2 unfreezeme frozen "${own[@]}"
    tb_container h2 snapme stopped "${own[@]}"
    tb_lxc_q snapshot h2:snapme s1
    tb_container h2 orphan stopped "${own[@]}" # berth's, undeclared: deleted only with pruning
}

test_full_plan() {
    local fleet=$WORK/fleet.yaml json
    write_fleet "$fleet"

    run berth validate -f "$fleet"
    assert_exit 0 "the fleet validates"

    run berth plan -f "$fleet" --json
    assert_exit 0 "plan --json succeeds"
    assert_json "plan --json prints JSON"
    json=$OUT
    PLAN_JSON=$json
    assert_jq "$json" '.format_version' 2 "format_version is 2"
    assert_jq "$json" '.complete' true "the plan is complete"
    assert_jq "$json" '.fleet.digest | startswith("sha256:")' true "fleet digest is sha256"
    assert_jq "$json" '.remotes.h1.status + " " + .remotes.h2.status' "ok ok" "both remotes are ok"
    assert_jq "$json" '.remotes.h1.instances' 4 "h1 has 4 instances"
    assert_jq "$json" '.remotes.h2.instances' 6 "h2 has 6 instances"
    assert_jq "$json" "$ACTION_SET" "$EXPECTED_ACTIONS" "exactly the expected actions"

    # Per-action details.
    assert_jq "$json" '[.actions[] | select(.container == "right")] | length' 0 \
        "no action for the container that is right"
    assert_jq "$json" '[.actions[] | select(.container == "stranger" or .container == "orphan")] | length' 0 \
        "no action for undeclared containers without pruning"
    assert_jq "$json" '[.actions[] | select(.action == "move")] | length' 1 "exactly one move"
    assert_jq "$json" '.actions[] | select(.action == "move") | "\(.source) -> \(.address)"' \
        "h2:wrongplace -> h1:wrongplace" "the move goes from h2 to h1"
    assert_jq "$json" '.actions[] | select(.action == "move") | .id' "move h1:wrongplace" "move id"
    assert_jq "$json" '.actions[] | select(.container == "wrongconfig")
        | .changes == [{path: "config.limits.memory", before: "128MiB", after: "256MiB"}]' true \
        "the update changes exactly limits.memory 128MiB -> 256MiB"
    assert_jq "$json" '.actions[] | select(.action == "launch") | "\(.address) \(.source)"' \
        "h1:missing null" "launch h1:missing"
    assert_jq "$json" '.actions[] | select(.action == "copy") | "\(.address) \(.source)"' \
        "h2:clone h1:right" "copy h1:right -> h2:clone (across hosts)"
    assert_jq "$json" '.actions[] | select(.action == "snapshot") | "\(.remote) \(.container) \(.snapshot)"' \
        "h2 snapme s2" "snapshot s2 of h2:snapme"
    assert_jq "$json" '[.actions[] | .disruption | select(IN("none", "restart", "move", "destroy") | not)] | length' 0 \
        "every disruption is one of none|restart|move|destroy"
    assert_jq "$json" '[.actions[] | select((.reason | type) != "string" or .reason == "")] | length' 0 \
        "every action has a reason"
    assert_jq "$json" '[.actions[].id] as $ids | [.actions[] | (.depends_on // [])[] | select(IN($ids[]) | not)] | length' 0 \
        "depends_on refers to actions of the plan"
    assert_jq "$json" '.summary.total == (.actions | length)' true "summary.total counts the actions"
    assert_jq "$json" '.summary.move' 1 "summary counts one move"
    assert_jq "$json" '[.diagnostics[] | select(.severity == "error")] | length' 0 "no error diagnostics"

    # Text form.
    run berth plan -f "$fleet"
    assert_exit 0 "plan (text) succeeds"
    PLAN_TEXT=$OUT
    local a
    for a in h1:missing h1:wrongplace h1:wrongconfig h1:startme h2:stopme h2:freezeme h2:unfreezeme h2:snapme; do
        assert_contains "$OUT" "${a#*:}" "text plan mentions ${a}"
    done
    assert_not_contains "$OUT" "stranger" "text plan does not mention an unowned stray"
    assert_not_contains "$OUT" $'\e[' "no colour escapes in text output"

    run berth plan -f "$fleet" --detailed-exitcode
    assert_exit 2 "--detailed-exitcode is 2 with changes"
}

test_prune() {
    local fleet=$WORK/fleet-prune.yaml
    write_fleet "$fleet"
    run berth plan -f "$fleet" --json --prune
    assert_exit 0 "plan --prune succeeds"
    assert_jq "$OUT" "$ACTION_SET" "$(action_list "${EXPECTED[@]}" "delete h2:orphan")" \
        "--prune adds a delete of the owned stray only"
    write_fleet "$fleet" "" "" "prune: true"
    run berth plan -f "$fleet" --json
    assert_exit 0 "plan with prune: true succeeds"
    assert_jq "$OUT" '[.actions[] | select(.action == "delete") | .address] | join(",")' "h2:orphan" \
        "prune: true in the file deletes the owned stray"
    assert_jq "$OUT" '[.actions[] | select(.container == "stranger")] | length' 0 "never the unowned one"
}

test_exact_fleet() {
    local fleet=$WORK/fleet-exact.yaml
    tb_fleet_header "$fleet"
    cat >>"$fleet" <<EOF
containers:
  right:
    remote: h1
    image: bb
    state: running
    config: {limits.memory: 128MiB}
  stopme: {remote: h2, image: bb, state: running}
  unfreezeme: {remote: h2, image: bb, state: frozen}
  snapme: {remote: h2, image: bb, state: stopped, snapshots: [s1]}
EOF
    run berth plan -f "$fleet" --detailed-exitcode
    assert_exit 0 "--detailed-exitcode is 0 for a fleet that matches exactly"
    run berth plan -f "$fleet" --json
    assert_jq "$OUT" '.actions | length' 0 "no actions for a matching fleet"
    assert_jq "$OUT" '.summary.total' 0 "summary.total is 0"
}

test_unreachable_third_remote() {
    local fleet=$WORK/fleet-h3.yaml unused fp
    unused=$("$TB_SH" unused-addr "$TB_DIR")
    fp=$(printf 'not the certificate of any host' | sha256sum | cut -d' ' -f1)
    write_fleet "$fleet" "  h3:
    url: ${unused}
    fingerprint: ${fp}" "  elsewhere: {remote: h3, image: bb, state: running}"

    run berth plan -f "$fleet" --json
    assert_exit 1 "an unreachable remote makes plan exit 1"
    assert_json "the partial plan is still printed as JSON"
    assert_jq "$OUT" '.remotes.h3.status' unknown "h3 is unknown"
    assert_jq "$OUT" '.remotes.h3.error | type == "string" and length > 0' true "h3 carries an error"
    assert_jq "$OUT" '.complete' false "the plan is marked incomplete"
    assert_jq "$OUT" '.remotes.h1.status + " " + .remotes.h2.status' "ok ok" "h1 and h2 are still ok"
    assert_jq "$OUT" "$ACTION_SET" "$EXPECTED_ACTIONS" "the other actions are still listed, none for h3"

    run berth plan -f "$fleet"
    assert_exit 1 "text plan exits 1 too"
    assert_contains "$OUT$ERR" "h3" "the text output names h3"
    assert_contains "$OUT" "missing" "the text output still lists the other actions"

    run berth plan -f "$fleet" --detailed-exitcode
    assert_exit 1 "--detailed-exitcode is 1 for an incomplete plan"
}

test_stable_output() {
    local fleet=$WORK/fleet.yaml t1 t2 j1 j2
    run berth plan -f "$fleet"
    t1=$OUT
    run berth plan -f "$fleet"
    t2=$OUT
    run berth plan -f "$fleet" --json
    j1=$OUT
    run berth plan -f "$fleet" --json
    j2=$OUT
    if [[ "$t1" == "$t2" && "$t1" == "$PLAN_TEXT" ]]; then _pass "text plan is byte-identical across runs"; else
        _fail "text plan is byte-identical across runs" "$(diff <(echo "$t1") <(echo "$t2") | head -20)"
    fi
    if [[ "$j1" == "$j2" && "$j1" == "$PLAN_JSON" ]]; then _pass "JSON plan is byte-identical across runs"; else
        _fail "JSON plan is byte-identical across runs" "$(diff <(echo "$j1") <(echo "$j2") | head -20)"
    fi
}

test_saved_plan() {
    local fleet=$WORK/fleet.yaml planfile=$WORK/saved.plan
    run berth plan -f "$fleet" --out "$planfile"
    assert_exit 0 "plan --out succeeds"
    if [[ -s "$planfile" ]]; then _pass "plan file written"; else _fail "plan file written"; fi

    run berth show "$planfile"
    assert_exit 0 "show succeeds"
    # show may put a header (which file, when) above the plan itself.
    assert_contains "$OUT" "$PLAN_TEXT" "show prints the same text plan"

    run berth show "$planfile" --json
    assert_exit 0 "show --json succeeds"
    assert_eq "$(jq -S . <<<"$PLAN_JSON")" "$(jq -S . <<<"$OUT" 2>&1)" "show --json prints the same JSON plan"

    run berth show "$WORK/no-such.plan"
    assert_exit 1 "show of a missing file exits 1"
}

test_stopped_host() {
    local fleet=$WORK/fleet.yaml
    "$TB_SH" stop-host "$TB_DIR" 2
    run berth plan -f "$fleet" --json
    assert_exit 1 "a stopped host makes plan exit 1"
    assert_jq "$OUT" '.remotes.h2.status' unknown "h2 is unknown while its daemon is down"
    assert_jq "$OUT" '.complete' false "the plan is incomplete"
    assert_jq "$OUT" '[.actions[] | select(.remote == "h2" or (.source // "" | startswith("h2:")))] | length' 0 \
        "no actions touch the unknown host"
    assert_jq "$OUT" '[.actions[] | select(.action == "start" or .action == "update") | .address] | sort | join(",")' \
        "h1:startme,h1:wrongconfig" "h1's actions are still planned"
}

main() {
    tb_start 2
    add_remotes
    setup_hosts
    test_full_plan
    test_prune
    test_exact_fleet
    test_unreachable_third_remote
    test_stable_output
    test_saved_plan
    test_stopped_host
    finish
}

main "$@"
