#!/usr/bin/env bash
# run_fuzzer.sh FUZZER SEEDS DICT WORK — one time-capped libFuzzer run, as the ctest fuzz.NAME.
#
# The seed corpus SEEDS (in the repository) is only read: what the run discovers goes to
# WORK/corpus, emptied first, so no run depends on what an earlier one left. DICT is used when it
# exists. A crash, hang (an input running over 10 s), leak, out-of-memory or sanitizer report ends
# the run with a non-zero status and leaves the input in WORK/artifacts; libFuzzer's log names the
# file ("Test unit written to ..."), and `FUZZER FILE` replays it.
#
# Environment: BERTH_FUZZ_SECONDS (default 60) is the time cap of the run.
set -euo pipefail

if (($# != 4)); then
    echo "usage: $0 FUZZER SEEDS DICT WORK" >&2
    exit 2
fi
fuzzer=$1 seeds=$2 dict=$3 work=$4
seconds=${BERTH_FUZZ_SECONDS:-60}

rm -rf "$work/corpus"
mkdir -p "$work/corpus" "$work/artifacts"
args=(
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
    -artifact_prefix="$work/artifacts/" -print_final_stats=1
)
[[ -f "$dict" ]] && args+=(-dict="$dict")
echo "run_fuzzer.sh: $(basename "$fuzzer") for ${seconds}s, seeds $seeds, findings in $work/artifacts/"
exec "$fuzzer" "${args[@]}" "$work/corpus" "$seeds"
