#!/usr/bin/env bash
# cli_format_test.sh — the output format flags and the no-prompt rule, driven through the berth
# built here without a real host: `--format text|json|markdown` on every command that has
# `--json`, `--json` the same as `--format json`, the two disagreeing is an error, markdown refused
# (naming the commands that print it) where it is not printed; `berth plan --format markdown` and
# `berth show PLANFILE --format markdown` against a small fake LXD (python3, a unix socket, GET
# only); and apply and destroy without --auto-approve and without a terminal refuse at once, with
# "yes" on standard input or nothing, and send the host nothing but reads.
#
# Environment: BERTH_BIN (the berth built), BERTH_SOURCE_DIR (the source tree).
set -euo pipefail

readonly BERTH=${BERTH_BIN:?BERTH_BIN must name the berth executable to test}
[[ -x $BERTH ]] || { echo "cli_format_test: $BERTH is not executable" >&2; exit 1; }
PY=$(command -v python3 || true)
if [[ -z $PY ]]; then
    echo "cli_format_test: FAILED, not run: python3 is not installed (it plays the LXD host)" >&2
    exit 1
fi

WORK=$(mktemp -d)
readonly WORK
FAKE_PID=
cleanup() {
    [[ -z $FAKE_PID ]] || kill "$FAKE_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -m 700 "$WORK/config"
export NO_COLOR=1
FAILURES=0
OUT=
ERR=
RC=0
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    FAILURES=$((FAILURES + 1))
}
ok() { printf 'ok: %s\n' "$*"; }

# run CMD...: berth with a private config dir and state file, stdin from /dev/null unless STDIN
# names a file; OUT, ERR and RC. Never more than 60 s: a prompt that waits would hang here.
run() {
    RC=0
    timeout -k 5 60 "$BERTH" --config-dir "$WORK/config" "$@" <"${STDIN:-/dev/null}" >"$WORK/out" 2>"$WORK/err" ||
        RC=$?
    OUT=$(cat "$WORK/out")
    ERR=$(cat "$WORK/err")
    ((RC != 124 && RC != 137)) || fail "berth $* did not finish within 60 s (it waited for an answer?)"
}
expect_rc() { if [[ $RC == "$1" ]]; then ok "$2"; else fail "$2: exit $RC, not $1; stderr: $ERR"; fi; }
expect_in() { if [[ $1 == *"$2"* ]]; then ok "$3"; else fail "$3: no '$2' in: $1"; fi; }
expect_not_in() { if [[ $1 != *"$2"* ]]; then ok "$3"; else fail "$3: '$2' in: $1"; fi; }

# --- the flags, without a host ---------------------------------------------------------------------

cat >"$WORK/offline.yaml" <<'EOF'
version: 1
remotes:
  h1: {url: "unix:///nonexistent/berth-test.socket"}
images:
  bb: {remote: h1, alias: bb}
containers:
  c1: {remote: h1, image: bb}
EOF

run validate -f "$WORK/offline.yaml" --json
expect_rc 0 "validate --json"
json_out=$OUT
run validate -f "$WORK/offline.yaml" --format json
expect_rc 0 "validate --format json"
if [[ $OUT == "$json_out" ]]; then
    ok "--format json prints what --json prints"
else
    fail "--format json differs from --json"
fi
run validate -f "$WORK/offline.yaml" --json --format json
expect_rc 0 "--json with --format json agree"
run validate -f "$WORK/offline.yaml" --format text
expect_rc 0 "validate --format text"
expect_in "$OUT" "valid (1 remotes" "--format text is the text form"

for command in "validate -f $WORK/offline.yaml" "plan -f $WORK/offline.yaml" "show $WORK/none.plan" \
    "apply -f $WORK/offline.yaml" "destroy -f $WORK/offline.yaml" "history" "state intents" "remote list"; do
    # shellcheck disable=SC2086 # a command and its arguments
    run $command --json --format text
    expect_rc 1 "berth ${command%% -*}: --json --format text is an error"
    expect_in "$ERR" "--json and --format text disagree: --json is --format json; give one of them" \
        "berth ${command%% -*}: the error says why"
    if [[ -z $OUT ]]; then
        ok "berth ${command%% -*}: nothing on stdout"
    else
        fail "berth ${command%% -*} printed: $OUT"
    fi
done

for command in "validate -f $WORK/offline.yaml" "apply -f $WORK/offline.yaml" "destroy -f $WORK/offline.yaml" \
    "history" "state intents" "remote list"; do
    # shellcheck disable=SC2086
    run $command --format markdown
    expect_rc 1 "berth ${command%% -*} --format markdown is refused"
    expect_in "$ERR" "--format markdown is not available here" "berth ${command%% -*}: refused with a reason"
    expect_in "$ERR" "only berth plan and berth show take it" "berth ${command%% -*}: the refusal names who prints it"
done
run plan -f "$WORK/offline.yaml" --json --format markdown
expect_rc 1 "plan --json --format markdown disagree"
expect_in "$ERR" "--json and --format markdown disagree" "the error names both"
run plan -f "$WORK/offline.yaml" --format yaml
expect_rc 1 "an unknown format is a usage error"
expect_in "$ERR" "'yaml' is not a format: text, json or markdown" "the error lists the formats"
run history --state "$WORK/none.db" --format json
expect_rc 0 "history --format json"
if [[ $OUT == "[]" ]]; then ok "history --format json prints JSON"; else fail "history --format json printed: $OUT"; fi

# An unknown remote: the markdown plan says so, and is incomplete (exit 1).
run plan -f "$WORK/offline.yaml" --state "$WORK/state.db" --format markdown --out "$WORK/offline.plan"
expect_rc 1 "an incomplete plan exits 1 in markdown too"
expect_in "$OUT" "### berth plan: \`$WORK/offline.yaml\`" "the heading names the fleet file"
expect_in "$OUT" "**Unknown**: " "the unknown remote is said"
expect_in "$OUT" "**Plan incomplete:** 1 remote unknown (h1)." "the plan is marked incomplete"
expect_not_in "$OUT" "Saved the plan" "markdown is the document only"
if [[ ${OUT##*$'\n'} == "</details>" ]]; then
    ok "the markdown ends with the collapsed block"
else
    fail "ends: ${OUT##*$'\n'}"
fi
run show "$WORK/offline.plan" --format markdown
expect_rc 0 "show --format markdown"
expect_in "$OUT" "Saved plan $WORK/offline.plan, made " "show says which saved plan"
expect_in "$OUT" "<details><summary>Full plan</summary>" "show prints the full plan block"

# --- a fake host: a plan with changes ----------------------------------------------------------------

readonly SOCKET=$WORK/lxd.socket REQUESTS=$WORK/requests
"$PY" - "$SOCKET" "$REQUESTS" <<'PY' &
import http.server, json, socketserver, sys

socket_path, log_path = sys.argv[1], sys.argv[2]
answers = {
    "/1.0": {"api_version": "1.0", "auth": "trusted", "api_extensions": [], "environment": {}},
    "/1.0/storage-pools": [],
    "/1.0/images/aliases?recursion=1": [{"name": "bb", "target": "abc"}],
    "/1.0/instances?recursion=1": [],
}

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self):
        with open(log_path, "a") as log:
            log.write(f"{self.command} {self.path}\n")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_GET(self):
        self.record()
        if self.path in answers:
            self.answer(200, {"type": "sync", "status": "Success", "status_code": 200, "metadata": answers[self.path]})
        else:
            self.answer(404, {"type": "error", "error": "not found", "error_code": 404})

    def refuse(self):
        self.record()
        self.answer(500, {"type": "error", "error": "this fake host only answers reads", "error_code": 500})

    do_POST = do_PUT = do_PATCH = do_DELETE = refuse

class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("fake", 0)

Server(socket_path, Handler).serve_forever()
PY
FAKE_PID=$!
for _ in $(seq 100); do [[ -S $SOCKET ]] && break; sleep 0.1; done
[[ -S $SOCKET ]] || { echo "cli_format_test: the fake host did not start" >&2; exit 1; }

cat >"$WORK/fleet.yaml" <<EOF
version: 1
remotes:
  h1: {url: "unix://$SOCKET"}
images:
  bb: {remote: h1, alias: bb}
containers:
  c1: {remote: h1, image: bb}
EOF

run plan -f "$WORK/fleet.yaml" --state "$WORK/state.db" --format markdown
expect_rc 0 "plan --format markdown against the fake host"
expect_in "$OUT" "**Plan:** 1 to launch." "the summary line"
expect_in "$OUT" "| \`+ launch\` | \`h1:c1\` |" "the launch is a row of h1's table"
run plan -f "$WORK/fleet.yaml" --state "$WORK/state.db" --format json
expect_rc 0 "plan --format json against the fake host"
expect_in "$OUT" '"action": "launch"' "--format json prints the JSON plan"

# No prompt without a terminal: refused at once, whatever standard input holds, and nothing sent.
: >"$REQUESTS"
run apply -f "$WORK/fleet.yaml" --state "$WORK/state.db"
expect_rc 1 "apply without --auto-approve and without a terminal refuses"
expect_in "$ERR" "refusing to apply without confirmation: stdin is not a terminal; pass --auto-approve" \
    "the refusal says why and what to pass"
printf 'yes\n' >"$WORK/yes"
STDIN=$WORK/yes run apply -f "$WORK/fleet.yaml" --state "$WORK/state.db"
expect_rc 1 "\"yes\" on a standard input that is not a terminal is no consent"
expect_not_in "$ERR" "Do you want to" "no question is asked"
STDIN=$WORK/yes run destroy -f "$WORK/fleet.yaml" --state "$WORK/state.db" --format json
expect_rc 0 "destroy of a fleet that owns nothing has nothing to ask"
if grep -qv '^GET ' "$REQUESTS"; then
    fail "the host got more than reads: $(grep -v '^GET ' "$REQUESTS" | head -3)"
else
    ok "the host got only reads"
fi
run apply -f "$WORK/fleet.yaml" --state "$WORK/state.db" --format json
expect_rc 1 "apply --format json refuses without a terminal too"
expect_in "$ERR" "pass --auto-approve" "apply --format json: the refusal"

if ((FAILURES > 0)); then
    echo "cli_format_test: $FAILURES failed" >&2
    exit 1
fi
echo "cli_format_test: all passed"
