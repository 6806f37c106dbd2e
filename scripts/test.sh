#!/usr/bin/env bash
# test.sh — the whole test suite, on a fresh Debian 12 machine as root:
# installs what it needs, checks every C++ file with clang-format, builds berth twice: Release
# with gcc in build/ (the programs, not the unit tests), and with clang in build-asan/ (ASan+UBSan,
# libFuzzer's coverage, -O1: the programs, the unit tests and the fuzz targets). Runs the
# integration tests (real hosts from tests/testbed/) against the Release programs, in the
# background while build-asan/ builds at a lower priority (their daemons need the CPU more
# than the build does: starved, the tests took three times as long); then the unit tests under the sanitizers, the shell and Debian package
# tests on the Release build, and each fuzz target over its seed corpus for a bounded time. Exits
# non-zero if anything fails.
#
# Environment:
#   BERTH_JOBS=N                  parallel build jobs (default 2)
#   BERTH_INTEGRATION_JOBS=N      integration tests run at once, each on its own
#                                 test bed (default 3: they mostly wait on LXD)
#   BERTH_INTEGRATION_BUILD=DIR   build dir whose berth the integration tests
#                                 use: build (default) or build-asan
#   BERTH_CTEST_ARGS="..."        extra arguments for every ctest run (e.g. -R remote)
#   BERTH_CMAKE_ARGS="..."        extra arguments for every cmake configure run
#   BERTH_FUZZ_SECONDS=N          how long each fuzz target runs (default 30; a
#                                 crash fails the run and stays in
#                                 build-asan/fuzz/runs/NAME/artifacts/)
#   BERTH_SKIP_FUZZ=1             neither build nor run the fuzz targets
#   BERTH_SKIP_DEPS=1             do not run scripts/install-deps.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
readonly JOBS=${BERTH_JOBS:-2}
readonly INTEGRATION_JOBS=${BERTH_INTEGRATION_JOBS:-3}
readonly INTEGRATION_BUILD=${BERTH_INTEGRATION_BUILD:-build}
read -r -a CTEST_ARGS <<<"${BERTH_CTEST_ARGS:-}"
read -r -a CMAKE_ARGS <<<"${BERTH_CMAKE_ARGS:-}"

TB_ROOT=
declare -a FAILED_STEPS=()
TOTAL_PASSED=0
TOTAL_FAILED=0

log() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# Stop every test bed the tests started (a test killed by a CTest timeout
# cannot run its own trap) and remove their common root.
cleanup() {
    local bed
    if [[ -n "$TB_ROOT" && -d "$TB_ROOT" ]]; then
        while IFS= read -r bed; do
            bed=$(dirname "$bed")
            echo "test.sh: stopping leftover test bed $bed" >&2
            "$ROOT/tests/testbed/tb.sh" stop "$bed" || true
        done < <(find "$TB_ROOT" -maxdepth 4 -name .berth-testbed 2>/dev/null)
        rm -rf --one-file-system "$TB_ROOT" || true
    fi
}

# configure_and_build DIR TARGET CMAKE_ARGS...: TARGET is "all" for everything. NICE (the
# environment) is the build's nice value.
configure_and_build() {
    local dir=$1 target=$2
    shift 2
    log "configure $dir ($*)"
    cmake -S "$ROOT" -B "$ROOT/$dir" "$@" ${CMAKE_ARGS[@]+"${CMAKE_ARGS[@]}"}
    log "build $dir ($target)"
    nice -n "${NICE:-0}" cmake --build "$ROOT/$dir" --target "$target" -j "$JOBS"
}

# Run ctest, keep going on failure, and count its results.
run_ctest() {
    local name=$1 out rc=0
    shift
    log "ctest $name"
    out=$(mktemp)
    ctest "$@" ${CTEST_ARGS[@]+"${CTEST_ARGS[@]}"} 2>&1 | tee "$out" || rc=$?
    count_results "$name" "$out" "$rc"
}

# The integration tests mostly wait on LXD, so they run in the background while the other trees
# build: start_ctest NAME ARGS... starts them, finish_ctest prints what they printed and counts it.
BG_NAME=
BG_PID=
BG_OUT=
start_ctest() {
    BG_NAME=$1
    shift
    log "ctest $BG_NAME (started in the background)"
    BG_OUT=$(mktemp)
    ctest "$@" ${CTEST_ARGS[@]+"${CTEST_ARGS[@]}"} >"$BG_OUT" 2>&1 &
    BG_PID=$!
}
finish_ctest() {
    local rc=0
    [[ -n "$BG_PID" ]] || return 0
    log "ctest $BG_NAME (waiting for it)"
    wait "$BG_PID" || rc=$?
    BG_PID=
    cat "$BG_OUT"
    count_results "$BG_NAME" "$BG_OUT" "$rc"
}

# count_results NAME OUTPUT_FILE CTEST_STATUS: adds a ctest run's counts to the totals.
count_results() {
    local name=$1 out=$2 rc=$3 line
    # "95% tests passed, 1 tests failed out of 20"
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -n 1 || true)
    if [[ -n "$line" ]]; then
        local failed total
        failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
        total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
        TOTAL_FAILED=$((TOTAL_FAILED + failed))
        TOTAL_PASSED=$((TOTAL_PASSED + total - failed))
    elif grep -q 'No tests were found' "$out"; then
        echo "test.sh: $name: no tests found" >&2
        rc=1
    fi
    rm -f "$out"
    if ((rc != 0)); then
        FAILED_STEPS+=("$name")
    fi
}

# Every C++ file the repository tracks must already be as the repository's .clang-format has it.
check_format() {
    log "clang-format --dry-run --Werror"
    local -a files
    mapfile -t files < <(git -C "$ROOT" ls-files -- '*.cpp' '*.hpp' '*.h')
    if ! (cd "$ROOT" && clang-format --dry-run --Werror "${files[@]}"); then
        echo "test.sh: files above are not formatted; run: git ls-files '*.cpp' '*.hpp' '*.h' | xargs clang-format -i" >&2
        FAILED_STEPS+=("clang-format")
    fi
}

main() {
    cd "$ROOT"
    if [[ "${BERTH_SKIP_DEPS:-0}" != 1 ]]; then
        log "install dependencies"
        "$ROOT/scripts/install-deps.sh"
    fi

    check_format

    # The unit tests build and run in build-asan/ only: here they would cost a third of the build.
    configure_and_build build all -DCMAKE_BUILD_TYPE=Release -DBERTH_SANITIZE=OFF -DBERTH_UNIT_TESTS=OFF

    # Integration tests put their test beds below this directory, so that
    # whatever a killed test leaves behind is stopped on exit.
    TB_ROOT=$(mktemp -d /tmp/berth-test.XXXXXX)
    chmod 711 "$TB_ROOT" # containers of the test beds below must traverse it
    export BERTH_TB_ROOT=$TB_ROOT
    trap 'finish_ctest >/dev/null 2>&1 || true; cleanup' EXIT
    trap 'exit 130' INT TERM

    if [[ "$INTEGRATION_BUILD" == build ]]; then
        start_ctest "integration (build)" --test-dir "$ROOT/build" -L integration --output-on-failure \
            -j "$INTEGRATION_JOBS"
    fi
    # One clang tree for the sanitizers and the fuzzers (BERTH_FUZZ adds libFuzzer's coverage to
    # ASan+UBSan): -O1 with line tables, which compiles about as fast as gcc's -O0 with full
    # debug information did and runs the unit tests in less than half the time.
    local fuzz=ON
    [[ "${BERTH_SKIP_FUZZ:-0}" == 1 ]] && fuzz=OFF
    # A build-asan/ an older test.sh configured with gcc keeps gcc (CMake caches the compiler).
    if [[ -f "$ROOT/build-asan/CMakeCache.txt" ]] &&
        ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++' "$ROOT/build-asan/CMakeCache.txt"; then
        log "build-asan was configured with another compiler than clang++: removing it"
        rm -rf "$ROOT/build-asan"
    fi
    CC=clang CXX=clang++ NICE=15 configure_and_build build-asan all -DCMAKE_BUILD_TYPE=Debug \
        "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -gline-tables-only" -DBERTH_SANITIZE=ON -DBERTH_FUZZ="$fuzz"
    finish_ctest

    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

    run_ctest "unit (ASan+UBSan)" --test-dir "$ROOT/build-asan" -L unit --output-on-failure -j "$JOBS"
    # The shell tests (label unit) against the Release programs: those are what is shipped.
    run_ctest "shell (Release)" --test-dir "$ROOT/build" -L unit --output-on-failure -j "$JOBS"
    # The .deb scripts/build-deb.sh would make, from build/ (CPack, no second build).
    run_ctest "package (Release)" --test-dir "$ROOT/build" -L package --output-on-failure
    if [[ "$fuzz" == ON ]]; then
        # One after the other: each is capped by time, not work, so running two at once on few
        # cores would only halve what each explores.
        BERTH_FUZZ_SECONDS=${BERTH_FUZZ_SECONDS:-30} \
            run_ctest "fuzz" --test-dir "$ROOT/build-asan" -L fuzz --output-on-failure
    fi
    if [[ "$INTEGRATION_BUILD" != build ]]; then
        run_ctest "integration ($INTEGRATION_BUILD)" --test-dir "$ROOT/$INTEGRATION_BUILD" -L integration \
            --output-on-failure -j "$INTEGRATION_JOBS"
    fi

    log "finished"
    if ((${#FAILED_STEPS[@]} > 0)); then
        printf 'test.sh: FAILED: %s\n' "${FAILED_STEPS[@]}"
    fi
    # A plain closing line for CI.
    echo "berth: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
    ((${#FAILED_STEPS[@]} == 0))
}

main "$@"
