#!/usr/bin/env bash
# cluster_test.sh — an LXD cluster as one remote: a real 3-member LXD 5.0 cluster on loopback
# (tb.sh start --cluster, members m1..m3), cluster.offline_threshold lowered to 11 s.
#
# In order:
#  - the remote is reached through urls: (the first one answers nothing, the second does) and
#    read as a cluster: its three members, every instance with its member;
#  - target: m2 and target: "@fast" (a cluster group of m3) launch on those members;
#  - placement over prod/* spreads two containers with anti_affinity over the members left;
#  - a changed target: moves a running container between members (with consent), running again;
#  - a container moves from the cluster to a standalone LXD host and back onto a chosen member
#    (the pull migration, as between standalone hosts);
#  - --drain prod/m1 moves the placed container off m1; one pinned there by target: blocks the drain;
#  - a member goes offline: its containers (with a target:, a group, none, placed, undeclared) are
#    placeholders: not planned (the plan incomplete), never changed, moved, deleted by pruning or
#    launched again elsewhere; a new placed container goes to an online member; once the member is
#    back, the plan converges.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE
FLEET=$WORK/fleet.yaml

t0=$(date +%s)
TB_DIR=$(mktemp -d "${BERTH_TB_ROOT:-/tmp}/tb.XXXXXX")
"$TB_SH" start 3 "$TB_DIR" --cluster
"$TB_SH" image "$TB_DIR" 1 # images are the cluster's: one import serves every member
# shellcheck disable=SC1091
source "$TB_DIR/env"
add_secret "$(tb_password 1)"
log "LXD cluster of 3 members in $TB_DIR ready in $(($(date +%s) - t0)) s"
tb_lxc_q config set h1: cluster.offline_threshold 11
tb_lxc_q cluster group create h1:fast
tb_lxc_q cluster group assign h1:m3 default,fast

run berth remote add prod "$TB_HOST1_URL" --password "$(tb_password 1)" --accept-certificate
assert_exit 0 "berth remote add prod (a member's address)"
NOWHERE=$("$TB_SH" unused-addr "$TB_DIR")

# A standalone LXD host beside the cluster, in a test bed of its own (stopped on exit too).
SOLO_DIR=$(mktemp -d "${BERTH_TB_ROOT:-/tmp}/tb.XXXXXX")
trap 'rc=$?; set +e; "$TB_SH" stop "$SOLO_DIR"; (exit $rc); _cleanup' EXIT
"$TB_SH" start 1 "$SOLO_DIR"
SOLO_URL=$(sed -n 's/^export TB_HOST1_URL=//p' "$SOLO_DIR/env")
add_secret "$(cat "$SOLO_DIR/host1.password")"
run berth remote add solo "$SOLO_URL" --password "$(cat "$SOLO_DIR/host1.password")" --accept-certificate
assert_exit 0 "berth remote add solo (a standalone host)"

# fleet BODY: the fleet file with the cluster remote and BODY under containers:.
fleet() {
    cat >"$FLEET" <<EOF
version: 1
prune: true
remotes:
  prod: {urls: ["$NOWHERE", "$TB_HOST1_URL", "$TB_HOST2_URL"]}
  solo: {url: "$SOLO_URL"}
images:
  bb: {remote: prod, alias: bb}
placements:
  web: {candidates: ["prod/*"], strategy: spread, anti_affinity: web}
containers:
$1
EOF
}
# member_of NAME: the member the instance lives on ("absent" when there is none).
member_of() { inst_json h1 "$1" | jq -r '.location // "absent"'; }
# wait_member MEMBER STATUS: until the cluster reports it (at most 60 s).
wait_member() {
    local t
    for ((t = 0; t < 120; t++)); do
        [[ "$(tb_lxc query h1:/1.0/cluster/members/"$1" 2>/dev/null | jq -r .status)" == "$2" ]] && return 0
        sleep 0.5
    done
    return 1
}

log "--- a cluster behind urls:; target: a member and a group"
BASE='  c1: {remote: prod, image: bb, target: m2}
  c2: {remote: prod, image: bb, target: "@fast", state: stopped}'
fleet "$BASE"
run berth plan -f "$FLEET" --json --detailed-exitcode
assert_exit 2 "the first plan has changes"
assert_jq "$OUT" '.remotes.prod.members | to_entries | map("\(.key)=\(.value)") | join(",")' \
    "m1=Online,m2=Online,m3=Online" "read through the second of its urls: a cluster of three online members"
assert_jq "$OUT" '[.actions[] | select(.action == "launch") | "\(.address) \(.spec.member)"] | join(",")' \
    "prod:c1 m2,prod:c2 @fast" "each launch names its member or group"
run berth apply -f "$FLEET" --auto-approve
assert_exit 0 "apply launches c1 and c2"
assert_eq "m2" "$(member_of c1)" "c1 runs on m2 (target: m2)"
assert_eq "m3" "$(member_of c2)" "c2 is on m3, the only member of group fast"
assert_eq "Running" "$(lxc_status h1 c1)" "c1 is running"

log "--- placement over the members"
fleet "$BASE
  w1: {placement: web, image: bb}
  w2: {placement: web, image: bb}"
run berth plan -f "$FLEET" --json
assert_jq "$OUT" '[.placements[] | "\(.container)=\(.member)"] | join(",")' "w1=m1,w2=m2" \
    "spread: w1 on m1 (no containers), w2 on m2 (anti_affinity keeps it off m1; m2 before m3 by name)"
run berth plan -f "$FLEET"
assert_contains "$OUT" "remote prod ($NOWHERE): LXD cluster of 3 members: 2 instances" "the text plan names the cluster"
assert_contains "$OUT" "placement w1 (web): placed on prod/m1: spread, 3 of 3 candidates fit" "and explains w1's member"
run berth apply -f "$FLEET" --auto-approve
assert_exit 0 "apply launches the placed containers"
assert_eq "m1 m2" "$(member_of w1) $(member_of w2)" "w1 runs on m1, w2 on m2"
run berth plan -f "$FLEET" --detailed-exitcode
assert_exit 0 "then nothing changes: each placed container stays on its member"

log "--- a move between members"
MOVED='  c1: {remote: prod, image: bb, target: m3}
  c2: {remote: prod, image: bb, target: "@fast", state: stopped}
  w1: {placement: web, image: bb}
  w2: {placement: web, image: bb}'
fleet "$MOVED"
run berth plan -f "$FLEET"
assert_contains "$OUT" "prod:c1 on m2 -> prod:c1 on m3" "target: m3 plans a move between members"
run berth apply -f "$FLEET" --auto-approve
assert_exit 1 "refused without consent"
assert_eq "m2" "$(member_of c1)" "c1 stays on m2 without consent"
run berth apply -f "$FLEET" --auto-approve --allow-move
assert_exit 0 "apply --allow-move moves it"
assert_eq "m3 Running" "$(member_of c1) $(lxc_status h1 c1)" "c1 is on m3 and running again"
run berth plan -f "$FLEET" --detailed-exitcode
assert_exit 0 "then nothing changes"

log "--- between the cluster and a standalone host"
fleet "$MOVED
  x1: {remote: prod, image: bb, target: m2, state: stopped}"
run berth apply -f "$FLEET" --auto-approve
assert_exit 0 "x1 launched on m2"
tb_lxc_q start h1:x1
tb_lxc_q exec h1:x1 -- sh -c 'echo kept > /root/marker'
tb_lxc_q stop h1:x1 --force
tb_lxc_q snapshot h1:x1 s1
fleet "$MOVED
  x1: {remote: solo, image: bb, state: stopped}"
run berth apply -f "$FLEET" --auto-approve --allow-move
assert_exit 0 "apply moves x1 from the cluster to solo"
assert_eq "absent" "$(member_of x1)" "x1 is gone from the cluster"
SOLO_STATUS=$({ LXD_DIR="$SOLO_DIR/host1" lxc query /1.0/instances/x1 2>/dev/null || echo '{}'; } | jq -r '.status // "absent"')
assert_eq "Stopped" "$SOLO_STATUS" "x1 is on solo"
MOVED="$MOVED
  x1: {remote: prod, image: bb, target: m1, state: running}"
fleet "$MOVED"
run berth plan -f "$FLEET"
assert_contains "$OUT" "solo:x1 -> prod:x1 on m1" "the way back names the member"
run berth apply -f "$FLEET" --auto-approve --allow-move
assert_exit 0 "apply moves x1 back into the cluster"
assert_eq "m1 Running" "$(member_of x1) $(lxc_status h1 x1)" "x1 runs on m1"
assert_eq "kept" "$(tb_lxc exec h1:x1 -- cat /root/marker)" "with its data"
assert_eq "s1" "$(lxc_snaps h1 x1)" "and its snapshot"
run berth plan -f "$FLEET" --detailed-exitcode
assert_exit 0 "then nothing changes"

log "--- draining a member"
DRAIN="$MOVED
  p1: {remote: prod, image: bb, target: m1, state: stopped}"
fleet "$DRAIN"
run berth apply -f "$FLEET" --auto-approve
assert_exit 0 "p1 launched on m1"
run berth plan -f "$FLEET" --drain prod/m1
assert_contains "$OUT" "draining: prod/m1" "the plan says what drains"
assert_contains "$OUT" "prod:w1 on m1 -> prod:w1 on m3" "w1 moves off m1 to m3 (w2 holds m2: anti_affinity)"
assert_contains "$ERR$OUT" "blocks the drain of 'prod/m1'" "p1, pinned to m1 by target:, blocks the drain"
run berth apply -f "$FLEET" --drain prod/m1 --allow-move --auto-approve
assert_exit 0 "apply --drain prod/m1 --allow-move"
assert_eq "m3 Running" "$(member_of w1) $(lxc_status h1 w1)" "w1 runs on m3 now"
assert_eq "m1" "$(member_of p1)" "p1 stays on m1"

log "--- a member offline"
# Two more on m3 before it goes: f1 (declared below without target:, so LXD chose its member as
# far as the file says) and old1 (dropped from the file below: pruning would delete it).
fleet "$DRAIN
  f1: {remote: prod, image: bb, target: m3, state: stopped}
  old1: {remote: prod, image: bb, target: m3, state: stopped}"
run berth apply -f "$FLEET" --auto-approve
assert_exit 0 "f1 and old1 launched on m3"
"$TB_SH" stop-host "$TB_DIR" 3
if wait_member m3 Offline; then _pass "m3 is reported offline"; else _fail "m3 is reported offline" "it never was"; fi
# On m3 now: c1 and f1 (declared, c1 changed), c2 (@fast), w1 (placed), old1 (undeclared and owned).
fleet '  c1: {remote: prod, image: bb, target: m3, config: {user.note: changed}}
  f1: {remote: prod, image: bb, state: stopped, config: {user.note: changed}}
  x1: {remote: prod, image: bb, target: m1}
  c2: {remote: prod, image: bb, target: "@fast", state: stopped}
  w1: {placement: web, image: bb}
  w2: {placement: web, image: bb}
  w3: {placement: web, image: bb, state: stopped}
  p1: {remote: prod, image: bb, target: m1, state: stopped}'
run berth plan -f "$FLEET" --json
assert_exit 1 "the plan is incomplete (exit 1)"
assert_jq "$OUT" '.remotes.prod.members.m3' "Offline" "m3 is Offline in the plan"
assert_jq "$OUT" '.not_planned["prod:c1"] | test("cannot reach")' "true" "c1 (on m3) is not planned: its state is unknown"
assert_jq "$OUT" '.not_planned["prod:c2"] | test("cannot reach")' "true" "c2 (on m3, target @fast) likewise"
assert_jq "$OUT" '.not_planned["prod:f1"] | test("cannot reach")' "true" "f1 (on m3, no target:) likewise"
assert_jq "$OUT" '.not_planned["w1"] | test("lives on prod/m3")' "true" "w1 (placed, on m3) is not placed again"
assert_jq "$OUT" '[.actions[] | select(.address | test("prod:(c1|c2|f1|w1|old1)$"))] | length' "0" \
    "no action touches c1, c2, f1, w1 or old1 (undeclared and owned, but unknown: never pruned)"
assert_jq "$OUT" '[.placements[] | select(.container == "w3") | .member] | join("")' "m1" \
    "w3 is placed on an online member (m1: m2 holds w2), never on m3"
assert_jq "$OUT" '[.actions[] | select(.action == "launch") | .address] | join(",")' "prod:w3" \
    "only w3 is launched: nothing of m3 is launched again elsewhere"
run berth apply -f "$FLEET" --auto-approve
assert_exit 1 "apply does what it can and says the plan was incomplete"
assert_eq "m1" "$(member_of w3)" "w3 was launched on m1"
# The cluster's list (a single instance of an unreachable member cannot be read).
LISTED=$(tb_lxc query "h1:/1.0/instances?recursion=1" | jq -r '[.[] | select(.name | test("^(c1|w1|old1)$")) | "\(.name)@\(.location)"] | sort | join(",")')
assert_eq "c1@m3,old1@m3,w1@m3" "$LISTED" "c1, w1 and old1 are still listed on m3"

log "--- the member is back"
"$TB_SH" start-host "$TB_DIR" 3
if wait_member m3 Online; then _pass "m3 is online again"; else _fail "m3 is online again" "it never was"; fi
# LXD starts again what ran on m3 when it stopped: wait for that rather than race it.
for ((t = 0; t < 60; t++)); do
    [[ "$(lxc_status h1 c1) $(lxc_status h1 w1)" == "Running Running" ]] && break
    sleep 0.5
done
run berth plan -f "$FLEET" --json
assert_jq "$OUT" '[.actions[] | select(.action == "update" or .action == "delete") | "\(.action) \(.address)"] | sort | join(",")' \
    "delete prod:old1,update prod:c1,update prod:f1" "now c1's and f1's changes and old1's pruning are planned"
assert_jq "$OUT" '[.placements[] | select(.container == "w1") | .explanation] | join("")' \
    "stays on prod/m3: it still satisfies placement web" "w1 stays on m3"
run berth apply -f "$FLEET" --auto-approve
assert_exit 0 "and applied"
assert_eq "changed changed absent" "$(lxc_config h1 c1 user.note) $(lxc_config h1 f1 user.note) $(lxc_status h1 old1)" \
    "c1 and f1 changed, old1 pruned"

finish
