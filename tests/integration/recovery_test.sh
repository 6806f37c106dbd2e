#!/usr/bin/env bash
# recovery_test.sh — `berth apply` killed (SIGKILL) at every inner step of a
# cross-host move and of a cross-host copy, on two real LXD hosts, then:
#   (a) apply again;
#   (b) start the source by hand first (and write new data into it), then
#       apply again.
# In every case nothing is lost (the newest marker file and the snapshot are
# there), no instance is duplicated, the run converges (the next plan is empty)
# and no journal intent stays open. Recovery never stops or deletes a running
# source. Also: a recovery action is shown in the plan before anything is
# done, and declining the confirmation leaves the hosts untouched; an intent
# recovery cannot settle (its remote gone from the file) is reported, never
# blocks other containers, and `berth state drop-intent` clears it.
#
# The kill comes from berth's test-only hook BERTH_TEST_KILL_AT_STEP=STEP@TEXT:
# berth kills itself right after the journal intent of STEP (of an action whose
# id contains TEXT) is written, before the call it announces.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE

# The journal steps of the executor's cross-remote transfers (providers/lxd/executor.hpp).
readonly MOVE_STEPS=(transfer migrate-source migrate verify unmark delete-source)
readonly COPY_STEPS=(transfer migrate-source migrate unmark)

# fleet FILE BODY: both remotes, image bb on h1, then the containers in BODY.
fleet() {
    tb_fleet_header "$1"
    cat >>"$1" <<EOF
containers:
$2
EOF
}

open_intents() { berth state intents --json --state "$STATE" | jq -r 'length'; }

# kill_at STEP TEXT FLEET: apply, killed by the hook at STEP of the action matching TEXT.
kill_at() {
    RC=0
    # In a subshell whose stderr is dropped: bash reports the killed child there ("Killed").
    (BERTH_TEST_KILL_AT_STEP="$1@$2" timeout -k 10 180 "$BERTH_BIN" --config-dir "$BERTH_CFG" --no-color \
        apply -f "$3" --auto-approve --state "$STATE" >"$WORK/killed.out" 2>&1 </dev/null) 2>/dev/null || RC=$?
}

# converged NAME REMOTE OTHER MARKER SNAPS WHAT: after a re-run, NAME exists exactly once, on REMOTE,
# with MARKER in /root/marker and snapshots SNAPS; nothing left open or marked.
converged() {
    local name=$1 remote=$2 other=$3 marker=$4 snaps=$5 what=$6 idx=${2#h}
    assert_eq "$name" "$(lxc_names "$remote" "$name")" "$what: $name is on $remote"
    assert_eq "" "$(lxc_names "$other" "$name")" "$what: and not on $other"
    assert_eq "$marker" "$(cat "$(rootfs "$idx" "$name")/root/marker" 2>/dev/null || echo '<missing>')" \
        "$what: its newest data is there"
    assert_eq "$snaps" "$(lxc_snaps "$remote" "$name")" "$what: its snapshots are there"
    assert_jq "$(inst_json "$remote" "$name")" \
        '[.config | keys[] | select(startswith("user.berth.") and . != "user.berth.fleet" and . != "user.berth.managed")] | join(",")' "" \
        "$what: no berth marks left on it"
    assert_eq 0 "$(open_intents)" "$what: no journal intent left open"
    run berth plan -f "$FLEET" --detailed-exitcode --state "$STATE"
    assert_exit 0 "$what: the next plan is empty"
}

# ---------------------------------------------------------------- moves

# move_case STEP MODE: mode a (re-run) or b (start the source by hand and change it, then re-run).
move_case() {
    local step=$1 mode=$2 name what
    name="mv-${step}-$mode"
    what="move killed at $step ($mode)"
    FLEET=$WORK/$name.yaml
    fleet "$FLEET" "  $name: {remote: h1, image: bb, state: stopped, snapshots: [s0], move: allowed}"
    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
    check_hung apply
    ((RC == 0)) || bail "$what: setup" "$(_last_output)"
    mkdir -p "$(rootfs 1 "$name")/root"
    echo first >"$(rootfs 1 "$name")/root/marker"

    sed -i "s/$name: {remote: h1/$name: {remote: h2/" "$FLEET"
    kill_at "$step" "move h2:$name" "$FLEET"
    assert_eq 137 "$RC" "$what: berth was killed at that step"
    local marker=first
    if [[ "$mode" == b && -n "$(lxc_names h1 "$name")" ]]; then
        tb_lxc_q start "h1:$name"
        echo second >"$(rootfs 1 "$name")/root/marker"
        marker=second
    fi

    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
    check_hung apply
    assert_exit 0 "$what: the next apply converges"
    # Once the data provably arrived, an untouched source means the move is finished, not redone;
    # a source started since means the copy made from it is undone and the move redone.
    case "$step/$mode" in
        verify/a | unmark/a | delete-source/a)
            assert_contains "$OUT" "> finish_transfer h1:$name -> h2:$name" "$what: the move is finished"
            assert_not_contains "$OUT" "undo_transfer" "$what: nothing is undone" ;;
        verify/b | unmark/b | delete-source/b)
            assert_contains "$OUT" "undo_transfer h1:$name -> h2:$name" "$what: the stale target is undone" ;;
        *) assert_not_contains "$OUT" "_transfer" "$what: nothing to finish or undo: the move is planned again" ;;
    esac
    converged "$name" h2 h1 "$marker" s0 "$what"
    if [[ "$mode" == b && "$marker" == second ]]; then
        assert_eq Stopped "$(lxc_status h2 "$name")" "$what: stopped as declared (berth stopped the started source only through the plan)"
    fi
    tb_lxc_q delete --force "h2:$name"
}

# ---------------------------------------------------------------- copies

copy_case() {
    local step=$1 mode=$2 src name what
    src="cs-${step}-$mode"
    name="cp-${step}-$mode"
    what="copy killed at $step ($mode)"
    FLEET=$WORK/$name.yaml
    fleet "$FLEET" "  $src: {remote: h1, image: bb, state: stopped}"
    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
    check_hung apply
    ((RC == 0)) || bail "$what: setup" "$(_last_output)"
    mkdir -p "$(rootfs 1 "$src")/root"
    echo original >"$(rootfs 1 "$src")/root/marker"

    echo "  $name: {remote: h2, copy_of: $src, state: stopped}" >>"$FLEET"
    kill_at "$step" "copy h2:$name" "$FLEET"
    assert_eq 137 "$RC" "$what: berth was killed at that step"
    if [[ "$mode" == b ]]; then
        tb_lxc_q start "h1:$src"
        # The declared state of the source is now running, so that the plan leaves it running.
        sed -i "s/$src: {remote: h1, image: bb, state: stopped}/$src: {remote: h1, image: bb, state: running}/" "$FLEET"
    fi

    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
    check_hung apply
    assert_exit 0 "$what: the next apply converges"
    if [[ "$step" == unmark ]]; then
        assert_contains "$OUT" "> finish_transfer h1:$src -> h2:$name" "$what: the whole copy is marked complete, not redone"
    fi
    # The copy holds the source's data (as of the copy), exactly once; the source is untouched.
    converged "$name" h2 h1 original "" "$what"
    assert_eq "$src" "$(lxc_names h1 "$src")" "$what: the source is still on h1"
    assert_eq original "$(cat "$(rootfs 1 "$src")/root/marker")" "$what: the source's data is untouched"
    if [[ "$mode" == b ]]; then
        assert_eq Running "$(lxc_status h1 "$src")" "$what: the source started by hand still runs"
    fi
    tb_lxc_q delete --force "h2:$name" "h1:$src"
}

# ---------------------------------------------------------------- shown and confirmed first

test_recovery_is_planned_and_confirmed() {
    local name=mv-confirm
    FLEET=$WORK/$name.yaml
    fleet "$FLEET" "  $name: {remote: h1, image: bb, state: stopped, move: allowed}"
    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
    ((RC == 0)) || bail "confirm: setup" "$(_last_output)"
    sed -i "s/$name: {remote: h1/$name: {remote: h2/" "$FLEET"
    kill_at unmark "move h2:$name" "$FLEET"
    assert_eq 137 "$RC" "confirm: killed before the unmark"

    run berth plan -f "$FLEET" --json --state "$STATE"
    assert_jq "$OUT" '[.actions[] | select(.recovery) | .id] | join(",")' "finish_transfer h2:$name" \
        "berth plan shows the recovery action"
    assert_jq "$OUT" '.actions[0].disruption' move "the recovery action says how disruptive it is"
    assert_jq "$OUT" '.actions[0].recovery.found | test("arrived")' true "it says what was found"

    # Declined (no terminal, no --auto-approve): nothing changes on either host.
    run berth_t apply -f "$FLEET" --state "$STATE"
    assert_exit 1 "apply without confirmation refuses"
    assert_contains "$OUT" "finish_transfer h1:$name -> h2:$name" "the refused apply showed the recovery action first"
    assert_eq "$name" "$(lxc_names h1 "$name")" "the source was not deleted before confirmation"
    assert_jq "$(inst_json h2 "$name")" '.config | has("user.berth.incomplete")' true \
        "the target was not unmarked before confirmation"
    assert_eq 2 "$(open_intents)" "the intents are still open"

    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
    assert_exit 0 "confirmed, the recovery runs"
    assert_eq "" "$(lxc_names h1 "$name")" "the verified move's stopped source is deleted"
    assert_eq "$name" "$(lxc_names h2 "$name")" "the target stays"
    assert_eq 0 "$(open_intents)" "the intents are closed"
    tb_lxc_q delete --force "h2:$name"
}

# ---------------------------------------------------------------- held, then dropped

test_unsettled_intent_is_held_and_dropped() {
    local name=mv-held fleet2
    FLEET=$WORK/$name.yaml
    fleet "$FLEET" "  $name: {remote: h1, image: bb, state: stopped, move: allowed}"
    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
    ((RC == 0)) || bail "held: setup" "$(_last_output)"
    sed -i "s/$name: {remote: h1/$name: {remote: h2/" "$FLEET"
    kill_at verify "move h2:$name" "$FLEET"
    assert_eq 137 "$RC" "held: killed before the verify"

    # A fleet file without h2 cannot settle the move: it is reported, other containers still apply.
    fleet2=$WORK/held-other.yaml
    cat >"$fleet2" <<EOF
version: 1
remotes:
  h1: {url: "${TB_HOST1_URL}"}
images:
  bb: {remote: h1, alias: bb}
containers:
  $name: {remote: h1, image: bb, state: stopped}
  other-held: {remote: h1, image: bb, state: stopped}
EOF
    run berth_t apply -f "$fleet2" --auto-approve --state "$STATE"
    assert_exit 0 "an unsettled intent does not block the apply"
    assert_contains "$OUT" "drop-intent" "the plan says how to clear it"
    assert_eq other-held "$(lxc_names h1 other-held)" "another container was applied"
    assert_eq "$name" "$(lxc_names h1 "$name")" "the source of the unsettled move is untouched"
    assert_eq "$name" "$(lxc_names h2 "$name")" "its target too"
    run berth state intents --state "$STATE"
    assert_contains "$OUT" "move h2:$name" "berth state intents lists it"
    local id
    id=$(berth state intents --json --state "$STATE" | jq -r '.[0].id')
    run berth state drop-intent "$id" --state "$STATE"
    assert_exit 1 "drop-intent without a terminal or --auto-approve refuses"
    run berth state drop-intent "$id" --state "$STATE" --auto-approve
    assert_exit 0 "drop-intent --auto-approve drops it"
    run berth state drop-intent 999999 --state "$STATE" --auto-approve
    assert_exit 1 "dropping an unknown intent fails"
    # The other open intent (the verify step, inside the dropped umbrella transfer) is settled once h2
    # is back in the file.
    run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
    assert_exit 0 "with h2 back in the file, apply converges"
    converged "$name" h2 h1 "<missing>" "" "held then settled"
    tb_lxc_q delete --force "h2:$name" "h1:other-held"
}

tb_start 2
add_remotes
test_recovery_is_planned_and_confirmed
test_unsettled_intent_is_held_and_dropped
for step in "${MOVE_STEPS[@]}"; do
    move_case "$step" a
    move_case "$step" b
done
for step in "${COPY_STEPS[@]}"; do
    copy_case "$step" a
    copy_case "$step" b
done
finish
