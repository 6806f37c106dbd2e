#!/usr/bin/env bash
# validate_test.sh — `berth validate` from the command line: every example
# fleet in examples/ validates, bad input is reported all at once as
# file:line:col: error: key.path: message with exit 1, and the default file
# is berth.yaml; input limits (--max-file-size) and escaped echo of input.
# Needs no hosts: validate and show contact nothing.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

test_help() {
    run "$BERTH_BIN" --help
    assert_exit 0 "berth --help"
    local verb
    for verb in validate plan show remote; do
        run "$BERTH_BIN" "$verb" --help
        assert_exit 0 "berth $verb --help"
    done
}

test_examples() {
    local f n=0
    # The quickstart fleet takes its URLs from the environment.
    export BERTH_QUICKSTART_A=https://127.0.0.1:18443 BERTH_QUICKSTART_B=https://127.0.0.2:18443
    while IFS= read -r f; do
        # Only fleet files (other YAML, e.g. CI pipelines, may live there too).
        grep -qE '^(remotes|containers):' "$f" || continue
        n=$((n + 1))
        run berth validate -f "$f"
        assert_exit 0 "example ${f#"$BERTH_SOURCE_DIR"/} validates"
    done < <(find "$BERTH_SOURCE_DIR/examples" -name '*.yaml' -o -name '*.yml' 2>/dev/null | sort)
    if ((n > 0)); then _pass "found $n example fleet(s)"; else _fail "no example fleets in examples/"; fi
}

test_bad_file() {
    local bad=$WORK/bad.yaml lines
    cat >"$bad" <<'EOF2'
version: 1
remotes:
  h1: {url: "https://127.0.0.1:18443"}
images:
  bb: {remote: h1, alias: bb}
containers:
  c1:
    remote: nowhere
    image: bb
  c2:
    remote: h1
    image: bb
    state: sideways
  c3:
    remote: h1
    image: bb
    colour: blue
EOF2
    run berth validate -f "$bad"
    assert_exit 1 "a bad file fails validation with exit 1"
    lines=$(grep -cE "^$bad:[0-9]+:[0-9]+: error: " <<<"$OUT"$'\n'"$ERR" || true)
    if ((lines >= 3)); then _pass "all three problems are reported as file:line:col: error: ($lines lines)"; else
        _fail "all three problems are reported as file:line:col: error: (got $lines)" "$(_last_output)"
    fi
    assert_contains "$OUT$ERR" "$bad:8:" "the unknown remote is reported on line 8"
    assert_contains "$OUT$ERR" "containers.c1.remote" "the unknown remote's key path"
    assert_contains "$OUT$ERR" "containers.c2.state" "the bad state's key path"
    assert_contains "$OUT$ERR" "containers.c3.colour" "the unknown key's key path"

    printf 'version: 1\ncontainers: {c1: [\n' >"$bad"
    run berth validate -f "$bad"
    assert_exit 1 "malformed YAML fails with exit 1"
    assert_contains "$OUT$ERR" "$bad:" "malformed YAML is reported with the file name"
}

test_default_file() {
    local dir=$WORK/proj
    mkdir -p "$dir"
    run bash -c 'cd "$1" && "$2" --config-dir "$3" validate' _ "$dir" "$BERTH_BIN" "$BERTH_CFG"
    assert_exit 1 "validate without berth.yaml fails with exit 1"
    assert_contains "$OUT$ERR" "berth.yaml" "the error names berth.yaml"
    cat >"$dir/berth.yaml" <<'EOF2'
version: 1
remotes:
  h1: {url: "https://127.0.0.1:18443"}
containers: {}
EOF2
    run bash -c 'cd "$1" && "$2" --config-dir "$3" validate' _ "$dir" "$BERTH_BIN" "$BERTH_CFG"
    assert_exit 0 "validate reads berth.yaml by default"
}

test_limits() {
    local ok=$WORK/ok.yaml
    printf 'version: 1\nremotes:\n  h1: {url: "https://127.0.0.1:18443"}\ncontainers: {}\n' >"$ok"

    run timeout 20 "$BERTH_BIN" --no-color validate -f /dev/zero
    assert_exit 1 "validate -f /dev/zero ends with exit 1"
    assert_contains "$ERR" "/dev/zero: error: is larger than 16 MiB" "a device is refused at the default limit"
    run berth validate -f "$ok" --max-file-size 10
    assert_exit 1 "a file over --max-file-size fails"
    assert_contains "$ERR" "is larger than 10 bytes" "the error names the limit given"
    assert_contains "$ERR" "raise the limit with --max-file-size" "the error names the flag"
    run berth validate -f "$ok" --max-file-size 1KiB
    assert_exit 0 "a file under --max-file-size validates"
    local size
    for size in 0 64MB 2GiB ten; do
        run berth validate -f "$ok" --max-file-size "$size"
        assert_exit 1 "--max-file-size $size is refused"
        assert_contains "$ERR" "--max-file-size" "the usage error for $size names the flag"
    done
    run timeout 20 "$BERTH_BIN" --no-color show /dev/zero
    assert_exit 1 "show /dev/zero ends with exit 1"
    assert_contains "$ERR" "/dev/zero is larger than 64 MiB" "a saved plan is refused at its default limit"
    run berth plan -f "$ok" --max-response-size 0
    assert_exit 1 "--max-response-size 0 is refused"
    assert_contains "$ERR" "--max-response-size" "the usage error names the flag"
}

test_escaped_echo() {
    local bad=$WORK/escape.yaml
    printf 'version: 1\nremotes:\n  h1: {url: "https://127.0.0.1:18443"}\nimages:\n  bb: {remote: h1, alias: bb}\n' >"$bad"
    printf 'containers:\n  "c\\e]0;title\\a\\e[2J": {remote: h1, image: bb, snapshots: [s1, s1]}\n' >>"$bad"
    run berth validate -f "$bad"
    assert_exit 1 "a file with control characters in a name fails"
    assert_contains "$ERR" "'c\\x1b]0;title\\x07\\x1b[2J'" "the name is shown with its escapes written out"
    assert_contains "$ERR" "'s1' is listed twice" "a repeated snapshot is reported"
    if [[ "$OUT$ERR" == *$'\e'* || "$OUT$ERR" == *$'\a'* ]]; then
        _fail "no raw escape or bell reaches the terminal" "$(_last_output | od -c | head -20)"
    else
        _pass "no raw escape or bell reaches the terminal"
    fi
}

# A state file with damaged pages (a disk error, a copy cut short): every command that reads it
# says so, naming the file, and none aborts.
test_damaged_state_file() {
    local fleet=$WORK/damaged.yaml state=$WORK/damaged/state.db size
    printf 'version: 1\nname: f1\nremotes:\n  h1: {url: "https://127.0.0.1:1"}\nimages:\n  bb: {remote: h1, alias: bb}\ncontainers:\n  c1: {remote: h1, image: bb}\n' >"$fleet"
    run berth apply -f "$fleet" --state "$state" --auto-approve
    assert_exit 1 "an apply with its only remote unreachable makes the state file and fails"
    size=$(stat -c %s "$state")
    # Keep the first page (the header), overwrite every later one.
    head -c $((size - 4096)) /dev/urandom | dd of="$state" bs=4096 seek=1 conv=notrunc status=none
    local cmd
    for cmd in "state intents" "plan -f $fleet" "apply -f $fleet --auto-approve"; do
        # shellcheck disable=SC2086 # the command's words
        run berth $cmd --state "$state"
        assert_exit 1 "berth $cmd on a damaged state file fails, without aborting"
        assert_contains "$ERR" "state file $state" "berth $cmd names the damaged file"
    done
}

main() {
    [[ -x "$BERTH_BIN" ]] || bail "BERTH_BIN '$BERTH_BIN' is not executable"
    test_help
    test_examples
    test_bad_file
    test_default_file
    test_limits
    test_escaped_echo
    test_damaged_state_file
    finish
}

main "$@"
