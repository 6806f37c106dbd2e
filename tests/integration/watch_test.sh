#!/usr/bin/env bash
# watch_test.sh — `berth watch` on two real LXD hosts:
#
# - correct mode: config changed, a container stopped, a stopped one started and a declared
#   snapshot deleted by hand are all back within two intervals; a drift: ignore container is left
#   alone; /metrics (parsed with prometheus_client) counted the drift and the corrections;
# - report mode: nothing changes; the drift shows in /status, the events and the metrics; the
#   status page, rendered by headless Chromium, shows the container OutOfSync;
# - a host stopped mid-watch: its containers go Unknown and the other host is still corrected;
#   back, it is corrected too;
# - an invalid fleet file: no corrections, the error in /status and the metrics, nothing deleted;
#   fixed, corrections resume; an empty container list (prune: true) deletes nothing;
# - POST /suspend, /resume, /reconcile, the bearer token, a non-loopback --listen refused without
#   one; SIGTERM exits 0; `berth history` lists the runs with their drift;
# - the fleet file in a git repository: /status shows the commit, -dirty; `suspend: true` for the
#   whole fleet holds every correction back and reports the drift;
# - SIGTERM while a command runs past --shutdown-timeout: exit 0 at the timeout; its host lock
#   stays, and the next apply on this machine takes it over (its process is gone) and settles the run.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE
FLEET=$WORK/fleet.yaml
EVENTS=$WORK/events.jsonl
INTERVAL=4
PY=/usr/bin/python3  # Debian's, with python3-prometheus-client
# lock_profiles REMOTE: the names of the fleet's host locks (and copies takeovers left) on REMOTE
lock_profiles() { tb_lxc query "$1:/1.0/profiles" | jq -r '.[] | sub("^/1.0/profiles/"; "") | select(startswith("berth-lock-"))'; }
WATCH_PID=
PORT=

# set +e: under errexit, `(exit $_rc)` of a failed test would end the trap before _cleanup.
trap '_rc=$?; set +e; if [[ -n "$WATCH_PID" ]]; then kill -KILL "$WATCH_PID" 2>/dev/null; fi; (exit $_rc); _cleanup' EXIT

write_fleet() {
    tb_fleet_header "$FLEET"
    cat >>"$FLEET" <<EOF
containers:
  web:
    remote: h1
    image: bb
    config: {limits.cpu: "1"}
    snapshots: [s1]
  ign: {remote: h1, image: bb, drift: ignore}
  db: {remote: h2, image: bb}
  idle: {remote: h2, image: bb, state: stopped}
EOF
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
url() { printf 'http://127.0.0.1:%s%s' "$PORT" "$1"; }
status_json() { curl -sf --max-time 5 "$(url /status)" || echo '{}'; }
run_count() { status_json | jq -r '.run_count // 0'; }

# start_watch ARGS...: berth watch in the background on a free loopback port; returns once its
# first run finished.
start_watch() {
    PORT=$(free_port)
    "$BERTH_BIN" --config-dir "$BERTH_CFG" --no-color watch -f "$FLEET" --interval "${WATCH_INTERVAL:-${INTERVAL}s}" --jitter 0% \
        --listen "127.0.0.1:$PORT" --events "$EVENTS" "$@" >"$WORK/watch.out" 2>>"$WORK/watch.err" &
    WATCH_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if [[ "$(run_count)" -ge 1 ]]; then return 0; fi
        kill -0 "$WATCH_PID" 2>/dev/null || bail "berth watch $* exited" "$(cat "$WORK/watch.err")"
        sleep 0.3
    done
    bail "berth watch $* did not finish a run in 30 s" "$(cat "$WORK/watch.err")"
}

# stop_watch: SIGTERM, and the exit status must be 0.
stop_watch() {
    kill -TERM "$WATCH_PID"
    local rc=0
    wait "$WATCH_PID" || rc=$?
    WATCH_PID=
    assert_eq 0 "$rc" "watch exits 0 on SIGTERM"
}

# wait_runs N: until N more runs finished (at most 60 s).
wait_runs() {
    local target=$(($(run_count) + $1)) i
    for ((i = 0; i < 200; i++)); do
        [[ "$(run_count)" -ge "$target" ]] && return 0
        sleep 0.3
    done
    _fail "watch did not finish $1 more runs" "$(tail -20 "$WORK/watch.err")"
}

# metric NAME LABELS_JSON: the sample's value as prometheus_client parses /metrics ("absent" if none).
metric() {
    curl -sf --max-time 5 "$(url /metrics)" | "$PY" -c '
import json, sys
from prometheus_client.parser import text_string_to_metric_families
name, labels = sys.argv[1], json.loads(sys.argv[2])
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        if s.name == name and s.labels == labels:
            print(int(s.value) if s.value == int(s.value) else s.value)
            sys.exit(0)
print("absent")' "$1" "$2"
}

# until_true SECONDS CMD...: polls CMD until it succeeds; prints the seconds it took, or "timeout".
until_true() {
    local limit=$1 t0
    shift
    t0=$(date +%s.%N)
    while ! "$@" >/dev/null 2>&1; do
        if (($(date +%s) - ${t0%.*} >= limit)); then
            echo timeout
            return 0
        fi
        sleep 0.3
    done
    awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }'
}

db_running() { [[ "$(lxc_status h2 db)" == Running ]]; }

all_back() {
    [[ "$(lxc_config h1 web limits.cpu)" == 1 && "$(lxc_status h2 db)" == Running &&
        "$(lxc_status h2 idle)" == Stopped && "$(lxc_snaps h1 web)" == s1 ]]
}

test_correct_mode() {
    start_watch
    tb_lxc_q config set h1:web limits.cpu 2
    tb_lxc_q stop --force h2:db
    tb_lxc_q start h2:idle
    tb_lxc_q delete h1:web/s1
    tb_lxc_q stop --force h1:ign
    local took
    took=$(until_true 30 all_back)
    log "hand changes corrected after $took s (interval ${INTERVAL} s)"
    if [[ "$took" != timeout ]] && awk -v t="$took" -v i="$INTERVAL" 'BEGIN { exit !(t <= 2 * i + 2) }'; then
        _pass "config, power states and the snapshot are back within two intervals ($took s)"
    else
        _fail "not all back within two intervals ($took)" "cpu=$(lxc_config h1 web limits.cpu) db=$(lxc_status h2 db)" \
            "idle=$(lxc_status h2 idle) snaps=$(lxc_snaps h1 web)" "$(tail -20 "$WORK/watch.err")"
    fi
    wait_runs 1
    assert_eq Stopped "$(lxc_status h1 ign)" "drift: ignore leaves ign stopped"
    assert_eq 1 "$(metric berth_actions_total '{"kind": "update", "result": "succeeded"}')" "one update counted"
    assert_eq 1 "$(metric berth_actions_total '{"kind": "start", "result": "succeeded"}')" "one start counted"
    assert_eq 1 "$(metric berth_actions_total '{"kind": "stop", "result": "succeeded"}')" "one stop counted"
    assert_eq 1 "$(metric berth_actions_total '{"kind": "snapshot", "result": "succeeded"}')" "one snapshot counted"
    assert_eq 1 "$(metric berth_drift_detected_total '{"remote": "h1", "kind": "update"}')" "the config drift counted"
    assert_eq 1 "$(metric berth_drift_detected_total '{"remote": "h2", "kind": "start"}')" "the stopped db counted"
    assert_eq absent "$(metric berth_drift_detected_total '{"remote": "h1", "kind": "start"}')" \
        "the ignored container's drift is not counted"
    assert_eq absent "$(metric berth_drift_items '{"remote": "h1", "kind": "update"}')" \
        "no drift left uncorrected"
    assert_eq 1 "$(metric berth_remote_up '{"remote": "h2"}')" "h2 is up"
    local runs
    runs=$(metric berth_runs_total '{"result": "succeeded"}')
    assert_eq true "$([[ $runs -ge 2 ]] && echo true || echo false)" "runs counted as succeeded ($runs)"
    assert_eq true "$(metric berth_last_success_timestamp_seconds '{}' | awk -v now="$(date +%s)" '{ print ($1 > now - 60) ? "true" : "false" }')" \
        "last success is recent"
    assert_eq true "$(metric berth_remote_read_seconds '{"remote": "h1"}' | awk '{ print ($1 > 0) ? "true" : "false" }')" \
        "read seconds measured"
    assert_jq "$(status_json)" '[.containers[] | "\(.name)=\(.sync)/\(.health)/\(.policy)"] | sort | join(",")' \
        "db=Synced/Healthy/correct,idle=Synced/Healthy/correct,ign=OutOfSync/Degraded/ignore,web=Synced/Healthy/correct" \
        "/status: all synced but the ignored one"
    assert_jq "$(status_json)" '.fleet.revision | test("^sha256:[0-9a-f]{12}$")' true "revision: the file's digest outside git"
    assert_jq "$(grep '"event":"drift"' "$EVENTS" | jq -s '[.[] | select(.corrected) | .action] | unique | join(",")')" '.' \
        "snapshot h1:web/s1,start h2:db,stop h2:idle,update h1:web" \
        "events: one drift line per correction"
    assert_contains "$(cat "$EVENTS")" '"event":"finished"' "events: action lines"

    # POST /suspend: nothing is corrected until /resume; /reconcile runs at once.
    run curl -sf -X POST "$(url /suspend)"
    assert_exit 0 "POST /suspend"
    tb_lxc_q stop --force h2:db
    wait_runs 2
    assert_eq Stopped "$(lxc_status h2 db)" "suspended: db stays stopped"
    assert_jq "$(status_json)" '[.suspended, (.containers[] | select(.name == "db") | .policy)] | join(",")' "true,suspended" \
        "/status says suspended"
    run curl -sf -X POST "$(url /resume)"
    assert_exit 0 "POST /resume"
    run curl -s -o /dev/null -w '%{http_code}' -X POST "$(url /reconcile)"
    assert_eq 202 "$OUT" "POST /reconcile is accepted"
    until_true 10 db_running >/dev/null
    assert_eq Running "$(lxc_status h2 db)" "resumed and reconciled: db runs again"
    run curl -s -o /dev/null -w '%{http_code}' "$(url /reconcile)"
    assert_eq 405 "$OUT" "GET /reconcile is refused"
    stop_watch
}

test_report_mode() {
    start_watch --mode report
    tb_lxc_q config set h1:web limits.cpu 3
    wait_runs 2
    assert_eq 3 "$(lxc_config h1 web limits.cpu)" "report mode changes nothing"
    assert_jq "$(status_json)" '.containers[] | select(.name == "web") | "\(.sync) \(.drift | join(","))"' \
        "OutOfSync update config.limits.cpu" "/status: web OutOfSync, with what differs"
    assert_eq 1 "$(metric berth_drift_items '{"remote": "h1", "kind": "update"}')" "berth_drift_items shows the drift"
    assert_eq absent "$(metric berth_actions_total '{"kind": "update", "result": "succeeded"}')" \
        "no action ran in report mode"
    assert_jq "$(grep '"event":"drift"' "$EVENTS" | tail -1)" '"\(.action) \(.corrected) \(.why)"' \
        "update h1:web false report mode" "events: the drift, not corrected"

    # The status page, rendered by a real browser.
    local dom
    dom=$(timeout 60 chromium --headless --no-sandbox --disable-background-networking --disable-gpu \
        --virtual-time-budget=2000 --dump-dom "$(url /)" 2>/dev/null || true)
    assert_contains "$dom" ">web<" "the page lists web"
    assert_eq OutOfSync "$(grep -o '<tr[^>]*>.*' <<<"$dom" | tr '\n' ' ' | sed 's/<tr/\n<tr/g' | grep '>web<' |
        grep -o 'OutOfSync' | head -1)" "the page shows web OutOfSync"
    stop_watch
}

test_host_down() {
    start_watch
    wait_runs 1  # web back to 1 after report mode
    assert_eq 1 "$(lxc_config h1 web limits.cpu)" "correct mode puts back what report mode left"
    "$TB_SH" stop-host "$TB_DIR" 2 >/dev/null
    tb_lxc_q config set h1:web limits.cpu 2
    wait_runs 2
    assert_eq 1 "$(lxc_config h1 web limits.cpu)" "h2 down: h1 is still corrected"
    assert_jq "$(status_json)" '[.containers[] | select(.remote == "h2") | .sync] | unique | join(",")' Unknown \
        "h2's containers are Unknown"
    assert_eq 0 "$(metric berth_remote_up '{"remote": "h2"}')" "berth_remote_up 0 for h2"
    assert_jq "$(status_json)" '.last_run.result' failed "the run is failed (incomplete)"
    "$TB_SH" start-host "$TB_DIR" 2 >/dev/null
    tb_lxc_q stop --force h2:db
    local took
    took=$(until_true 40 db_running)
    assert_eq true "$([[ $took != timeout ]] && echo true || echo false)" "h2 back: db corrected too ($took s)"
    wait_runs 1
    assert_eq 1 "$(metric berth_remote_up '{"remote": "h2"}')" "h2 is up again"
    stop_watch
}

test_invalid_file() {
    start_watch
    cp "$FLEET" "$WORK/fleet.good"
    printf 'version: 1\ncontainers: [this is not a map\n' >"$FLEET"
    tb_lxc_q config set h1:web limits.cpu 5
    wait_runs 2
    assert_eq 5 "$(lxc_config h1 web limits.cpu)" "an invalid file corrects nothing"
    assert_jq "$(status_json)" '[.last_run.result, (.fleet.error | type)] | join(",")' "invalid,string" \
        "/status: the run is invalid, with the error"
    assert_jq "$(status_json)" '.last_error | test("fleet.yaml")' true "the error names the file"
    assert_eq true "$([[ $(metric berth_runs_total '{"result": "invalid"}') -ge 2 ]] && echo true || echo false)" \
        "berth_runs_total{result=invalid} counts them"
    assert_eq "ign,web" "$(lxc_names h1)" "nothing deleted on h1"
    assert_eq "db,idle" "$(lxc_names h2)" "nothing deleted on h2"

    # The empty-list guard: prune with no container declared deletes nothing.
    tb_fleet_header "$FLEET"
    printf 'prune: true\ncontainers: {}\n' >>"$FLEET"
    wait_runs 2
    assert_eq "ign,web" "$(lxc_names h1)" "an empty container list deletes nothing on h1"
    assert_eq "db,idle" "$(lxc_names h2)" "an empty container list deletes nothing on h2"
    assert_jq "$(status_json)" '.last_run.drift' 4 "the four deletes are reported"
    assert_eq 4 "$(grep '"event":"drift"' "$EVENTS" | tail -4 | jq -s '[.[] | select(.kind == "delete" and (.why | test("--allow-empty")))] | length')" \
        "each says --allow-empty"

    cp "$WORK/fleet.good" "$FLEET"
    wait_runs 2
    assert_eq 1 "$(lxc_config h1 web limits.cpu)" "fixed file: corrections resume"
    assert_jq "$(status_json)" '.fleet.error' null "the error is gone"
    stop_watch
}

test_history() {
    run berth history --json --limit 500
    assert_exit 0 "history --json"
    assert_jq "$OUT" '[.[] | select(.command == "watch")] | length > 10' true "watch runs are recorded"
    assert_jq "$OUT" '[.[] | select(.result == "invalid")] | length >= 2' true "invalid runs are recorded"
    assert_jq "$OUT" '[.[] | .drift[] | select(.action == "update h1:web" and .corrected)] | length >= 1' true \
        "a recorded run holds the corrected drift"
    assert_jq "$OUT" '[.[] | .actions[] | select(.action == "update h1:web" and .status == "succeeded")] | length >= 1' \
        true "and its action"
    run berth history
    assert_exit 0 "history"
    assert_contains "$OUT" "drift: update h1:web (config.limits.cpu)" "history shows drift"
    run berth history --limit 1 --json
    assert_jq "$OUT" 'length' 1 "--limit"
}

test_listen_and_token() {
    run berth watch -f "$FLEET" --listen 0.0.0.0:9 --interval 1h
    assert_exit 1 "a non-loopback --listen without a token is refused"
    assert_contains "$ERR" "--listen-token-file" "the error says what to give"
    local token
    token=$(openssl rand -hex 24)
    add_secret "$token"
    printf '%s\n' "$token" >"$WORK/token"
    WATCH_INTERVAL=1h start_watch --listen-token-file "$WORK/token"
    run curl -s -o /dev/null -w '%{http_code}' -X POST "$(url /suspend)"
    assert_eq 401 "$OUT" "POST without the token: 401"
    run curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer nope$token" "$(url /suspend)"
    assert_eq 401 "$OUT" "POST with a wrong token: 401"
    run curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" "$(url /suspend)"
    assert_eq 200 "$OUT" "POST with the token: 200"
    run curl -s -o /dev/null -w '%{http_code}' "$(url /healthz)"
    assert_eq 200 "$OUT" "GET /healthz needs no token"
    stop_watch
    assert_no_secret "$(cat "$WORK/watch.err" "$EVENTS")" "$token" "the token is never printed"
}

# The fleet file in a git repository: /status names the commit (and -dirty); a fleet-level
# `suspend: true` corrects nothing and reports the drift; without it corrections resume.
test_suspend_and_revision() {
    local repo=$WORK/repo saved=$FLEET
    mkdir -p "$repo"
    cp "$FLEET" "$repo/fleet.yaml"
    git -C "$repo" init -q
    git -C "$repo" add fleet.yaml
    git -C "$repo" -c user.name=t -c user.email=t@localhost commit -qm one
    local head
    head=$(git -C "$repo" rev-parse --short=12 HEAD)
    FLEET=$repo/fleet.yaml
    start_watch
    assert_jq "$(status_json)" '.fleet.revision' "$head" "/status: the revision is the git commit"

    printf 'suspend: true\n' >>"$FLEET"
    tb_lxc_q config set h1:web limits.cpu 3
    wait_runs 2
    assert_eq 3 "$(lxc_config h1 web limits.cpu)" "suspend: true in the file corrects nothing"
    assert_jq "$(status_json)" '"\(.suspended) \(.suspended_by) \(.fleet.revision)"' "true file $head-dirty" \
        "/status: suspended by the file, the revision is -dirty"
    assert_jq "$(grep '"event":"drift"' "$EVENTS" | tail -1)" '"\(.action) \(.corrected)"' \
        "update h1:web false" "the drift is reported, not corrected"

    sed -i '/^suspend: true$/d' "$FLEET"
    printf '# revision two\n' >>"$FLEET"
    git -C "$repo" -c user.name=t -c user.email=t@localhost commit -qam two
    head=$(git -C "$repo" rev-parse --short=12 HEAD)
    wait_runs 2
    assert_eq 1 "$(lxc_config h1 web limits.cpu)" "suspend removed: corrected"
    assert_jq "$(status_json)" '"\(.suspended) \(.fleet.revision)"' "false $head" "/status: the new commit, clean"
    stop_watch
    FLEET=$saved
}

# SIGTERM while an action runs past --shutdown-timeout: watch exits 0 at the timeout, and the
# next apply settles what was cut off.
test_shutdown_cutoff() {
    cp "$FLEET" "$WORK/fleet.good"
    printf '  slow: {remote: h1, image: bb}\n' >>"$FLEET"
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "launch slow"
    start_watch --shutdown-timeout 1s
    sed -i 's/^  slow: .*/  slow: {remote: h1, image: bb, exec: {nap: {command: [sleep, "15"], when: change}}}/' "$FLEET"
    local i started=false
    for ((i = 0; i < 100; i++)); do
        if grep '"event":"started"' "$EVENTS" | grep -q 'slow'; then
            started=true
            break
        fi
        sleep 0.3
    done
    assert_eq true "$started" "watch started the slow command"
    local t0 rc=0
    t0=$(date +%s.%N)
    kill -TERM "$WATCH_PID"
    wait "$WATCH_PID" || rc=$?
    WATCH_PID=
    local took
    took=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
    assert_eq 0 "$rc" "cut off at --shutdown-timeout: exit 0"
    assert_eq true "$(awk -v t="$took" 'BEGIN { print (t < 5 ? "true" : "false") }')" \
        "it exits at the timeout, not when the command ends ($took s)"
    assert_contains "$(cat "$WORK/watch.err")" "after --shutdown-timeout" "it says it cut actions off"
    # The cut-off run left h1's lock behind (it would expire in 2 minutes); its process is gone
    # from this machine, so the next apply takes it over at once and settles the run.
    assert_eq 1 "$(lock_profiles h1 | wc -l)" "the cut-off run's host lock is still on h1"
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "the next apply settles the cut-off run"
    assert_contains "$ERR" "took over the lock on h1 of berth watch, " "it takes the dead watch's lock over"
    assert_contains "$ERR" "its process is gone" "and says why"
    run berth force-unlock --hosts -f "$FLEET" --auto-approve
    assert_exit 0 "force-unlock --hosts clears the copy the takeover left"
    assert_eq "" "$(lock_profiles h1)" "no lock is left on h1"
    run berth_t plan -f "$FLEET"
    assert_exit 0 "then nothing is left to do"
    assert_contains "$OUT" "No changes" "the plan is empty"
    cp "$WORK/fleet.good" "$FLEET"
}

tb_start 2
add_remotes
write_fleet
run berth_t apply -f "$FLEET" --auto-approve
check_hung apply
assert_exit 0 "apply the fleet"

test_correct_mode
test_report_mode
test_host_down
test_invalid_file
test_history
test_listen_and_token
test_suspend_and_revision
test_shutdown_cutoff
assert_no_secret "$(cat "$WORK/watch.err" "$EVENTS")" "$(tb_password 1)" "no trust password in the logs or events"
finish
