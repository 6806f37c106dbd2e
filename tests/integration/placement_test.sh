#!/usr/bin/env bash
# placement_test.sh — placement policies on three real LXD hosts.
#
# The hosts declare different capacities (they are the same machine), zone labels and no
# containers of their own. In order:
#  - spread and pack place the same two containers differently, and a file with every key in
#    another order plans byte for byte the same;
#  - spread with anti_affinity puts web1 and web2 on the two hosts without containers, beside a
#    pinned container; a third fits only the last host, and a fourth nowhere (not placed, no
#    action, exit 1, each host's reason named);
#  - a fit on limits.memory: an undeclared container on h2 takes its room, so nothing fits and
#    the plan says why for each candidate; once it is gone the container goes to h2, and h3 is
#    still named as too small;
#  - stickiness: a policy change that still allows each host moves nothing;
#  - a drain (--drain, then drain: true in the file): refused without consent, moved with it,
#    restored to running; the pinned container is named as blocking the drain;
#  - a candidate that is down: a container not found anywhere readable is not placed, never
#    launched elsewhere.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE
FLEET=$WORK/fleet.yaml

# remotes DRAIN_H1: the remotes: block (h1 with drain: true when DRAIN_H1 is "true").
remotes() {
    cat <<EOF
remotes:
  h1: {url: "${TB_HOST1_URL}", labels: {zone: east}, capacity: {cpu: 4, memory: 1GiB}, drain: ${1:-false}}
  h2: {url: "${TB_HOST2_URL}", labels: {zone: east}, capacity: {cpu: 4, memory: 512MiB}}
  h3: {url: "${TB_HOST3_URL}", labels: {zone: west}, capacity: {cpu: 2, memory: 256MiB}}
EOF
}

# placement_of JSON CONTAINER: "remote" of its placement ("" when not placed).
placement_of() { jq -r --arg c "$2" '.placements[] | select(.container == $c) | .remote' <<<"$1"; }
explanation_of() { jq -r --arg c "$2" '.placements[] | select(.container == $c) | .explanation' <<<"$1"; }
rejected_of() { jq -r --arg c "$2" '.placements[] | select(.container == $c) | .rejected | join("; ")' <<<"$1"; }
host_of() {
    local h
    for h in h1 h2 h3; do
        [[ "$(lxc_status "$h" "$1")" != absent ]] && printf '%s' "$h"
    done
    printf '\n'
}

test_spread_pack_and_key_order() {
    log "spread and pack; the file's key order"
    local spread=$WORK/spread.yaml pack=$WORK/pack.yaml shuffled=$WORK/shuffled.yaml text
    {
        echo "version: 1"
        remotes
        cat <<'EOF'
images:
  bb: {remote: h1, alias: bb}
placements:
  two: {candidates: [h1, h2, h3], strategy: spread}
containers:
  s1: {placement: two, image: bb}
  s2: {placement: two, image: bb}
EOF
    } >"$spread"
    sed 's/strategy: spread/strategy: pack/' "$spread" >"$pack"
    run berth plan -f "$spread" --json
    assert_exit 0 "spread: plan succeeds"
    assert_eq "h1 h2" "$(placement_of "$OUT" s1) $(placement_of "$OUT" s2)" "spread puts s1 on h1 and s2 on h2"
    assert_contains "$(explanation_of "$OUT" s2)" "spread, 3 of 3 candidates fit, fewest containers (0)" \
        "the explanation says how s2 was placed"
    run berth plan -f "$pack" --json
    assert_exit 0 "pack: plan succeeds"
    assert_eq "h1 h1" "$(placement_of "$OUT" s1) $(placement_of "$OUT" s2)" "pack puts both on h1"
    assert_contains "$(explanation_of "$OUT" s2)" "pack, 3 of 3 candidates fit, most containers (1)" \
        "the explanation says pack chose the fullest"

    # The same fleet with every map's keys in another order.
    cat >"$shuffled" <<EOF
containers:
  s2: {image: bb, placement: two}
  s1: {image: bb, placement: two}
placements:
  two: {strategy: spread, candidates: [h3, h1, h2]}
images:
  bb: {alias: bb, remote: h1}
remotes:
  h3: {capacity: {memory: 256MiB, cpu: 2}, labels: {zone: west}, url: "${TB_HOST3_URL}"}
  h2: {capacity: {memory: 512MiB, cpu: 4}, url: "${TB_HOST2_URL}", labels: {zone: east}}
  h1: {drain: false, capacity: {memory: 1GiB, cpu: 4}, labels: {zone: east}, url: "${TB_HOST1_URL}"}
version: 1
EOF
    run berth plan -f "$spread"
    text=$OUT
    run berth plan -f "$shuffled"
    assert_exit 0 "the shuffled file plans"
    assert_eq "$text" "$OUT" "the shuffled file's plan is byte for byte the same"
}

# write_fleet [EXTRA_CONTAINERS] [DRAIN_H1] [WEB_POLICY]
write_fleet() {
    {
        echo "version: 1"
        remotes "${2:-false}"
        cat <<EOF
images:
  bb: {remote: h1, alias: bb}
placements:
  web: ${3:-"{candidates: [h1, h2, h3], strategy: spread, anti_affinity: web}"}
containers:
  pinned: {remote: h1, image: bb, state: stopped}
  web1: {placement: web, image: bb}
  web2: {placement: web, image: bb}
EOF
        if [[ -n "${1:-}" ]]; then printf '%s\n' "$1"; fi
    } >"$FLEET"
}

test_spread_anti_affinity() {
    log "spread with anti_affinity, applied"
    write_fleet
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "apply places and launches web1 and web2"
    assert_eq h1 "$(host_of pinned)" "pinned is on h1"
    assert_eq h2 "$(host_of web1)" "web1 is on h2 (h1 holds pinned: spread)"
    assert_eq h3 "$(host_of web2)" "web2 is on h3 (h2 holds web1: anti_affinity)"
    assert_eq Running "$(lxc_status h3 web2)" "web2 runs"

    write_fleet "  web3: {placement: web, image: bb}
  web4: {placement: web, image: bb}"
    run berth plan -f "$FLEET" --json
    assert_exit 1 "a container placed nowhere makes the plan exit 1"
    assert_eq h1 "$(placement_of "$OUT" web3)" "web3 fits only h1"
    assert_eq "" "$(placement_of "$OUT" web4)" "web4 is not placed"
    assert_eq "h1: holds web3 (anti_affinity web); h2: holds web1 (anti_affinity web); h3: holds web2 (anti_affinity web)" \
        "$(rejected_of "$OUT" web4)" "each host's reason is named"
    assert_jq "$OUT" '[.actions[] | select(.container == "web4")] | length' 0 "web4 gets no action"
    assert_jq "$OUT" '.not_planned | keys | join(",")' web4 "web4 is not planned"
    assert_jq "$OUT" '.complete' false "the plan is incomplete"
    assert_jq "$OUT" '[.actions[] | select(.container == "web3") | .action] | join(",")' launch "web3 is launched"
}

test_fit() {
    log "a fit on limits.memory"
    # Undeclared, with no berth marks: placement counts its limit all the same.
    tb_container h2 squatter stopped -c limits.memory=256MiB
    local big="  big: {placement: {candidates: [h2, h3]}, image: bb, state: stopped, config: {limits.memory: 384MiB}}"
    write_fleet "$big"
    run berth plan -f "$FLEET" --json
    assert_exit 1 "nothing fits: exit 1"
    assert_eq "" "$(placement_of "$OUT" big)" "big is not placed"
    assert_eq "h2: limits.memory 384MiB does not fit: 256MiB of 512MiB free; h3: limits.memory 384MiB does not fit: 256MiB of 256MiB free" \
        "$(rejected_of "$OUT" big)" "the plan names the failed fit on each host"
    assert_jq "$OUT" '[.actions[] | select(.container == "big")] | length' 0 "big gets no action"
    run berth plan -f "$FLEET"
    assert_contains "$OUT" "big not planned: not placed: no candidate of its placement fits" "the text plan says so"

    tb_lxc_q delete h2:squatter
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "apply places big once h2 has room"
    assert_eq h2 "$(host_of big)" "big is on h2"
    assert_eq 384MiB "$(lxc_config h2 big limits.memory)" "big has its limit"
    run berth plan -f "$FLEET" --json
    assert_contains "$(explanation_of "$OUT" big)" "stays on h2" "big stays on h2"
}

test_sticky() {
    log "stickiness after a policy change that still allows each host"
    write_fleet "  big: {placement: {candidates: [h3, h2]}, image: bb, state: stopped, config: {limits.memory: 384MiB}}" \
        false "{candidates: {labels: {zone: east}}, strategy: pack, anti_affinity: web}"
    # web2 lives on h3 (zone west): that host no longer satisfies the policy, so only web2 moves.
    run berth plan -f "$FLEET" --json
    assert_exit 0 "the plan succeeds"
    assert_eq "move h1:web2, stop h3:web2" "$(jq -r '[.actions[] | "\(.action) \(.remote):\(.container)"] | sort | join(", ")' <<<"$OUT" | sed 's/, start h1:web2//')" \
        "only web2 moves: h3 is no longer a candidate"
    assert_contains "$(explanation_of "$OUT" web2)" "moves off h3 (not a candidate); placed on h1: pack, 1 of 2 candidates fit" "the plan says why web2 moves"
    assert_contains "$(explanation_of "$OUT" web1)" "stays on h2" "web1 stays on h2"

    write_fleet "  big: {placement: {candidates: [h3, h2]}, image: bb, state: stopped, config: {limits.memory: 384MiB}}" \
        false "{candidates: [h3, h2, h1], strategy: pack, anti_affinity: web}"
    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "a policy change that still allows every host plans nothing (pack, reordered candidates)"
    assert_contains "$OUT" "placement web2 (web): stays on h3" "the text plan says web2 stays"
}

test_drain() {
    log "drain"
    write_fleet "  big: {placement: {candidates: [h2, h3]}, image: bb, state: stopped, config: {limits.memory: 384MiB}}"
    run berth plan -f "$FLEET" --drain h3 --json
    assert_exit 0 "plan --drain h3"
    assert_eq h1 "$(placement_of "$OUT" web2)" "web2 goes to h1 (h2 holds web1)"
    assert_contains "$(explanation_of "$OUT" web2)" "moves off h3 (draining); placed on h1: spread, 1 of 3 candidates fit" "the plan says h3 drains"
    assert_jq "$OUT" '.drain | join(",")' h3 "the plan names the drained remote"

    run berth_t apply -f "$FLEET" --drain h3 --auto-approve
    check_hung apply
    assert_exit 1 "without consent the drain's move is refused"
    assert_eq h3 "$(host_of web2)" "web2 is still on h3"

    run berth_t apply -f "$FLEET" --drain h3 --allow-move --auto-approve
    check_hung apply
    assert_exit 0 "with --allow-move the drain moves web2"
    assert_eq h1 "$(host_of web2)" "web2 is on h1"
    assert_eq Running "$(lxc_status h1 web2)" "web2 runs again after its move"
    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "without --drain nothing moves back (sticky)"

    # drain: true in the file: pinned blocks it, web2 goes to the only host left.
    write_fleet "  big: {placement: {candidates: [h2, h3]}, image: bb, state: stopped, config: {limits.memory: 384MiB}}" true
    run berth plan -f "$FLEET" --json
    assert_exit 0 "plan with drain: true on h1"
    assert_eq h3 "$(placement_of "$OUT" web2)" "web2 would go back to h3"
    assert_jq "$OUT" '[.diagnostics[] | select(.summary | contains("blocks the drain of '"'"'h1'"'"'")) | .path] | join(",")' \
        "h1:pinned" "pinned is named as blocking the drain"
    assert_jq "$OUT" '[.diagnostics[] | select(.severity == "error")] | length' 0 "blocking is a warning, not an error"
}

test_candidate_down() {
    log "a candidate that is down"
    write_fleet "  fresh: {placement: web, image: bb}"
    "$TB_SH" stop-host "$TB_DIR" 3
    run berth plan -f "$FLEET" --json
    assert_exit 1 "a down candidate makes the plan exit 1"
    assert_jq "$OUT" '.remotes.h3.status' unknown "h3 is unknown"
    assert_eq "" "$(placement_of "$OUT" fresh)" "fresh is not placed"
    assert_contains "$(explanation_of "$OUT" fresh)" "remote h3 is unknown: it may live there" "the plan says why"
    assert_jq "$OUT" '[.actions[] | select(.container == "fresh")] | length' 0 "fresh is not launched anywhere"
    assert_contains "$(explanation_of "$OUT" web1)" "stays on h2" "web1 stays where it is"
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_eq "" "$(lxc_names h1 fresh)$(lxc_names h2 fresh)" "the apply launched fresh nowhere"
}

main() {
    tb_start 3
    add_remotes
    run berth remote add h3 "$TB_HOST3_URL" --password "$(tb_password 3)" --accept-certificate
    ((RC == 0)) || bail "berth remote add h3" "$(_last_output)"
    test_spread_pack_and_key_order
    test_spread_anti_affinity
    test_fit
    test_sticky
    test_drain
    test_candidate_down
    finish
}

main "$@"
