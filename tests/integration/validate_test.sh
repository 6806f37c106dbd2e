#!/usr/bin/env bash
# validate_test.sh — `berth validate` from the command line: every example
# fleet in examples/ validates, bad input is reported all at once as
# file:line:col: error: key.path: message with exit 1, and the default file
# is berth.yaml. Needs no hosts: validate contacts nothing.
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

main() {
    [[ -x "$BERTH_BIN" ]] || bail "BERTH_BIN '$BERTH_BIN' is not executable"
    test_help
    test_examples
    test_bad_file
    test_default_file
    finish
}

main "$@"
