#!/usr/bin/env bash
# many_remotes_test.sh — one `berth plan` over 300 remotes, with bounded threads.
#
# Three berthd hosts, each declared under 100 remote names (pinned by fingerprint:), hold a few
# containers; a 301st remote accepts TCP connections and never answers. The plan reads all 300
# (each answers), marks the silent one Unknown after its own connect timeout (10 s), and never
# runs more threads than its read pool (--read-parallelism) allows, however many remotes there
# are: each reader reads one remote at a time over one HTTPS connection, with no thread of its
# own (an address in the URL needs no resolver, whose first use would start one:
# providers/lxd/client.cpp), so at most N + 1 threads. The
# process's thread count is sampled from /proc while it runs, for the default pool of 32 and
# for 4.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FLEET=$WORK/fleet.yaml
REMOTES=300

# A listener that accepts connections and never answers: a host that hangs in the TLS handshake.
SILENT_PY='
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
held = []
while True:
    held.append(s.accept()[0])
'

# plan_sampled OUT ARGS...: berth plan ARGS with its JSON on OUT; sets PEAK_THREADS (the most
# threads the process had at once, sampled every 10 ms), PEAK_RSS_MB (its largest resident size
# seen), SECONDS_TAKEN and RC.
plan_sampled() {
    local out=$1 pid peak=0 n rss peak_rss=0 t0
    shift
    t0=$(date +%s.%N)
    "$BERTH_BIN" --config-dir "$BERTH_CFG" --no-color plan -f "$FLEET" --json "$@" >"$out" 2>"$out.err" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        read -r n rss < <(awk '/^Threads:/ {t = $2} /^VmRSS:/ {r = $2} END {print t + 0, r + 0}' \
            "/proc/$pid/status" 2>/dev/null || echo "0 0")
        ((${n:-0} > peak)) && peak=$n
        ((${rss:-0} > peak_rss)) && peak_rss=$rss
        sleep 0.01
    done
    RC=0
    wait "$pid" || RC=$?
    PEAK_THREADS=$peak
    PEAK_RSS_MB=$((peak_rss / 1024))
    SECONDS_TAKEN=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
}

main() {
    tb_start 3 berthd
    local i h port url
    declare -A fps
    for h in 1 2 3; do
        url="TB_HOST${h}_URL"
        run berth remote add "h$h" "${!url}" --password "$(tb_password "$h")" --accept-certificate
        ((RC == 0)) || bail "berth remote add h$h" "$(_last_output)"
    done
    run berth remote list --json
    for h in 1 2 3; do
        fps[$h]=$(jq -r --arg r "h$h" '.remotes[$r].fingerprint' <<<"$OUT")
        [[ "${fps[$h]}" =~ ^[0-9a-f:]+$|^sha256: ]] || bail "no fingerprint for h$h" "$OUT"
        tb_container "h$h" "c$h" stopped
    done

    port=$(free_port)
    python3 -c "$SILENT_PY" "$port" &
    local silent_pid=$!
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    {
        echo "version: 1"
        echo "remotes:"
        for ((i = 1; i <= REMOTES; i++)); do
            h=$((i % 3 + 1))
            url="TB_HOST${h}_URL"
            printf '  r%03d: {url: "%s", fingerprint: "%s"}\n' "$i" "${!url}" "${fps[$h]}"
        done
        printf '  silent: {url: "https://127.0.0.1:%s", fingerprint: "%s"}\n' "$port" "${fps[1]}"
    } >"$FLEET"

    plan_sampled "$WORK/plan.json"
    log "301 remotes, read parallelism 32: ${SECONDS_TAKEN} s, at most $PEAK_THREADS threads, $PEAK_RSS_MB MB resident"
    assert_exit 1 "the plan exits 1: one remote is unknown"
    assert_jq "$(cat "$WORK/plan.json")" '[.remotes[] | select(.status == "ok")] | length' "$REMOTES" \
        "all $REMOTES answering remotes were read"
    assert_jq "$(cat "$WORK/plan.json")" '.remotes.silent.status' unknown "the silent remote is unknown"
    assert_contains "$(jq -r .remotes.silent.error "$WORK/plan.json")" "timed out" "it timed out (it was listening)"
    assert_jq "$(cat "$WORK/plan.json")" '[.remotes[] | select(.status == "ok") | .instances] | add' "$REMOTES" \
        "each remote name saw its host's one container"
    # Its 10 s, beside the others' reads; generous for a loaded CI machine.
    check "the silent remote cost its own timeout, not the others' (${SECONDS_TAKEN} s < 45 s)" \
        awk -v s="$SECONDS_TAKEN" 'BEGIN {exit !(s < 45)}'
    # 32 readers and the main thread.
    check "at most 32 + 1 threads ($PEAK_THREADS)" test "$PEAK_THREADS" -le 33
    check "the pool was used: more than 8 threads at once ($PEAK_THREADS)" test "$PEAK_THREADS" -gt 8
    check "memory stays bounded: under 100 MB resident ($PEAK_RSS_MB MB)" test "$PEAK_RSS_MB" -lt 100

    plan_sampled "$WORK/plan4.json" --read-parallelism 4
    log "301 remotes, read parallelism 4: ${SECONDS_TAKEN} s, at most $PEAK_THREADS threads, $PEAK_RSS_MB MB resident"
    assert_jq "$(cat "$WORK/plan4.json")" '[.remotes[] | select(.status == "ok")] | length' "$REMOTES" \
        "with --read-parallelism 4 too, all $REMOTES were read"
    check "at most 4 + 1 threads ($PEAK_THREADS)" test "$PEAK_THREADS" -le 5

    kill "$silent_pid" 2>/dev/null || true
    wait "$silent_pid" 2>/dev/null || true
    finish
}

main "$@"
