#!/usr/bin/env bash
# The LXD executor against two real LXD hosts, through `berth apply`: launches (same host and
# pulling the image from the other host), a same-host copy, a cross-host copy of a snapshot, an
# offline move with snapshots whose rootfs marker survives (and back), and deletion. ~1 minute.
source "$(dirname "$0")/lib.sh"
tb_start 2
berth remote add h1 "$TB_HOST1_URL" --password "$(tb_password 1)" --accept-certificate >/dev/null
berth remote add h2 "$TB_HOST2_URL" --password "$(tb_password 2)" --accept-certificate >/dev/null
STATE="$WORK/state.db"

fleet() {  # fleet MOVER_REMOTE [ABSENT]
    cat >"$WORK/fleet.yaml" <<YAML
version: 1
name: smoke
remotes:
  h1: {url: $TB_HOST1_URL}
  h2: {url: $TB_HOST2_URL}
images:
  bb: {remote: h1, alias: bb}
containers:
  web: {remote: h1, image: bb, config: {user.role: web}, snapshots: [base]}
  far: {remote: h2, image: bb, state: frozen}
  web-clone: {remote: h1, copy_of: web, state: stopped}
  replica: {remote: h2, copy_of: web/base, state: stopped}
  mover: {remote: $1, image: bb, state: ${2:-stopped}, snapshots: [s1, s2], move: allowed}
YAML
}
# state_of REMOTE NAME: RUNNING, STOPPED, FROZEN, or empty if there is none (exact name).
state_of() { tb_lxc list "$1:" -c ns --format csv | awk -F, -v n="$2" '$1 == n {print $2}'; }
apply() { run berth apply -f "$WORK/fleet.yaml" --auto-approve --state "$STATE"; }

fleet h1
apply
assert_exit 0 "first apply succeeds"
assert_eq "RUNNING" "$(state_of h1 web)" "web launched and running on h1"
assert_eq "FROZEN" "$(state_of h2 far)" "far launched on h2 from h1's image, frozen"
assert_eq "smoke" "$(tb_lxc config get h2:far user.berth.fleet)" "far carries the ownership mark"
assert_eq "web" "$(tb_lxc config get h1:web-clone user.role)" "the same-host copy has web's config"
assert_eq "STOPPED" "$(state_of h2 replica)" "the snapshot was copied across hosts"
assert_eq "" "$(tb_lxc config get h2:replica user.berth.incomplete)" "the copy is not left marked incomplete"
run berth plan -f "$WORK/fleet.yaml" --detailed-exitcode
assert_exit 0 "nothing left to do"

marker="marker-$RANDOM-$RANDOM"
echo "$marker" >"$(rootfs 1 mover)/root/marker"
fleet h2
apply
assert_exit 0 "the move applies"
assert_eq "$marker" "$(cat "$(rootfs 2 mover)/root/marker")" \
    "the marker file came along"
assert_eq "2" "$(tb_lxc list h2: -c nS --format csv | awk -F, '$1 == "mover" {print $2}')" "the snapshots came along"
assert_eq "" "$(state_of h1 mover)" "the source is gone"
fleet h1
apply
assert_exit 0 "the move back applies"
assert_eq "$marker" "$(cat "$(rootfs 1 mover)/root/marker")" \
    "the marker survived the way back"

fleet h1 absent
apply
assert_exit 0 "delete applies"
assert_eq "" "$(state_of h1 mover)" "mover deleted"
run berth plan -f "$WORK/fleet.yaml" --detailed-exitcode
assert_exit 0 "nothing left to do at the end"
finish
