#!/usr/bin/env bash
# project_test.sh — containers in an LXD project, on two real hosts.
#
# Project p is made by hand on both hosts (sharing the default project's
# images and profiles). berth launches containers in it (by `project:` on a
# container, and by `project:` on remote h2), and the stock client finds them
# in p and not in default, where a hand-made container of the same name stays
# untouched. Plans print `h1:p/web` addresses and a second plan is empty.
# Description and ephemeral drift is planned and put right; so is a change of
# them in the file. --target takes the project form; a saved plan with
# project addresses applies. A move between the hosts keeps the project; an
# ephemeral container is not moved. A project that does not exist is an error
# naming it and the remote; an image alias is checked in a project that has its
# own images. Destroy deletes only the fleet's containers.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE
FLEET=$WORK/fleet.yaml

# In project P, through the stock client.
pj() { tb_lxc query "$1:/1.0/instances/$2?project=$3" 2>/dev/null || echo '{}'; }
p_status() { pj "$1" "$2" "$3" | jq -r '.status // "absent"'; }
# names_in REMOTE PROJECT: the instance names in that project, sorted, comma-joined.
names_in() {
    tb_lxc query "$1:/1.0/instances?project=$2" | jq -r '[.[] | split("?")[0] | split("/") | last] | sort | join(",")'
}

# write_fleet WEB_REMOTE DESCRIPTION EPHEMERAL [EPH_REMOTE]
write_fleet() {
    REMOTE2_EXTRA=", project: p" tb_fleet_header "$FLEET"
    cat >>"$FLEET" <<EOF
containers:
  web:
    remote: $1
    project: p
    image: bb
    description: "$2"
    move: allowed
    files:
      /etc/tenant: {content: "p\n"}
    exec:
      hello: {command: [sh, -c, "cat /etc/tenant > /root/hello"], when: create}
  eph:
    remote: ${4:-h1}
    project: p
    image: bb
    ephemeral: $3
    move: allowed
  api: {remote: h2, image: bb}
  plain: {remote: h1, image: bb, state: stopped}
EOF
}

tb_start 2
add_remotes

# A project that does not exist: an error naming it and the remote, nothing changed.
tb_fleet_header "$FLEET"
cat >>"$FLEET" <<EOF
containers:
  web: {remote: h1, project: nope, image: bb}
EOF
run berth plan -f "$FLEET"
assert_exit 1 "a plan with a missing project is incomplete"
assert_contains "$OUT$ERR" "project 'nope' does not exist" "the error names the project"
assert_contains "$OUT$ERR" "h1" "the error names the remote"

# A project with its own images (LXD's default) holds no alias bb: the plan checks the alias there.
tb_lxc_q project create h1:q
tb_fleet_header "$FLEET"
cat >>"$FLEET" <<EOF
containers:
  web: {remote: h1, project: q, image: bb}
EOF
run berth plan -f "$FLEET"
assert_exit 1 "an image missing in the container's project makes the plan incomplete"
assert_contains "$OUT$ERR" "image alias 'bb' does not exist on remote 'h1' in project 'q'" \
    "the plan says the alias is missing in project q"

for h in h1 h2; do
    tb_lxc_q project create "$h:p" -c features.images=false -c features.profiles=false
done
# The same name in the default project, made by hand: never touched.
tb_container h1 web stopped -c user.note=by-hand

write_fleet h1 first false
run berth plan -f "$FLEET"
assert_exit 0 "plan with projects"
assert_contains "$OUT" "h1:p/web" "the plan text shows h1:p/web"
assert_contains "$OUT" "h2:p/api" "api is in h2's project"
run berth plan -f "$FLEET" --json
PLAN_JSON=$OUT
assert_jq "$PLAN_JSON" '[.actions[] | select(.action == "launch") | .address] | sort | join(",")' \
    "h1:p/eph,h1:p/web,h1:plain,h2:p/api" "launches at project addresses"
assert_jq "$PLAN_JSON" '[.actions[] | select(.address == "h1:p/web") | .project] | unique | join(",")' p "JSON carries the project"

run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "apply launches into project p"
assert_eq "eph,web" "$(names_in h1 p)" "h1 project p holds eph and web"
assert_eq "plain,web" "$(names_in h1 default)" "h1 default holds plain and the hand-made web"
assert_eq "api" "$(names_in h2 p)" "h2 project p holds api (the remote's project)"
assert_eq "" "$(names_in h2 default)" "h2 default holds nothing"
assert_eq Running "$(p_status h1 web p)" "h1:p/web runs"
assert_jq "$(pj h1 web p)" '.description' first "h1:p/web has its description"
assert_jq "$(pj h1 web p)" '.config["user.berth.fleet"]' default "h1:p/web is owned"
assert_jq "$(pj h1 eph p)" '.ephemeral' false "h1:p/eph is not ephemeral"
assert_eq p "$(tb_lxc exec h1:web --project p -- cat /root/hello)" "files and commands reach the container in its project"
assert_contains "$PLAN_JSON" '"exec h1:p/web hello"' "the exec action has a project address"
assert_eq Stopped "$(lxc_status h1 web)" "the hand-made h1:web is still stopped"
assert_eq by-hand "$(lxc_config h1 web user.note)" "the hand-made h1:web keeps its config"
assert_eq "<unset>" "$(lxc_config h1 web user.berth.fleet)" "the hand-made h1:web is not adopted"

run berth plan -f "$FLEET" --detailed-exitcode
assert_exit 0 "a second plan is empty"

# Drift made by hand: the description and ephemeral flag are put back.
tb_lxc_q query -X PATCH "h1:/1.0/instances/web?project=p" -d '{"description": "changed"}'
tb_lxc_q query -X PATCH "h1:/1.0/instances/eph?project=p" -d '{"ephemeral": true}'
run berth plan -f "$FLEET" --json
assert_jq "$OUT" '[.actions[] | "\(.action) \(.address) \(.changes | map(.path) | join(" "))"] | sort | join(",")' \
    "update h1:p/eph ephemeral,update h1:p/web description" "drift of description and ephemeral is planned"
run berth plan -f "$FLEET"
assert_contains "$OUT" 'description: "changed" -> "first"' "the text shows the description change"
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "apply puts the drift right"
assert_jq "$(pj h1 web p)" '.description' first "the description is back"
assert_jq "$(pj h1 eph p)" '.ephemeral' false "ephemeral is back to false"

# A change in the file, through a saved plan (project addresses in the file).
write_fleet h1 second true
run berth plan -f "$FLEET" --out "$WORK/saved.plan"
assert_exit 0 "plan --out"
run berth show "$WORK/saved.plan" --json
assert_jq "$OUT" '[.actions[] | .address] | sort | join(",")' "h1:p/eph,h1:p/web" "the saved plan keeps project addresses"
run berth_t apply "$WORK/saved.plan" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "the saved plan applies"
assert_jq "$(pj h1 web p)" '.description' second "the new description is set"
assert_jq "$(pj h1 eph p)" '.ephemeral' true "eph is ephemeral now"
assert_eq Running "$(p_status h1 eph p)" "eph still runs"
run berth plan -f "$FLEET" --detailed-exitcode
assert_exit 0 "plan is empty after the change"

# --target in the project form.
tb_lxc_q query -X PATCH "h1:/1.0/instances/web?project=p" -d '{"description": "again"}'
tb_lxc_q query -X PATCH "h2:/1.0/instances/api?project=p" -d '{"description": "x"}'
write_fleet h1 second true
sed -i 's/  api: {remote: h2, image: bb}/  api: {remote: h2, image: bb, description: ""}/' "$FLEET"
run berth plan -f "$FLEET" --json --target h1:p/web
assert_jq "$OUT" '[.actions[] | .address] | join(",")' "h1:p/web" "--target h1:p/web limits the plan to it"
run berth plan -f "$FLEET" --target h1:web
assert_exit 1 "--target h1:web (the default project) names no declared container there"
assert_contains "$OUT$ERR" "in project 'p'" "the refusal says where it is declared"
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "apply the description fixes"

# The move keeps the project.
write_fleet h2 second true
run berth plan -f "$FLEET"
assert_contains "$OUT" "h2:p/web" "the move's target is h2:p/web"
assert_contains "$OUT" "h1:p/web" "the move's source is h1:p/web"
run berth_t apply -f "$FLEET" --auto-approve --state "$STATE"
check_hung apply
assert_exit 0 "apply moves web to h2"
assert_eq "api,web" "$(names_in h2 p)" "web is in project p on h2"
assert_eq "" "$(names_in h2 default)" "nothing landed in h2's default project"
assert_eq "eph" "$(names_in h1 p)" "web left project p on h1"
assert_eq Running "$(p_status h2 web p)" "h2:p/web runs"
assert_jq "$(pj h2 web p)" '.description' second "the description came along"
assert_eq by-hand "$(lxc_config h1 web user.note)" "the hand-made h1:web is still there"
run berth plan -f "$FLEET" --detailed-exitcode
assert_exit 0 "plan is empty after the move"

# An ephemeral container is not moved: stopping it would delete it.
write_fleet h2 second true h2
run berth plan -f "$FLEET"
assert_exit 1 "a move of an ephemeral container is refused"
assert_contains "$OUT$ERR" "is ephemeral" "the refusal says why"
assert_eq Running "$(p_status h1 eph p)" "eph still runs on h1"

# Destroy: the fleet's containers in every project it uses; the hand-made one stays.
write_fleet h2 second true
run berth_t destroy -f "$FLEET" --auto-approve --state "$STATE"
check_hung destroy
assert_exit 0 "destroy succeeds"
assert_eq "" "$(names_in h1 p)" "h1 project p is empty"
assert_eq "" "$(names_in h2 p)" "h2 project p is empty"
assert_eq "web" "$(names_in h1 default)" "only the hand-made web is left in h1's default project"

finish
