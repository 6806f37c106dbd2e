#!/usr/bin/env bash
# cli_test.sh — the command line around the engine, on a real LXD host: `validate --json`; the
# fleet file on standard input (`-f -`) for validate, plan, a plan saved from it and applied with
# the same bytes (and refused with others), apply and destroy; `apply PLANFILE -f` refused;
# apply's and destroy's refusal without a terminal (destroy's never suggests a saved plan); a
# markdown plan; an unknown --log-level is an error; one rule for remote names and URLs in
# `remote add` and the fleet file (`my.lab`).
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# run_stdin FILE CMD...: as `run`, with FILE on standard input.
run_stdin() {
    local input=$1 o e
    shift
    o=$(mktemp "$WORK/out.XXXXXX")
    e=$(mktemp "$WORK/err.XXXXXX")
    RC=0
    "$@" <"$input" >"$o" 2>"$e" || RC=$?
    OUT=$(cat "$o")
    ERR=$(cat "$e")
    rm -f "$o" "$e"
}

BAD=
write_bad() {
    BAD=$WORK/bad.yaml
    cat >"$BAD" <<'EOF'
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
EOF
}

test_validate_json() {
    write_bad
    run berth validate -f "$BAD" --json
    assert_exit 1 "validate --json of a bad file exits 1"
    assert_json "validate --json prints JSON"
    assert_eq "" "$ERR" "validate --json writes nothing on stderr"
    assert_jq "$OUT" '.valid' false "valid is false"
    assert_jq "$OUT" '.file' "$BAD" "file is the file given"
    assert_jq "$OUT" '.diagnostics | length' 2 "both problems are there"
    assert_jq "$OUT" '.diagnostics[0] | [.severity, .file, .line, .column, .path] | map(tostring) | join(" ")' \
        "error $BAD 8 13 containers.c1.remote" "the first has severity, file, line, column and key path"
    assert_jq "$OUT" '.diagnostics[0].message' "unknown remote 'nowhere'" "its message"
    assert_jq "$OUT" '.diagnostics[0].hint | startswith("declare it under remotes:")' true "its hint"
    assert_jq "$OUT" '.diagnostics[1].path' containers.c2.state "the second is the bad state"

    local good=$WORK/good.yaml
    printf 'version: 1\nremotes:\n  h1: {url: "https://127.0.0.1:18443"}\n' >"$good"
    run berth validate -f "$good" --json
    assert_exit 0 "validate --json of a good file exits 0"
    assert_jq "$OUT" '[.valid, (.diagnostics | length)] | map(tostring) | join(" ")' "true 0" "valid, no diagnostics"

    run berth validate -f "$WORK/missing.yaml" --json
    assert_exit 1 "validate --json of a missing file exits 1"
    assert_jq "$OUT" '.diagnostics[0] | [.message, (.line | tostring), .file] | join("|")' "no such file|null|$WORK/missing.yaml" \
        "a missing file: its message, no line"

    run_stdin "$BAD" berth validate -f - --json
    assert_exit 1 "validate -f - --json"
    assert_jq "$OUT" '[.file, .diagnostics[0].file, (.diagnostics[0].line | tostring)] | join(" ")' "- <stdin> 8" \
        "read from standard input, the diagnostics name <stdin>"
    run_stdin "$BAD" berth validate -f -
    assert_exit 1 "validate -f - (text)"
    assert_contains "$ERR" "<stdin>:8:13: error: containers.c1.remote: unknown remote 'nowhere'" \
        "text diagnostics name <stdin>"
    run_stdin "$good" berth validate -f -
    assert_exit 0 "validate -f - of a good file"
    assert_contains "$OUT" "<stdin>: valid (1 remotes" "validate -f - says <stdin> is valid"
}

test_log_level() {
    write_bad
    run berth --log-level loud validate -f "$BAD"
    assert_exit 1 "an unknown --log-level is an error"
    assert_contains "$ERR" "--log-level: 'loud' is not a log level" "the error names the option and the value"
    assert_not_contains "$ERR" "containers.c1" "nothing else ran"
    run env BERTH_LOG_LEVEL=loud "$BERTH_BIN" --config-dir "$BERTH_CFG" validate -f "$BAD"
    assert_exit 1 "an unknown BERTH_LOG_LEVEL is an error"
    assert_contains "$ERR" "BERTH_LOG_LEVEL: 'loud'" "the error names the variable"
    run berth --log-level debug validate -f "$BAD"
    assert_exit 1 "a known --log-level runs the command"
    assert_contains "$ERR" "containers.c1.remote" "the command ran"
}

FLEET=
write_fleet() {
    FLEET=$WORK/fleet.yaml
    cat >"$FLEET" <<EOF
version: 1
remotes:
  my.lab: {url: "${TB_HOST1_URL}"}
images:
  bb: {remote: my.lab, alias: bb}
containers:
  c1: {remote: my.lab, image: bb, config: {user.note: "$1"}}
EOF
}

test_remote_names_and_urls() {
    # A name with a dot: `remote add` and the fleet file agree on it now.
    run berth remote add my.lab "$TB_HOST1_URL" --password "$(tb_password 1)" --accept-certificate
    assert_exit 0 "remote add my.lab"
    write_fleet one
    run berth validate -f "$FLEET"
    assert_exit 0 "a fleet file with remote my.lab validates"
    run berth remote add --accept-certificate -- -x "$TB_HOST1_URL"
    assert_exit 1 "remote add -x is refused"
    assert_contains "$ERR" "must not start with '.' or '-'" "with the fleet file's rule"
    run berth remote add h9 "https://$TB_HOST1_ADDR/1.0" --accept-certificate
    assert_exit 1 "remote add with a path in the URL is refused"
    assert_contains "$ERR" "no path, query or fragment" "with the fleet file's reason"
    # An underscore in a host name is taken (as lxc takes it); it just does not resolve here.
    run timeout 60 "$BERTH_BIN" --config-dir "$BERTH_CFG" --no-color remote add h9 "https://no_such_host.invalid:8443" \
        --accept-certificate
    assert_exit 1 "remote add of an unresolvable host fails"
    assert_not_contains "$ERR" "may contain only" "'_' in a host name is not a URL error"
}

test_stdin_plan_and_apply() {
    write_fleet one
    run_stdin "$FLEET" berth plan -f - --json
    assert_exit 0 "plan -f -"
    assert_jq "$OUT" "$ACTION_SET" "launch my.lab:c1" "the plan from standard input launches c1"
    assert_jq "$OUT" '.fleet.path' - "the plan records the fleet as -"

    run_stdin "$FLEET" berth plan -f - --out "$WORK/saved.plan"
    assert_exit 0 "plan -f - --out"
    run berth show "$WORK/saved.plan"
    assert_contains "$OUT" "from the fleet file read on standard input" "show says where the fleet came from"

    run berth_t apply "$WORK/saved.plan" -f "$FLEET"
    check_hung apply
    assert_exit 1 "apply PLANFILE -f FILE is an error"
    assert_contains "$ERR" "-f cannot be given with a saved plan" "the error says why"
    assert_eq absent "$(lxc_status h1 c1)" "nothing was applied"

    write_fleet two
    run_stdin "$FLEET" berth_t apply "$WORK/saved.plan"
    check_hung apply
    assert_exit 1 "a plan saved from stdin is refused with other bytes on stdin"
    assert_contains "$ERR" "another version of the fleet file read on standard input" "the refusal says why"
    assert_eq absent "$(lxc_status h1 c1)" "nothing was applied"

    write_fleet one
    run_stdin "$FLEET" berth_t apply "$WORK/saved.plan"
    check_hung apply
    assert_exit 0 "the plan saved from stdin is applied with the same bytes on stdin"
    assert_eq Running "$(lxc_status h1 c1)" "c1 runs"

    write_fleet two
    run berth_t apply -f "$FLEET"
    check_hung apply
    assert_exit 1 "apply -f FILE without a terminal and without --auto-approve refuses"
    assert_contains "$ERR" "stdin is not a terminal; pass --auto-approve" "the refusal says why"
    assert_eq one "$(lxc_config h1 c1 user.note)" "nothing changed"
    run berth_t plan -f "$FLEET" --format markdown
    assert_exit 0 "plan --format markdown"
    assert_contains "$OUT" "**Plan:** 1 to update." "the markdown summary line"
    assert_contains "$OUT" '| `~ update` | `my.lab:c1` | `config.user.note: "one" -> "two"` |' "the change in the remote's table"

    run_stdin "$FLEET" berth_t apply -f -
    check_hung apply
    assert_exit 1 "apply -f - without --auto-approve refuses"
    assert_contains "$ERR" "standard input carries the fleet file (-f -); pass --auto-approve" "the refusal says why"
    assert_eq one "$(lxc_config h1 c1 user.note)" "nothing changed"
    run_stdin "$FLEET" berth_t apply -f - --auto-approve
    check_hung apply
    assert_exit 0 "apply -f - --auto-approve"
    assert_eq two "$(lxc_config h1 c1 user.note)" "the change from standard input was applied"
}

test_destroy() {
    write_fleet two
    run berth_t destroy -f "$FLEET"
    check_hung destroy
    assert_exit 1 "destroy without a terminal and without --auto-approve refuses"
    assert_contains "$ERR" "pass --auto-approve" "the refusal says what to pass"
    assert_not_contains "$ERR" "saved plan" "destroy's refusal does not suggest a saved plan"
    assert_eq Running "$(lxc_status h1 c1)" "nothing was destroyed"
    run_stdin "$FLEET" berth_t destroy -f - --auto-approve
    check_hung destroy
    assert_exit 0 "destroy -f - --auto-approve"
    assert_eq absent "$(lxc_status h1 c1)" "c1 is gone"
}

main() {
    [[ -x "$BERTH_BIN" ]] || bail "BERTH_BIN '$BERTH_BIN' is not executable"
    test_validate_json
    test_log_level
    tb_start 1
    test_remote_names_and_urls
    test_stdin_plan_and_apply
    test_destroy
    finish
}

main "$@"
