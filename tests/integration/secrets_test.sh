#!/usr/bin/env bash
# secrets_test.sh — sensitive values never leave berth in any readable form, on real LXD hosts.
#
# A secret with `"`, `\` and `/` in it comes from the environment (`${env:API_TOKEN}`), two
# literal values are marked with the file's and a container's `sensitive:` lists. They go
# through plan, plan --json, plan --out + show (text and JSON), apply of the saved plan, a
# value changed by hand on the host (plan, plan --out + show, apply), a failing apply whose
# invalid values LXD rejects with errors that echo them, plain (limits.memory) and quoted with
# `\"` and `\\` (boot.autostart), in text and --json, a saved plan applied after its
# environment variable changed (refused: exit 1, naming the action and key) and applied again
# with the right value, all with --log-level trace. Then every captured stdout and stderr,
# every file berth wrote (the state file with its -wal and -shm files, kept alive by a reader
# that holds the database open, and copies of them), the saved plans and the config dir are
# searched for each secret in its literal, JSON-escaped, twice JSON-escaped, base64 and hex
# forms: zero hits. Also: the plans say (sensitive) and still show the plain keys, the
# containers really get the values, the state file is 0600 in a 0700 directory berth created.
# shellcheck disable=SC2016 # jq filters use jq's $variables; ${env:...} is berth's syntax
# shellcheck disable=SC2089,SC2090 # the quotes and backslashes in the secrets are meant literally
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE_DIR=$WORK/state/dir # not created here: berth creates it
STATE=$STATE_DIR/state.db
export BERTH_STATE=$STATE
FLEET=$WORK/fleet.yaml
OUTDIR=$WORK/out
PLANS=$WORK/plans
COPIES=$WORK/state-copies
mkdir -p "$OUTDIR" "$PLANS" "$COPIES"

# The secrets, by name (SNAMES[i] is the name of SVALS[i]); every one is searched for at the end.
SNAMES=()
SVALS=()
secret() {
    SNAMES+=("$1")
    SVALS+=("$2")
    add_secret "$2"
}

API_TOKEN='S3cr"et\with/slash-'$RANDOM$RANDOM
export API_TOKEN
TOKEN1=$API_TOKEN
secret API_TOKEN "$TOKEN1"
LIT_OWN='Own"lit\sec/ret-'$RANDOM$RANDOM    # c2's user.secret, listed in c2's sensitive:
secret c2.user.secret "$LIT_OWN"
LIT_TOP='Top"lit\sec/ret-'$RANDOM$RANDOM    # c2's user.apikey, listed in the file's sensitive:
secret c2.user.apikey "$LIT_TOP"
DRIFT='Dr1ft"host\val/ue-'$RANDOM$RANDOM     # set on the host by hand
secret drifted-host-value "$DRIFT"
BAD_VALUE='not/a"val\id-'$RANDOM$RANDOM     # LXD rejects it, echoing it plain and %q-quoted
export BAD_VALUE
secret BAD_VALUE "$BAD_VALUE"
PLANNED='Pl4nned"tok\en/a-'$RANDOM$RANDOM    # API_TOKEN when a plan is saved
secret API_TOKEN-planned "$PLANNED"
CHANGED='Ch4nged"tok\en/b-'$RANDOM$RANDOM    # API_TOKEN when that plan is applied
secret API_TOKEN-changed "$CHANGED"

HOLDER_PID=
stop_holder() {
    if [[ -n "$HOLDER_PID" ]]; then
        kill "$HOLDER_PID" 2>/dev/null || true
        wait "$HOLDER_PID" 2>/dev/null || true
        HOLDER_PID=
    fi
}
# errexit is off in the trap: (exit "$rc") only hands the status on to lib.sh's _cleanup.
trap 'rc=$?; set +e; stop_holder; (exit "$rc"); _cleanup' EXIT

# Every form of every secret must also be masked in failure messages.
# json_escaped S: S as it appears inside a JSON string; json_escaped_twice: inside a JSON string
# that is itself inside a JSON string (an error echoing a value %q-quoted, then JSON-encoded).
json_escaped() { jq -n --arg s "$1" '$s' | sed -e 's/^"//' -e 's/"$//'; }
json_escaped_twice() { json_escaped "$(json_escaped "$1")"; }
b64() { printf %s "$1" | base64 -w0; }
hex() { printf %s "$1" | xxd -p | tr -d '\n'; }
for s in "${SVALS[@]}"; do
    add_secret "$(json_escaped "$s")"
    add_secret "$(json_escaped_twice "$s")"
    add_secret "$(b64 "$s")"
    add_secret "$(hex "$s")"
done

# C1_EXTRA, C3: what write_fleet adds for the failing apply.
C1_EXTRA=
C3=
write_fleet() {
    tb_fleet_header "$FLEET"
    cat >>"$FLEET" <<EOF
sensitive: [user.apikey]
containers:
  c1:
    remote: h1
    image: bb
    config: {environment.API_TOKEN: "\${env:API_TOKEN}", user.plain: visible${C1_EXTRA}}
  c2:
    remote: h1
    image: bb
    sensitive: [user.secret]
    config: {user.secret: '${LIT_OWN}', user.apikey: '${LIT_TOP}', user.other: shown-too}
${C3}
EOF
}

# b NAME ARGS...: berth (with a timeout) with its stdout and stderr kept in $OUTDIR/NN-NAME.out
# and .err; sets OUT, ERR, RC like `run`.
STEP=0
b() {
    local name=$1 o e
    shift
    STEP=$((STEP + 1))
    o=$(printf '%s/%02d-%s.out' "$OUTDIR" "$STEP" "$name")
    e=${o%.out}.err
    RC=0
    berth_t "$@" >"$o" 2>"$e" </dev/null || RC=$?
    OUT=$(cat "$o")
    ERR=$(cat "$e")
    check_hung "$name"
}

# What a process in the container sees in its environment (never printed).
container_env() { tb_lxc exec "$1:$2" -- sh -c "printf %s \"\$$3\"" 2>/dev/null || echo "<exec failed>"; }

# assert_secret_eq EXPECTED ACTUAL MSG: like assert_eq, but neither value is shown.
assert_secret_eq() {
    if [[ "$1" == "$2" ]]; then _pass "$3"; else _fail "$3" "the values differ (not shown)"; fi
}

# ---------------------------------------------------------------- 1: plan, saved plan, apply

test_first_apply() {
    local p=$PLANS/first.plan
    write_fleet

    b plan --log-level trace plan -f "$FLEET" --state "$STATE"
    assert_exit 0 "plan (trace) succeeds"
    assert_contains "$OUT" "launch    h1:c1" "the plan launches c1"
    assert_contains "$ERR" "debug:" "--log-level trace logs"
    if [[ ! -e "$STATE_DIR" ]]; then
        _pass "plan does not create the state directory"
    else
        _fail "plan does not create the state directory" "$STATE_DIR exists"
    fi

    b plan-json --log-level trace plan -f "$FLEET" --state "$STATE" --json
    assert_exit 0 "plan --json succeeds"
    assert_json "plan --json is JSON"
    assert_jq "$OUT" '.actions[] | select(.id == "launch h1:c1") | .after.config["environment.API_TOKEN"]' \
        "(sensitive)" "plan --json: c1's API_TOKEN is (sensitive)"
    assert_jq "$OUT" '.actions[] | select(.id == "launch h1:c1") | .after.config["user.plain"]' \
        visible "plan --json: c1's user.plain is shown"
    assert_jq "$OUT" '.actions[] | select(.id == "launch h1:c2") | .after.config | "\(.["user.secret"]) \(.["user.apikey"]) \(.["user.other"])"' \
        "(sensitive) (sensitive) shown-too" "plan --json: c2's listed keys are (sensitive), user.other is shown"

    b plan-out --log-level trace plan -f "$FLEET" --state "$STATE" --out "$p"
    assert_exit 0 "plan --out saves a plan"
    assert_eq 600 "$(stat -c %a "$p")" "the saved plan is 0600"
    assert_jq "$(cat "$p")" '[.. | strings | select(startswith("scrypt$"))] | length > 0' true \
        "the saved plan keeps scrypt digests"

    b show show "$p"
    assert_exit 0 "show of the saved plan"

    b show-json show "$p" --json
    assert_exit 0 "show --json of the saved plan"
    assert_json "show --json is JSON"
    assert_jq "$OUT" '.actions[] | select(.id == "launch h1:c1") | .after.config | "\(.["environment.API_TOKEN"]) \(.["user.plain"])"' \
        "(sensitive) visible" "show --json: c1's API_TOKEN is (sensitive), user.plain is shown"

    b apply-saved --log-level trace apply "$p" --state "$STATE"
    assert_exit 0 "apply of the saved plan (trace) exits 0"
    assert_secret_eq "$TOKEN1" "$(lxc_config h1 c1 environment.API_TOKEN)" "c1 has API_TOKEN exactly on the host"
    assert_secret_eq "$TOKEN1" "$(container_env h1 c1 API_TOKEN)" "a process in c1 sees API_TOKEN exactly"
    assert_eq visible "$(lxc_config h1 c1 user.plain)" "c1 has user.plain"
    assert_secret_eq "$LIT_OWN" "$(lxc_config h1 c2 user.secret)" "c2 has user.secret exactly"
    assert_secret_eq "$LIT_TOP" "$(lxc_config h1 c2 user.apikey)" "c2 has user.apikey exactly"

    assert_eq 700 "$(stat -c %a "$STATE_DIR")" "the state directory berth created is 0700"
    assert_eq 600 "$(stat -c %a "$STATE")" "the state file is 0600"
    cp "$STATE" "$COPIES/after-first-apply.db"

    b plan-empty plan -f "$FLEET" --state "$STATE" --detailed-exitcode
    assert_exit 0 "plan is empty after the apply"
}

# ---------------------------------------------------------------- holding the state file open

# A reader that keeps the database open: berth's connection is then not the last one, so SQLite
# neither checkpoints nor deletes state.db-wal and -shm when berth exits.
start_holder() {
    local ready=$WORK/holder.ready i
    /usr/bin/python3 - "$STATE" "$ready" <<'PY' &
import signal, sqlite3, sys, time
def stop(*_):
    raise SystemExit(0)
signal.signal(signal.SIGTERM, stop)
c = sqlite3.connect(sys.argv[1])
c.execute("select count(*) from sqlite_master").fetchall()
open(sys.argv[2], "w").close()
try:
    time.sleep(900)
finally:
    c.close()  # the last connection: SQLite checkpoints the WAL into state.db
PY
    HOLDER_PID=$!
    for ((i = 0; i < 200; i++)); do
        [[ -e "$ready" ]] && return 0
        sleep 0.05
    done
    bail "the reader holding the state file open did not start"
}

# ---------------------------------------------------------------- 2: drift on the host

test_drift() {
    tb_lxc_q config set h1:c1 environment.API_TOKEN "$DRIFT"
    tb_lxc_q config set h1:c1 user.plain hand-edited
    assert_secret_eq "$DRIFT" "$(lxc_config h1 c1 environment.API_TOKEN)" "the host's value was changed by hand"

    b drift-plan --log-level trace plan -f "$FLEET" --state "$STATE"
    assert_exit 0 "plan after the drift succeeds"
    assert_contains "$OUT" "config.environment.API_TOKEN: (sensitive) -> (sensitive)" \
        "the plan text shows the drifted key as (sensitive) on both sides"
    assert_contains "$OUT" "config.user.plain" "the plan text still shows user.plain"
    assert_contains "$OUT" "hand-edited" "with its value on the host"
    assert_contains "$OUT" "visible" "and its declared value"

    b drift-plan-json --log-level trace plan -f "$FLEET" --state "$STATE" --json
    assert_exit 0 "plan --json after the drift succeeds"
    assert_jq "$OUT" '.actions[] | select(.id == "update h1:c1") | .changes[] | select(.path == "config.environment.API_TOKEN") | "\(.before) \(.after)"' \
        "(sensitive) (sensitive)" "plan --json: the change is (sensitive) on both sides"

    b drift-plan-out --log-level trace plan -f "$FLEET" --state "$STATE" --out "$PLANS/drift.plan"
    assert_exit 0 "plan --out after the drift succeeds"
    b drift-show show "$PLANS/drift.plan"
    assert_exit 0 "show of the drift plan"
    assert_contains "$OUT" "config.environment.API_TOKEN: (sensitive) -> (sensitive)" "show: (sensitive) on both sides"
    assert_contains "$OUT" "visible" "show: the plain value"
    b drift-show-json show "$PLANS/drift.plan" --json
    assert_exit 0 "show --json of the drift plan"
    assert_jq "$OUT" '.actions[] | select(.id == "update h1:c1") | [.changes[] | "\(.path)=\(.before)->\(.after)"] | join(",")' \
        "config.environment.API_TOKEN=(sensitive)->(sensitive),config.user.plain=hand-edited->visible" \
        "show --json: the sensitive change is masked, the plain one is not"

    b drift-apply --log-level trace apply -f "$FLEET" --auto-approve --state "$STATE"
    assert_exit 0 "apply --auto-approve after the drift exits 0"
    assert_secret_eq "$TOKEN1" "$(lxc_config h1 c1 environment.API_TOKEN)" "the host has the declared API_TOKEN again"
    assert_secret_eq "$TOKEN1" "$(container_env h1 c1 API_TOKEN)" "a process in c1 sees it"
    assert_eq visible "$(lxc_config h1 c1 user.plain)" "and user.plain is back"
}

# ---------------------------------------------------------------- 3: a failing apply

test_failing_apply() {
    # LXD 5.0 says "Invalid value: VALUE" for limits.memory and
    # `Invalid value for a boolean "VALUE"` (Go's %q: \" and \\) for boot.autostart.
    C1_EXTRA=', boot.autostart: "${env:BAD_VALUE}"'
    C3='  c3: {remote: h1, image: bb, config: {limits.memory: "${env:BAD_VALUE}"}}'
    write_fleet

    b bad-plan --log-level trace plan -f "$FLEET" --state "$STATE"
    assert_exit 0 "plan with invalid values from the environment succeeds"

    b bad-apply --log-level trace apply -f "$FLEET" --auto-approve --state "$STATE"
    assert_exit 1 "apply that LXD rejects exits 1"
    assert_contains "$OUT" "Invalid value" "the failure says what LXD said"
    assert_eq absent "$(lxc_status h1 c3)" "c3 was not created"
    assert_eq "<unset>" "$(lxc_config h1 c1 boot.autostart)" "c1's boot.autostart was not set"
    log "the failing apply said: $(_mask "$(grep 'failed: ' <<<"$OUT" || true)" | tr '\n' ' ')"

    b bad-apply-json --log-level trace apply -f "$FLEET" --auto-approve --state "$STATE" --json
    assert_exit 1 "the same apply with --json exits 1"

    C1_EXTRA=
    C3=
    write_fleet
}

# ---------------------------------------------------------------- 4: a saved plan whose secret changed

test_saved_plan_secret_changed() {
    local p=$PLANS/changed.plan
    export API_TOKEN=$PLANNED
    b changed-plan-out --log-level trace plan -f "$FLEET" --state "$STATE" --out "$p"
    assert_exit 0 "plan --out with a new API_TOKEN"
    b changed-show-json show "$p" --json
    assert_jq "$OUT" '[.actions[].id] | join(",")' "update h1:c1" "the saved plan updates c1"

    export API_TOKEN=$CHANGED
    b changed-apply --log-level trace apply "$p" --state "$STATE"
    assert_exit 1 "apply of the saved plan after API_TOKEN changed exits 1"
    assert_contains "$ERR" "update h1:c1" "the refusal names the action"
    assert_contains "$ERR" "config.environment.API_TOKEN" "the refusal names the key"
    assert_secret_eq "$TOKEN1" "$(lxc_config h1 c1 environment.API_TOKEN)" "the host's value is unchanged"

    export API_TOKEN=$PLANNED
    b planned-apply --log-level trace apply "$p" --state "$STATE"
    assert_exit 0 "with the value it was made with, the saved plan applies"
    assert_secret_eq "$PLANNED" "$(lxc_config h1 c1 environment.API_TOKEN)" "the host has the planned value exactly"
    assert_secret_eq "$PLANNED" "$(container_env h1 c1 API_TOKEN)" "a process in c1 sees it"
}

# ---------------------------------------------------------------- 5: search everything

# leak_context FILE NEEDLE: a few bytes around the first hit, the needle replaced, bytes other
# than printable ASCII as \xNN.
leak_context() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
needle = sys.argv[2].encode()
i = data.find(needle)
ctx = data[max(0, i - 60):i + len(needle) + 60].replace(needle, b"<NEEDLE>")
print("".join(chr(c) if 0x20 <= c < 0x7f else "\\x%02x" % c for c in ctx)[:400])
PY
}

search_everything() {
    local -a places=("$OUTDIR" "$WORK/state" "$COPIES" "$PLANS" "$BERTH_CFG")
    local i form needle hits f ctx
    for ((i = 0; i < ${#SVALS[@]}; i++)); do
        for form in literal json-escaped json-escaped-twice base64 hex; do
            case "$form" in
                literal) needle=${SVALS[i]} ;;
                json-escaped) needle=$(json_escaped "${SVALS[i]}") ;;
                json-escaped-twice) needle=$(json_escaped_twice "${SVALS[i]}") ;;
                base64) needle=$(b64 "${SVALS[i]}") ;;
                hex) needle=$(hex "${SVALS[i]}") ;;
            esac
            hits=$(grep -rlF -- "$needle" "${places[@]}" 2>/dev/null || true)
            if [[ -z "$hits" ]]; then
                _pass "no $form ${SNAMES[i]} anywhere berth wrote"
            else
                local -a lines=()
                while IFS= read -r f; do
                    ctx=$(leak_context "$f" "$needle")
                    lines+=("${f#"$WORK"/}: $ctx")
                done <<<"$hits"
                _fail "no $form ${SNAMES[i]} anywhere berth wrote" "${lines[@]}"
            fi
        done
    done
}

test_search() {
    local f
    # The state file's -wal and -shm, while the reader keeps them, and copies of them.
    for f in "$STATE" "$STATE-wal" "$STATE-shm"; do
        if [[ -e "$f" ]]; then
            _pass "$(basename "$f") exists"
            assert_eq 600 "$(stat -c %a "$f")" "$(basename "$f") is 0600"
            cp "$f" "$COPIES/held-$(basename "$f")"
        else
            _fail "$(basename "$f") exists" "not found in $STATE_DIR"
        fi
    done
    log "searched while held open: $(cd "$WORK" && find out state state-copies plans config -type f | wc -l) files"
    search_everything
    # And once more after the reader let go (SQLite checkpoints the WAL into state.db).
    stop_holder
    log "after the reader let go: $(find "$STATE_DIR" -type f -printf '%f ')"
    assert_eq 600 "$(stat -c %a "$STATE")" "the state file is still 0600"
    assert_eq 700 "$(stat -c %a "$STATE_DIR")" "its directory is still 0700"
    search_everything
}

tb_start 2
add_remotes
test_first_apply
start_holder
test_drift
test_failing_apply
test_saved_plan_secret_changed
test_search
finish
