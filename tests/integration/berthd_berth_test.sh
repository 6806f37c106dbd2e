#!/usr/bin/env bash
# berthd_berth_test.sh — berth plan and apply against a berthd host (no LXD), the cases that stay on
# one host: launch with config and snapshots, stopped and frozen containers, copies of a container
# and of a snapshot on the same host, an empty plan after apply, drift (config and power) planned
# exactly and corrected, a removed key unset, adoption of a hand-made container carrying berth's
# marks, and destroy, which leaves a hand-made container alone. Effects are checked with the stock
# lxc client and liblxc.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSWORD="pw-$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
chmod 711 "$WORK" # containers' mapped root must reach their rootfs
DIR=$WORK/berthd
BERTHD_PORT=$(free_port)
export BERTHD_PORT
berthd_start "$DIR" "$PASSWORD"
LXCPATH=$DIR/containers
export LXD_CONF=$WORK/lxc
mkdir -p "$LXD_CONF"
STATE=$WORK/state.db
export BERTH_STATE=$STATE
FLEET=$WORK/fleet.yaml
# Then lib.sh's own clean-up (berthd stopped, the work dir removed), with the test's exit status.
trap 'rc=$?; set +e; kill_containers "$LXCPATH"; (exit $rc); _cleanup' EXIT
state_of() { lxc-info -P "$LXCPATH" -n "$1" -sH 2>/dev/null || echo MISSING; }

# The busybox image, imported with the stock client.
bb_image "$WORK/bb.tar.gz"
tb_lxc_q remote add b1 "$BERTHD_URL" --accept-certificate --password "$PASSWORD"
tb_lxc_q image import "$WORK/bb.tar.gz" b1: --alias bb

run berth remote add b1 "$BERTHD_URL" --password "$PASSWORD" --accept-certificate
assert_exit 0 "berth remote add of a berthd host"

write_fleet() {
    cat >"$FLEET" <<EOF
version: 1
remotes:
  b1: {url: "$BERTHD_URL"}
images:
  bb: {remote: b1, alias: bb}
containers:
  web:
    remote: b1
    image: bb
    config:
      limits.memory: 64MiB
      user.role: frontend
      ${EXTRA_KEY:-user.extra: "yes"}
    snapshots: [s1, s2]
  batch: {remote: b1, image: bb, state: stopped, config: {user.role: batch}}
  cold: {remote: b1, image: bb, state: frozen}
  web-clone: {remote: b1, copy_of: web, state: stopped}
  replica: {remote: b1, copy_of: web/s1}
${ADOPT:-}
EOF
}

# --- apply a fleet on berthd
write_fleet
tb_container b1 stranger stopped
run berth plan -f "$FLEET" --json
assert_exit 0 "plan against berthd"
assert_jq "$OUT" "$ACTION_SET" \
    "copy b1:replica, copy b1:web-clone, launch b1:batch, launch b1:cold, launch b1:web, snapshot b1:web/s1, snapshot b1:web/s2" \
    "the plan launches, copies and snapshots"
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "apply against berthd"
run berth plan -f "$FLEET" --detailed-exitcode
assert_exit 0 "the plan is empty after apply"
for expect in web:RUNNING batch:STOPPED cold:FROZEN web-clone:STOPPED replica:RUNNING stranger:STOPPED; do
    assert_eq "${expect#*:}" "$(state_of "${expect%%:*}")" "liblxc: ${expect%%:*} is ${expect#*:}"
done
assert_eq 64MiB "$(lxc_config b1 web limits.memory)" "web's limits.memory"
assert_eq frontend "$(lxc_config b1 web-clone user.role)" "the same-host copy has web's config"
assert_eq frontend "$(lxc_config b1 replica user.role)" "the snapshot copy has web's config"
assert_eq "s1,s2" "$(lxc_snaps b1 web)" "web has snapshots s1, s2"
assert_eq default "$(lxc_config b1 web user.berth.fleet)" "web is owned by the fleet"

# --- drift, planned exactly and corrected
tb_lxc_q config set b1:web user.role drifted
tb_lxc_q stop b1:replica --force
run berth plan -f "$FLEET" --json
assert_jq "$OUT" "$ACTION_SET" "start b1:replica, update b1:web" "the plan shows exactly the two drifts"
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "apply corrects the drift"
assert_eq frontend "$(lxc_config b1 web user.role)" "web's user.role is back"
assert_eq RUNNING "$(state_of replica)" "replica runs again"

# --- a key removed from the file is unset
EXTRA_KEY="user.other: x"
write_fleet
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "apply after removing a key"
assert_eq "<unset>" "$(lxc_config b1 web user.extra)" "the removed key is unset on berthd"
assert_eq x "$(lxc_config b1 web user.other)" "the new key is set"

# --- adoption: a hand-made container with berth's marks is taken over, not launched again
berth_marks user.role
tb_container b1 found running "${BERTH_MARKS[@]}" -c user.role=old
ADOPT="  found: {remote: b1, image: bb, config: {user.role: adopted}}"
write_fleet
run berth plan -f "$FLEET" --json
assert_jq "$OUT" "$ACTION_SET" "update b1:found" "the marked container is updated, not launched"
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "apply adopts it"
assert_eq adopted "$(lxc_config b1 found user.role)" "its config is the file's"

# --- destroy removes what the fleet owns and leaves the stranger
run berth_t destroy -f "$FLEET" --auto-approve --state "$STATE"
check_hung destroy
assert_exit 0 "destroy against berthd"
assert_eq stranger "$(lxc_names b1)" "only the hand-made container is left"
assert_eq 1 "$(lxc-ls -P "$LXCPATH" | wc -w)" "liblxc has one container left"

finish
