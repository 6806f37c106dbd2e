#!/usr/bin/env bash
# berthd_trust_test.sh — berthd's trust and server config, driven by the stock lxc client (each
# client with its own LXD_CONF) and curl, on a berthd the test starts on loopback:
# - `lxc remote add` with the trust password; a wrong one refused; `remote list`; `lxc info`;
# - `lxc config set/get` of user.* keys (persisted), the password shown hidden, an unknown key refused;
# - core.https_address moves the listener at once; a taken address or a host name is refused;
# - certificate add tokens (`lxc config trust add`): remote add with one, used once only, an expired
#   one refused; `config trust list/remove`, and a removed certificate is no longer trusted;
# - an untrusted client gets 403 everywhere but GET /, GET /1.0 and POST /1.0/certificates; bad paths,
#   bad JSON and unknown routes get LXD's error envelope;
# - the trust store and config survive a restart; SIGTERM exits 0; the password is in no file or log.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSWORD="pw-$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
DIR=$WORK/berthd
BERTHD_PORT=$(free_port)
export BERTHD_PORT
berthd_start "$DIR" "$PASSWORD"
URL=$BERTHD_URL
SOCKET=$DIR/unix.socket

# lxcN: the stock client with its own config dir (client certificate, remotes).
for n in 1 2 3 4; do mkdir -p "$WORK/lxc$n"; done
# shellcheck disable=SC2317 # called through run, which shellcheck does not follow
lxcn() { local n=$1; shift; LXD_CONF="$WORK/lxc$n" lxc "$@" </dev/null; }
# curl as an untrusted client, and through the unix socket (trusted).
ucurl() { curl -sk --max-time 10 -o "$WORK/body" -w '%{http_code}' "$@"; }
scurl() { curl -s --max-time 10 --unix-socket "$SOCKET" -o "$WORK/body" -w '%{http_code}' "$@"; }

# --- the unix socket and the directory
assert_eq 660 "$(stat -c %a "$SOCKET")" "the unix socket is 0660"
assert_eq 600 "$(stat -c %a "$DIR/server.key")" "the server key is 0600"
assert_eq 600 "$(stat -c %a "$DIR/berthd.db")" "the database is 0600"
run openssl x509 -in "$DIR/server.crt" -noout -text
assert_contains "$OUT" "NIST CURVE: P-384" "the server key is ECDSA P-384"
assert_contains "$OUT" "TLS Web Server Authentication" "the certificate is for serverAuth"
assert_contains "$OUT" "IP Address:127.0.0.1" "it names 127.0.0.1"

# --- remote add with the password
run lxcn 1 remote add b "$URL" --accept-certificate --password "wrong-$PASSWORD"
assert_exit 1 "a wrong trust password is refused"
run lxcn 1 remote add b "$URL" --accept-certificate --password "$PASSWORD"
assert_exit 0 "lxc remote add with the trust password"
run lxcn 1 remote list --format csv
assert_contains "$OUT" "b,$URL" "lxc remote list shows it"
run lxcn 1 info b:
assert_exit 0 "lxc info b:"
assert_contains "$OUT" "auth: trusted" "the client is trusted"
assert_contains "$OUT" "certificate_fingerprint: $(openssl x509 -in "$DIR/server.crt" -outform der | sha256sum | cut -d' ' -f1)" \
    "the fingerprint is the sha256 of the DER"

# --- server config
run lxcn 1 config set b: user.colour blue
assert_exit 0 "lxc config set b: user.colour"
run lxcn 1 config get b: user.colour
assert_eq blue "$OUT" "lxc config get reads it back"
run lxcn 1 config set b: nonsense.key 1
assert_exit 1 "an unknown server key is refused"
assert_contains "$ERR" "nonsense.key" "the error names the key"
run lxcn 1 config get b: core.trust_password
assert_eq true "$OUT" "the trust password is shown hidden"
run lxcn 1 config set b: user.size 2
assert_exit 0 "setting another key keeps the hidden password"
run lxcn 2 remote add b "$URL" --accept-certificate --password "$PASSWORD"
assert_exit 0 "the password still works after other keys changed"
run lxcn 2 config trust list b: --format csv
assert_exit 0 "a second client is trusted too"

# --- core.https_address: berthd listens at a new address at once and no longer accepts at the old
# one; an address that is taken, or no address, is refused and the old one kept
PORT2=$(free_port)
run lxcn 1 config set b: core.https_address "127.0.0.1:$PORT2"
assert_exit 0 "lxc config set core.https_address"
assert_eq 200 "$(ucurl "https://127.0.0.1:$PORT2/1.0")" "berthd listens at the new address at once"
assert_eq 000 "$(ucurl "$URL/1.0")" "and accepts nothing at the old one"
run lxcn 1 remote add b2 "https://127.0.0.1:$PORT2" --accept-certificate
assert_exit 0 "lxc remote add at the new address (the client is trusted already)"
run lxcn 1 info b2:
assert_contains "$OUT" "127.0.0.1:$PORT2" "lxc info lists the new address"
TAKEN=$(free_port)
HOLD='import socket, sys, time; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(60)'
python3 -c "$HOLD" "$TAKEN" &
HOLDER=$!
for ((i = 0; i < 50; i++)); do ss -Hltn "sport = :$TAKEN" | grep -q . && break; sleep 0.1; done
run lxcn 1 config set b2: core.https_address "127.0.0.1:$TAKEN"
assert_exit 1 "an address another process holds is refused"
assert_contains "$ERR" "core.https_address" "the error names the key"
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null || true
run lxcn 1 config set b2: core.https_address "nowhere.example:1"
assert_exit 1 "a host name is refused"
run lxcn 1 config get b2: core.https_address
assert_eq "127.0.0.1:$PORT2" "$OUT" "the old address is kept"
assert_eq 200 "$(ucurl "https://127.0.0.1:$PORT2/1.0")" "and still listened on"
run lxcn 1 config set b2: core.https_address "127.0.0.1:$BERTHD_PORT"
assert_exit 0 "and back to the first address"
assert_eq 200 "$(ucurl "$URL/1.0")" "which answers again"
run lxcn 1 remote remove b2
assert_exit 0 "lxc remote remove b2"

# --- events: lxc monitor sees the token operation come and go
LXD_CONF="$WORK/lxc1" lxc monitor b: --type operation >"$WORK/monitor.out" 2>&1 </dev/null &
MONITOR_PID=$!
sleep 1

# --- certificate add tokens
# lxc 5.0.2 takes any argument of `config trust add` for a certificate file: a token is issued on
# the default remote only.
run lxcn 1 remote switch b
assert_exit 0 "lxc remote switch b"
run lxcn 1 config trust add --name third
assert_exit 0 "lxc config trust add issues a token"
TOKEN=$(tail -n1 <<<"$OUT")
add_secret "$TOKEN"
[[ -n "$TOKEN" ]] || bail "no token"
run lxcn 1 operation list b: --format csv
assert_contains "$OUT" "TOKEN" "the token is a running token operation"
run lxcn 3 remote add b "$TOKEN"
assert_exit 0 "lxc remote add with the token"
run lxcn 3 config trust list b: --format csv
assert_exit 0 "the token's client is trusted"
assert_contains "$OUT" "third" "under the name the token was issued for"
run lxcn 4 remote add b "$TOKEN"
assert_exit 1 "a token is used once only"
sleep 1
kill "$MONITOR_PID" 2>/dev/null || true
wait "$MONITOR_PID" 2>/dev/null || true
assert_contains "$(cat "$WORK/monitor.out")" "Generating certificate add token" "lxc monitor gets the token operation's events"
assert_contains "$(cat "$WORK/monitor.out")" "Cancelled" "including its end when it was used"
run lxcn 1 config set b: core.remote_token_expiry 1S
assert_exit 0 "core.remote_token_expiry is accepted"
run lxcn 1 config trust add --name late
EXPIRED=$(tail -n1 <<<"$OUT")
add_secret "$EXPIRED"
sleep 2
run lxcn 4 remote add b "$EXPIRED"
assert_exit 1 "an expired token is refused"
run lxcn 1 config unset b: core.remote_token_expiry
assert_exit 0 "and the expiry can be unset"

# --- trust list and remove
FP3=$(openssl x509 -in "$WORK/lxc3/client.crt" -outform der | sha256sum | cut -d' ' -f1)
run lxcn 1 config trust list b: --format json
assert_exit 0 "lxc config trust list"
assert_eq 3 "$(jq length <<<"$OUT")" "three clients are trusted"
run lxcn 1 config trust remove b: "$FP3"
assert_exit 0 "lxc config trust remove"
run lxcn 3 config trust list b:
assert_exit 1 "a removed certificate is refused"
assert_contains "$ERR" "not authorized" "with LXD's 403"

# --- untrusted clients and bad requests
assert_eq 200 "$(ucurl "$URL/")" "GET / is open"
assert_eq 200 "$(ucurl "$URL/1.0")" "GET /1.0 is open"
assert_eq untrusted "$(jq -r .metadata.auth "$WORK/body")" "and says untrusted"
assert_eq false "$(jq '.metadata | has("config") or has("environment")' "$WORK/body")" "with no config or environment"
for path in /1.0/certificates /1.0/operations /1.0/certificates/abc; do
    assert_eq 403 "$(ucurl "$URL$path")" "GET $path is refused to an untrusted client"
done
assert_eq 403 "$(ucurl -X PUT -d '{"config":{}}' "$URL/1.0")" "PUT /1.0 is refused to an untrusted client"
assert_eq 403 "$(ucurl -X POST -d '{"type":"client","password":"nope"}' "$URL/1.0/certificates")" \
    "POST /1.0/certificates with a wrong password is 403"
assert_eq 403 "$(jq .error_code "$WORK/body")" "in an error envelope"
assert_eq 404 "$(scurl http://b/1.0/nowhere)" "an unknown route is 404"
assert_eq error "$(jq -r .type "$WORK/body")" "in an error envelope"
assert_eq 400 "$(scurl --path-as-is http://b/1.0/certificates/%2e%2e/x)" "an encoded traversal is 400"
assert_eq 400 "$(scurl -X PUT -d '{"config":' http://b/1.0)" "malformed JSON is 400"
assert_eq 400 "$(scurl -X PUT -d '{"config":{"user.a":5}}' http://b/1.0)" "a value of the wrong type is 400"
assert_eq 412 "$(scurl -X PATCH -H 'If-Match: "nope"' -d '{"config":{"user.a":"x"}}' http://b/1.0)" \
    "a stale If-Match is 412"
assert_eq 413 "$(head -c 20000000 /dev/zero | scurl -X PUT --data-binary @- http://b/1.0)" "an oversized body is 413"

# --- one berthd per directory
run timeout 10 "$BERTHD_BIN" --dir "$DIR" --listen "127.0.0.1:$(free_port)"
assert_exit 1 "a second berthd on the same directory is refused"
assert_contains "$ERR" "another berthd is running on $DIR" "and says why"
assert_eq 200 "$(scurl http://b/1.0)" "the first one still serves its socket"

# --- restart
kill -TERM "$BERTHD_PID"
RC=0
wait "$BERTHD_PID" || RC=$?
assert_eq 0 "$RC" "berthd exits 0 on SIGTERM"
berthd_start "$DIR" "$PASSWORD"
run lxcn 1 config get b: user.colour
assert_eq blue "$OUT" "the config survives a restart"
run lxcn 2 config trust list b: --format csv
assert_exit 0 "and so does the trust store"

# --- secrets
assert_no_secret_in_dir "$DIR" "$PASSWORD" "the password is in no file of berthd's directory"
assert_no_secret_in_dir "$DIR" "$TOKEN" "nor the token"
for secret in "$PASSWORD" "$TOKEN"; do
    if grep -qF -- "$secret" "$DIR.log"; then _fail "a secret is in berthd's log"; else _pass "no secret in berthd's log"; fi
done
if tr '\0' ' ' </proc/"$BERTHD_PID"/cmdline | grep -qF -- "$PASSWORD"; then
    _fail "the password is on berthd's command line"
else
    _pass "the password is not on berthd's command line"
fi

finish
