#!/usr/bin/env bash
# host_lock_test.sh — the fleet's locks on the hosts (an LXD profile berth-lock-<fleet>), on two
# real LXD hosts:
# - an apply leaves no lock behind; a lock held by another run (made with the stock client) stops
#   an apply that changes that host, names the holder and changes nothing, while an apply that
#   changes only the other host goes through; --lock-timeout waits for it;
# - an expired lock is taken over (said on stderr), and the moved copy is kept;
# - `berth force-unlock --hosts` refuses without a terminal or --auto-approve, then removes the
#   fleet's locks;
# - 10 berth processes with separate state files race for the same hosts for 20 rounds: in every
#   round exactly one changes anything (a command that appends the round to a file in a container
#   runs once per round), and the others report the holder.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FLEET=$WORK/fleet.yaml
export BERTH_STATE=$WORK/state.db
LOCK=berth-lock-gitops
RUNNERS=10
ROUNDS=20

# write_fleet CPU ROUND: c1 on h1 (limits.cpu CPU; a command that appends ROUND to /root/rounds and
# takes 3 s, so the winner of a round holds the locks while the others try), c2 on h2 (limits.cpu
# CPU2, default 1).
write_fleet() {
    tb_fleet_header "$FLEET"
    cat >>"$FLEET" <<EOF
name: gitops
containers:
  c1:
    remote: h1
    image: bb
    config: {limits.cpu: "$1"}
    exec:
      mark:
        command: [sh, -c, 'echo \$ROUND >> /root/rounds; sleep 3']
        when: change
        environment: {ROUND: "$2"}
  c2: {remote: h2, image: bb, config: {limits.cpu: "${3:-1}"}}
EOF
}

profiles() { tb_lxc query "$1:/1.0/profiles" | jq -r '[.[] | sub("^/1.0/profiles/"; "")] | map(select(startswith("berth-lock"))) | sort | join(",")'; }

# hand_lock REMOTE EXPIRES: a lock of this fleet held by another runner, made with the stock client.
hand_lock() {
    tb_lxc_q profile create "$1:$LOCK"
    tb_lxc_q profile set "$1:$LOCK" user.berth.lock.fleet=gitops user.berth.lock.id=0123456789abcdef0123456789abcdef \
        "user.berth.lock.holder=berth apply, ci@runner-9, pid 77" user.berth.lock.since=2026-01-01T00:00:00Z \
        "user.berth.lock.expires=$2"
}

test_basics() {
    write_fleet 1 0
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "first apply"
    assert_eq "" "$(profiles h1)" "no lock is left on h1"
    assert_eq "" "$(profiles h2)" "no lock is left on h2"

    hand_lock h1 $(($(date +%s) + 600))
    write_fleet 2 0
    run berth_t apply -f "$FLEET" --auto-approve
    assert_exit 1 "an apply that changes a locked host is refused"
    assert_contains "$ERR" "h1 is locked by berth apply, ci@runner-9, pid 77 (since 2026-01-01T00:00:00Z, until" \
        "it names the holder"
    assert_contains "$ERR" "force-unlock --hosts" "and says how to clear it"
    assert_eq 1 "$(lxc_config h1 c1 limits.cpu)" "nothing changed on h1"
    assert_eq "$LOCK" "$(profiles h1)" "the other run's lock is untouched"

    write_fleet 1 0 2
    run berth_t apply -f "$FLEET" --auto-approve
    assert_exit 0 "an apply that changes only h2 does not need h1's lock"
    assert_eq 2 "$(lxc_config h2 c2 limits.cpu)" "h2 changed"

    write_fleet 2 0 2
    (sleep 2 && tb_lxc_q profile delete "h1:$LOCK") &
    run berth_t apply -f "$FLEET" --auto-approve --lock-timeout 60s
    wait
    assert_exit 0 "--lock-timeout waits for the lock"
    assert_eq 2 "$(lxc_config h1 c1 limits.cpu)" "and then applies"
    assert_eq "" "$(profiles h1)" "and releases it"
}

test_takeover() {
    hand_lock h1 $(($(date +%s) - 60))
    write_fleet 1 0 2
    run berth_t apply -f "$FLEET" --auto-approve
    assert_exit 0 "an expired lock is taken over"
    assert_contains "$ERR" "took over the expired lock on h1 of berth apply, ci@runner-9, pid 77" "said on stderr"
    assert_eq 1 "$(lxc_config h1 c1 limits.cpu)" "the change is made"
    assert_eq "$LOCK-was-0123456789abcdef" "$(profiles h1)" "the expired lock is kept aside, the run's own is gone"
}

test_force_unlock() {
    hand_lock h2 $(($(date +%s) + 600))
    run berth force-unlock --hosts -f "$FLEET"
    assert_exit 1 "force-unlock --hosts without a terminal"
    assert_contains "$ERR" "--auto-approve" "says what to pass"
    assert_eq "$LOCK" "$(profiles h2)" "nothing removed"
    run berth force-unlock --hosts -f "$FLEET" --auto-approve
    assert_exit 0 "force-unlock --hosts --auto-approve"
    assert_contains "$OUT" "h2 is locked by berth apply, ci@runner-9, pid 77" "it lists the lock"
    assert_contains "$OUT" "left by a takeover" "and the copy a takeover left"
    assert_eq "," "$(profiles h1),$(profiles h2)" "both are gone"
    run berth force-unlock --hosts -f "$FLEET"
    assert_exit 0 "nothing left"
    assert_contains "$OUT" "No host holds a lock of fleet gitops" "says so"
}

test_race() {
    local round i winners lockouts others cpu
    local -a pids
    for ((round = 1; round <= ROUNDS; round++)); do
        cpu=$((round % 2 + 1))
        write_fleet "$cpu" "$round" "$cpu"
        pids=()
        for ((i = 1; i <= RUNNERS; i++)); do
            BERTH_STATE=$WORK/runner$i.db timeout -k 10 120 "$BERTH_BIN" --config-dir "$BERTH_CFG" --no-color apply \
                -f "$FLEET" --auto-approve --json >"$WORK/r$i.out" 2>"$WORK/r$i.err" &
            pids+=($!)
        done
        for ((i = 1; i <= RUNNERS; i++)); do
            if wait "${pids[$((i - 1))]}"; then echo 0; else echo $?; fi >"$WORK/r$i.rc"
        done
        winners=0 lockouts=0 others=
        for ((i = 1; i <= RUNNERS; i++)); do
            if [[ $(cat "$WORK/r$i.rc") == 0 ]] &&
                jq -e 'select(.event == "summary") | .succeeded >= 1' "$WORK/r$i.out" >/dev/null 2>&1; then
                winners=$((winners + 1))
            elif [[ $(cat "$WORK/r$i.rc") == 1 ]] && grep -q "is locked by berth apply, " "$WORK/r$i.err"; then
                lockouts=$((lockouts + 1))
            else
                others+=" runner$i: rc $(cat "$WORK/r$i.rc"): $(tail -c 300 "$WORK/r$i.err" | tr '\n' ' ')"
            fi
        done
        if ((winners != 1 || lockouts != RUNNERS - 1)); then
            _fail "round $round: exactly one runner changes anything, the others report the holder" \
                "winners $winners, lockouts $lockouts;$others"
            return
        fi
        [[ $(lxc_config h1 c1 limits.cpu) == "$cpu" ]] ||
            { _fail "round $round: the change is made" "limits.cpu $(lxc_config h1 c1 limits.cpu)"; return; }
    done
    _pass "$ROUNDS rounds of $RUNNERS runners: one changes, $((RUNNERS - 1)) report the holder, every round"
    local rounds
    rounds=$(tb_lxc exec h1:c1 -- cat /root/rounds | tr '\n' ' ')
    assert_eq "0 $(seq -s ' ' 1 "$ROUNDS") " "$rounds" "the command ran exactly once per round, in order"
    assert_eq "," "$(profiles h1),$(profiles h2)" "no lock is left behind"
}

tb_start 2
add_remotes

test_basics
test_takeover
test_force_unlock
test_race
finish
