#!/usr/bin/env bash
# runner_test.sh — a fresh runner with an empty config dir, on real LXD hosts: the client
# certificate comes from BERTH_CLIENT_CERT/BERTH_CLIENT_KEY (PEM text) or from --client-cert/
# --client-key (files), each remote's pin from the fleet file's fingerprint:, and no
# `berth remote add` is ever run for them.
#
# A certificate made with openssl is trusted on both hosts with the stock lxc client. Then, once
# with the environment and once with the flags: plan and apply --auto-approve work, the config dir
# stays empty, and no line of the key appears in stdout, stderr (--log-level trace), the state file
# or the config dir. Refused, each with a clear error and nothing done on the hosts: a wrong
# fingerprint in the fleet, a key that is not the certificate's (from either source), one half of a
# pair, a certificate the hosts do not trust, a remote with neither fingerprint: nor
# `berth remote add`, and a fleet fingerprint that disagrees with what `berth remote add` pinned.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_OUTPUT=
record() { ALL_OUTPUT+=$OUT$'\n'$ERR$'\n'; }

cert_fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d ':' | tr 'A-F' 'a-f'; }

# new_pair NAME: NAME.crt and NAME.key in $CERTS (ECDSA P-384, self-signed, as lxc makes them).
new_pair() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes -days 30 \
        -subj "/CN=$1@runner-test" -keyout "$CERTS/$1.key" -out "$CERTS/$1.crt" >/dev/null 2>&1 ||
        bail "openssl could not make a certificate for $1"
    chmod 600 "$CERTS/$1.key"
    # Every line of the key is a secret: failure messages mask them, and they are searched for.
    local line
    while IFS= read -r line; do
        if [[ ${#line} -ge 16 && $line != *-----* ]]; then
            add_secret "$line"
            KEY_LINES+=("$line")
        fi
    done <"$CERTS/$1.key"
}

# assert_key_nowhere TEXT WHAT: no line of any test key in TEXT.
assert_key_nowhere() {
    local line found=0
    for line in "${KEY_LINES[@]}"; do
        if [[ "$1" == *"$line"* ]]; then found=1; fi
    done
    if ((found == 0)); then _pass "no line of a private key in $2"; else _fail "no line of a private key in $2" "found (not shown)"; fi
}
assert_key_nowhere_in_dir() {
    local line hits=
    [[ -e "$1" ]] || { _pass "no line of a private key under $1 (it does not exist)"; return 0; }
    for line in "${KEY_LINES[@]}"; do hits+=$(grep -rlF -- "$line" "$1" 2>/dev/null || true); done
    if [[ -z "$hits" ]]; then _pass "no line of a private key under $1"; else _fail "no line of a private key under $1" "in: $hits"; fi
}

assert_empty_dir() {
    local listing
    listing=$(ls -A "$1" 2>&1 || true)
    if [[ -z "$listing" ]]; then _pass "$2"; else _fail "$2" "$1 holds: $listing"; fi
}

# berth with the certificate PEM in the environment; CFG is the config dir. (The PEM text comes
# without its final newline, as CI secrets often do.)
# shellcheck disable=SC2317 # called through `run`
berth_env() {
    local cfg=$1 pair=$2
    shift 2
    BERTH_CLIENT_CERT=$(cat "$CERTS/$pair.crt") BERTH_CLIENT_KEY=$(cat "$CERTS/$pair.key") \
        timeout -k 10 180 "$BERTH_BIN" --config-dir "$cfg" --no-color "$@"
}
# berth with the certificate in files given by flags.
# shellcheck disable=SC2317 # called through `run`
berth_files() {
    local cfg=$1 crt=$2 key=$3
    shift 3
    timeout -k 10 180 "$BERTH_BIN" --config-dir "$cfg" --no-color --client-cert "$crt" --client-key "$key" "$@"
}

# write_fleet FILE [R1_CONFIG]: remotes pinned by fingerprint only (h1 in colon form, h2 with sha256:).
write_fleet() {
    local r1_config=
    [[ -z "${2:-}" ]] || r1_config=", config: {$2}"
    cat >"$1" <<EOF
version: 1
remotes:
  h1: {url: "${TB_HOST1_URL}", fingerprint: "${FP1_COLONS}"}
  h2: {url: "${TB_HOST2_URL}", fingerprint: "sha256:${FP2}"}
images:
  bb: {remote: h1, alias: bb}
containers:
  r1: {remote: h1, image: bb, state: running${r1_config}}
  r2: {remote: h2, image: bb, state: stopped}
EOF
}

tb_start 2

CERTS=$WORK/certs
mkdir -p "$CERTS"
chmod 700 "$CERTS"
KEY_LINES=()
new_pair runner   # trusted by both hosts
new_pair stranger # trusted by none
RUNNER_FP=$(cert_fingerprint "$CERTS/runner.crt")

FP1_COLONS=$(openssl x509 -in "$TB_HOST1_LXD_DIR/server.crt" -noout -fingerprint -sha256 | cut -d= -f2)
FP2=$(cert_fingerprint "$TB_HOST2_LXD_DIR/server.crt")
[[ ${#FP1_COLONS} -eq 95 && ${#FP2} -eq 64 ]] || bail "cannot read the hosts' certificate fingerprints"

# Trust the runner's certificate with the stock client, on each host.
for i in 1 2; do
    tb_lxc_q config trust add "h$i:" "$CERTS/runner.crt" --name runner
done
for i in 1 2; do
    if tb_lxc config trust list "h$i:" -f csv 2>/dev/null | grep -q "${RUNNER_FP:0:12}"; then
        _pass "h$i trusts the runner's certificate (lxc config trust add)"
    else
        bail "h$i does not list the runner's certificate after lxc config trust add"
    fi
done

FLEET=$WORK/fleet.yaml
write_fleet "$FLEET"

# ---------------------------------------------------------------- 1: the environment
test_environment() {
    local cfg=$WORK/cfg-env
    mkdir -p "$cfg"
    chmod 700 "$cfg"
    export BERTH_STATE=$WORK/state-env/state.db

    run berth_env "$cfg" runner --log-level trace plan -f "$FLEET"
    record
    assert_exit 0 "env: plan succeeds with an empty config dir"
    assert_contains "$OUT" "launch    h1:r1" "env: the plan launches r1 on h1"
    assert_contains "$OUT" "launch    h2:r2" "env: the plan launches r2 on h2"

    run berth_env "$cfg" runner --log-level trace apply -f "$FLEET" --auto-approve
    record
    assert_exit 0 "env: apply --auto-approve succeeds"
    assert_eq "Running" "$(lxc_status h1 r1)" "env: r1 runs on h1"
    assert_eq "Stopped" "$(lxc_status h2 r2)" "env: r2 exists, stopped, on h2"

    run berth_env "$cfg" runner plan -f "$FLEET" --detailed-exitcode
    record
    assert_exit 0 "env: the next plan has nothing to do"

    assert_empty_dir "$cfg" "env: the config dir is still empty"
    assert_key_nowhere "$ALL_OUTPUT" "stdout and stderr (env)"
    assert_key_nowhere_in_dir "$WORK/state-env"
    assert_key_nowhere_in_dir "$cfg"
}

# ---------------------------------------------------------------- 2: the flags
test_flags() {
    local cfg=$WORK/cfg-files
    mkdir -p "$cfg"
    chmod 700 "$cfg"
    export BERTH_STATE=$WORK/state-files/state.db
    write_fleet "$FLEET" "user.runner: files"

    run berth_files "$cfg" "$CERTS/runner.crt" "$CERTS/runner.key" --log-level trace plan -f "$FLEET"
    record
    assert_exit 0 "files: plan succeeds with an empty config dir"
    assert_contains "$OUT" "h1:r1" "files: the plan updates r1"

    run berth_files "$cfg" "$CERTS/runner.crt" "$CERTS/runner.key" --log-level trace apply -f "$FLEET" --auto-approve
    record
    assert_exit 0 "files: apply --auto-approve succeeds"
    assert_eq "files" "$(lxc_config h1 r1 user.runner)" "files: r1 got the new config"

    # The flags win over the environment: a stranger's certificate there is not used.
    run env BERTH_CLIENT_CERT="$(cat "$CERTS/stranger.crt")" BERTH_CLIENT_KEY="$(cat "$CERTS/stranger.key")" \
        timeout -k 10 180 "$BERTH_BIN" --config-dir "$cfg" --no-color \
        --client-cert "$CERTS/runner.crt" --client-key "$CERTS/runner.key" plan -f "$FLEET" --detailed-exitcode
    record
    assert_exit 0 "files: the flags win over the environment (and nothing is left to do)"

    # A config dir that does not exist is not made.
    run berth_files "$WORK/absent" "$CERTS/runner.crt" "$CERTS/runner.key" plan -f "$FLEET"
    record
    assert_exit 0 "files: plan works with a config dir that does not exist"
    if [[ ! -e "$WORK/absent" ]]; then _pass "files: the absent config dir is not created"; else _fail "files: the absent config dir is not created" "it exists"; fi

    assert_empty_dir "$cfg" "files: the config dir is still empty"
    assert_key_nowhere "$ALL_OUTPUT" "stdout and stderr (files)"
    assert_key_nowhere_in_dir "$WORK/state-files"
    assert_key_nowhere_in_dir "$cfg"
}

# ---------------------------------------------------------------- 3: refused
test_refused() {
    local cfg=$WORK/cfg-refused
    mkdir -p "$cfg"
    chmod 700 "$cfg"
    export BERTH_STATE=$WORK/state-refused/state.db
    write_fleet "$FLEET" "user.runner: refused" # a change, so that applying anything would show

    # A wrong fingerprint in the fleet file.
    local wrong=$WORK/wrong.yaml other
    other=$(printf 'not the certificate of h1' | sha256sum | cut -d' ' -f1)
    sed "s/fingerprint: \"${FP1_COLONS}\"/fingerprint: \"${other}\"/" "$FLEET" >"$wrong"
    run berth_env "$cfg" runner plan -f "$wrong"
    record
    assert_exit 1 "a wrong fingerprint makes plan exit 1"
    assert_contains "$OUT$ERR" "does not match the pinned $other" "the error says the certificate is not the pinned one"
    run berth_env "$cfg" runner apply -f "$wrong" --auto-approve
    record
    assert_exit 1 "a wrong fingerprint makes apply exit 1"
    assert_eq "files" "$(lxc_config h1 r1 user.runner)" "nothing changed on h1"

    # A key that is not the certificate's, from the environment and from files.
    run env BERTH_CLIENT_CERT="$(cat "$CERTS/runner.crt")" BERTH_CLIENT_KEY="$(cat "$CERTS/stranger.key")" \
        "$BERTH_BIN" --config-dir "$cfg" --no-color plan -f "$FLEET"
    record
    assert_exit 1 "env: a mismatched key is refused"
    assert_contains "$ERR" "BERTH_CLIENT_CERT and BERTH_CLIENT_KEY: the private key is not the certificate's" \
        "env: the error names the variables and says the key is not the certificate's"
    run berth_files "$cfg" "$CERTS/runner.crt" "$CERTS/stranger.key" apply -f "$FLEET" --auto-approve
    record
    assert_exit 1 "files: a mismatched key is refused"
    assert_contains "$ERR" "--client-key $CERTS/stranger.key" "files: the error names the key file"
    assert_contains "$ERR" "the private key is not the certificate's" "files: and says what is wrong"
    assert_eq "files" "$(lxc_config h1 r1 user.runner)" "nothing changed on h1"

    # One half of a pair.
    run "$BERTH_BIN" --config-dir "$cfg" --no-color --client-cert "$CERTS/runner.crt" plan -f "$FLEET"
    record
    assert_exit 1 "--client-cert without --client-key is refused"
    assert_contains "$ERR" "--client-cert is given without --client-key" "the error says what is missing"
    run env BERTH_CLIENT_CERT="$(cat "$CERTS/runner.crt")" "$BERTH_BIN" --config-dir "$cfg" --no-color plan -f "$FLEET"
    record
    assert_exit 1 "BERTH_CLIENT_CERT without BERTH_CLIENT_KEY is refused"
    assert_contains "$ERR" "BERTH_CLIENT_CERT is set but BERTH_CLIENT_KEY is not" "the error names the variables"

    # A certificate the hosts do not trust.
    local stranger_fp
    stranger_fp=$(cert_fingerprint "$CERTS/stranger.crt")
    run berth_files "$cfg" "$CERTS/stranger.crt" "$CERTS/stranger.key" plan -f "$FLEET"
    record
    assert_exit 1 "an untrusted certificate makes plan exit 1"
    assert_contains "$OUT$ERR" "the server does not trust this client's certificate ($stranger_fp), given by --client-cert" \
        "the error names the certificate and where it came from"
    run berth_env "$cfg" stranger apply -f "$FLEET" --auto-approve
    record
    assert_exit 1 "an untrusted certificate makes apply exit 1"
    assert_eq "files" "$(lxc_config h1 r1 user.runner)" "nothing changed on h1"

    # Neither fingerprint: nor `berth remote add`.
    local unpinned=$WORK/unpinned.yaml
    sed "s/, fingerprint: \"sha256:${FP2}\"//" "$FLEET" >"$unpinned"
    run berth_env "$cfg" runner plan -f "$unpinned"
    record
    assert_exit 1 "a remote with no pin makes plan exit 1"
    assert_contains "$OUT$ERR" "remote h2: no pinned server certificate; add fingerprint:" "it says to add fingerprint:"
    assert_contains "$OUT$ERR" "or run \`berth remote add h2" "or to run berth remote add"

    assert_empty_dir "$cfg" "after all refusals the config dir is still empty"

    # A fleet fingerprint that disagrees with the certificate `berth remote add` pinned.
    local added=$WORK/cfg-added
    run "$BERTH_BIN" --config-dir "$added" --no-color remote add h1 "$TB_HOST1_URL" \
        --password "$(tb_password 1)" --accept-certificate
    record
    assert_exit 0 "berth remote add h1 (another config dir)"
    run "$BERTH_BIN" --config-dir "$added" --no-color plan -f "$wrong"
    record
    assert_exit 1 "a fleet fingerprint that disagrees with remote add's pin makes plan exit 1"
    assert_contains "$OUT$ERR" "the fleet file pins the server certificate sha256:$other, but \`berth remote add\` pinned another one" \
        "the error says the two pins disagree"

    assert_key_nowhere "$ALL_OUTPUT" "stdout and stderr (refusals)"
    assert_key_nowhere_in_dir "$WORK/state-refused"
    assert_key_nowhere_in_dir "$added"
}

test_environment
test_flags
test_refused
finish
