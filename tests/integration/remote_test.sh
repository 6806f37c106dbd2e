#!/usr/bin/env bash
# remote_test.sh — `berth remote add/list/remove` against two real LXD hosts:
# trust with the trust password and with a certificate-add token, the server
# certificate pinned and checked (a wrong fingerprint is refused), clear errors
# for unreachable hosts and wrong passwords, and secrets never written out.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Every output of berth in this test, to look for secrets at the end.
ALL_OUTPUT=

record() { ALL_OUTPUT+=$OUT$'\n'$ERR$'\n'; }

# Names of the remotes in `berth remote list --json`, sorted, comma-joined.
# Accepts a list of objects with "name", an object keyed by name, or either
# under a "remotes" key.
REMOTE_NAMES='(if type == "object" and has("remotes") then .remotes else . end)
  | (if type == "array" then map(.name) else keys end) | sort | join(",")'

# The server certificate's sha256 fingerprint (lowercase hex, no colons).
server_fingerprint() {
    openssl x509 -in "$TB_DIR/host$1/server.crt" -noout -fingerprint -sha256 |
        cut -d= -f2 | tr -d ':' | tr 'A-F' 'a-f'
}

# Number of client certificates host i trusts.
trusted_count() {
    LXD_DIR="$TB_DIR/host$1" lxc config trust list -f csv </dev/null | grep -c '^client,' || true
}

test_add_with_password() {
    local pw before fp
    pw=$(tb_password 1)
    before=$(trusted_count 1)
    fp=$(server_fingerprint 1)
    run berth remote add h1 "$TB_HOST1_URL" --password "$pw" --accept-certificate
    record
    assert_exit 0 "remote add h1 with the trust password"
    assert_eq "$((before + 1))" "$(trusted_count 1)" "h1 now trusts one more client certificate"
    # The fingerprint is shown (any case, with or without colons).
    local shown
    shown=$(tr -d ':' <<<"$OUT$ERR" | tr 'A-F' 'a-f')
    assert_contains "$shown" "${fp:0:12}" "remote add shows the server's sha256 fingerprint"
    # The client certificate was generated in the config dir, its key private.
    local key bad=()
    while IFS= read -r key; do
        [[ "$(stat -c %a "$key")" =~ ^[4-7]00$ ]] || bad+=("$key")
    done < <(grep -rlE 'PRIVATE KEY' "$BERTH_CFG" || true)
    if [[ -n "$(grep -rlE 'PRIVATE KEY' "$BERTH_CFG" || true)" && ${#bad[@]} -eq 0 ]]; then
        _pass "a client key exists in the config dir and only its owner can read it"
    else
        _fail "a client key exists in the config dir and only its owner can read it" "bad: ${bad[*]:-no key found}"
    fi
}

test_add_with_token() {
    local token before
    token=$("$TB_SH" token "$TB_DIR" 2 berth-it-token)
    TOKEN=$token
    add_secret "$token"
    before=$(trusted_count 2)
    run berth remote add h2 "$TB_HOST2_URL" --token "$token" --accept-certificate
    record
    assert_exit 0 "remote add h2 with a certificate-add token"
    assert_eq "$((before + 1))" "$(trusted_count 2)" "h2 now trusts one more client certificate"
    assert_contains "$(LXD_DIR="$TB_DIR/host2" lxc config trust list -f csv </dev/null)" "berth-it-token" \
        "the certificate is trusted under the token's name"
}

test_list() {
    run berth remote list
    record
    assert_exit 0 "remote list"
    assert_contains "$OUT" "h1" "remote list shows h1"
    assert_contains "$OUT" "h2" "remote list shows h2"
    assert_contains "$OUT" "$TB_HOST1_URL" "remote list shows h1's URL"
    assert_contains "$OUT" "$TB_HOST2_URL" "remote list shows h2's URL"

    run berth remote list --json
    record
    assert_exit 0 "remote list --json"
    assert_json "remote list --json prints JSON"
    assert_jq "$OUT" "$REMOTE_NAMES" "h1,h2" "remote list --json has exactly h1 and h2"
}

# A fleet using the pinned remotes can read both hosts.
test_fleet_uses_pinned_remotes() {
    local fleet=$WORK/fleet.yaml
    cat >"$fleet" <<EOF
version: 1
remotes:
  h1:
    url: ${TB_HOST1_URL}
  h2:
    url: ${TB_HOST2_URL}
  sock:
    url: unix://${TB_HOST1_SOCKET}
containers: {}
EOF
    run berth plan -f "$fleet" --json
    record
    assert_exit 0 "plan with the added remotes and a unix socket remote"
    assert_jq "$OUT" '[.remotes.h1.status, .remotes.h2.status, .remotes.sock.status] | join(" ")' "ok ok ok" \
        "h1, h2 (pinned https) and sock (unix socket) are reachable"
}

test_wrong_fingerprint() {
    local fleet=$WORK/fleet-fp.yaml wrong
    wrong=$(printf 'some other certificate' | sha256sum | cut -d' ' -f1)

    # 1. The fleet pins a fingerprint that is not the server's.
    cat >"$fleet" <<EOF
version: 1
remotes:
  h1:
    url: ${TB_HOST1_URL}
    fingerprint: ${wrong}
containers: {}
EOF
    run berth plan -f "$fleet"
    record
    assert_exit 1 "a wrong fingerprint in the fleet file is refused"
    assert_contains "$OUT$ERR" "h1" "the refusal names the remote"
    assert_icontains "$OUT$ERR" "fingerprint" "the refusal mentions the fingerprint"

    # 2. The certificate pinned by `remote add` is h1's, but the URL is h2's.
    run berth remote add other "$TB_HOST1_URL" --password "$(tb_password 1)" --accept-certificate
    record
    assert_exit 0 "remote add other (h1's certificate)"
    cat >"$fleet" <<EOF
version: 1
remotes:
  other:
    url: ${TB_HOST2_URL}
containers: {}
EOF
    run berth plan -f "$fleet" --json
    record
    assert_exit 1 "a server whose certificate differs from the pinned one is refused"
    assert_contains "$OUT$ERR" "other" "the refusal names the remote"
    assert_icontains "$OUT$ERR" "fingerprint" "the refusal mentions the fingerprint"
    if [[ -n "$OUT" ]] && jq -e 'type == "object"' >/dev/null 2>&1 <<<"$OUT"; then
        assert_jq "$OUT" '.remotes.other.status' unknown "the refused remote is unknown in the plan"
    fi
    run berth remote remove other
    record
}

test_unreachable() {
    local unused
    unused=$("$TB_SH" unused-addr "$TB_DIR")
    run timeout 60 "$BERTH_BIN" --config-dir "$BERTH_CFG" --no-color \
        remote add h3 "$unused" --password whatever --accept-certificate
    record
    assert_exit 1 "remote add of an unreachable address fails with exit 1"
    assert_contains "$OUT$ERR" "h3" "the error names the remote"
    run berth remote list
    assert_not_contains "$OUT" "h3" "the unreachable remote was not added"
}

test_wrong_password() {
    # A fresh config dir: a new client certificate that no host trusts yet.
    local cfg=$WORK/config-fresh
    mkdir -p "$cfg"
    run timeout 60 "$BERTH_BIN" --config-dir "$cfg" --no-color \
        remote add bad "$TB_HOST1_URL" --password not-the-password --accept-certificate
    record
    assert_exit 1 "remote add with a wrong password fails with exit 1"
    assert_contains "$OUT$ERR" "bad" "the error names the remote"
    run timeout 60 "$BERTH_BIN" --config-dir "$cfg" --no-color \
        remote add badtoken "$TB_HOST2_URL" --token "$TOKEN" --accept-certificate
    record
    assert_exit 1 "remote add with an already used token fails with exit 1"
    run "$BERTH_BIN" --config-dir "$cfg" --no-color remote list
    assert_not_contains "$OUT" "bad" "the untrusted remotes were not added"
}

test_no_confirmation() {
    # Without --accept-certificate and without a terminal to confirm on,
    # remote add must not hang and must not pin anything.
    mkdir -p "$WORK/config-fresh"
    run timeout 30 "$BERTH_BIN" --config-dir "$WORK/config-fresh" --no-color \
        remote add unconfirmed "$TB_HOST2_URL" --password "$(tb_password 2)"
    record
    if ((RC != 0 && RC != 124)); then _pass "remote add without confirmation is refused"; else
        _fail "remote add without confirmation is refused (exit $RC; 124 means it hung)" "$(_last_output)"
    fi
    run "$BERTH_BIN" --config-dir "$WORK/config-fresh" --no-color remote list
    assert_not_contains "$OUT" "unconfirmed" "nothing was added without confirmation"
}

test_remove() {
    run berth remote remove h2
    record
    assert_exit 0 "remote remove h2"
    run berth remote list --json
    assert_jq "$OUT" "$REMOTE_NAMES" "h1" "only h1 is left"
    run berth remote remove h2
    record
    assert_exit 1 "removing an unknown remote fails with exit 1"
    assert_contains "$OUT$ERR" "h2" "the error names the remote"
}

test_no_secrets() {
    local i
    for i in 1 2; do
        assert_no_secret "$ALL_OUTPUT" "$(tb_password "$i")" "host$i's trust password never appears in berth's output"
        assert_no_secret_in_dir "$WORK" "$(tb_password "$i")" "host$i's trust password is not in berth's config dirs"
    done
    assert_no_secret "$ALL_OUTPUT" "$TOKEN" "the token never appears in berth's output"
    assert_no_secret_in_dir "$WORK" "$TOKEN" "the token is not in berth's config dirs"
}

main() {
    [[ -x "$BERTH_BIN" ]] || bail "BERTH_BIN '$BERTH_BIN' is not executable"
    tb_start 2
    TOKEN=
    test_add_with_password
    test_add_with_token
    test_list
    test_fleet_uses_pinned_remotes
    test_wrong_fingerprint
    test_unreachable
    test_wrong_password
    test_no_confirmation
    test_remove
    test_no_secrets
    finish
}

main "$@"
