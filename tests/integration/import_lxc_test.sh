#!/usr/bin/env bash
# import_lxc_test.sh — `berth remote import-lxc` against real LXD hosts: an lxc config dir set up
# with the stock `lxc` client (trust password, as a user would have done) is imported into a fresh
# berth config dir, and `berth plan` then reads the hosts with no new trust; image servers and the
# local socket are skipped with their reasons; a second import changes nothing; name collisions
# fail unless --force; berth's own certificate is kept unless --replace-certificate; --dry-run and
# LXD_CONF; malformed config.yml; the key never printed, and written 0600.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_OUTPUT=
record() { ALL_OUTPUT+=$OUT$'\n'$ERR$'\n'; }

# berth with a given config dir.
# shellcheck disable=SC2317 # called through `run`
berth_in() {
    local cfg=$1
    shift
    "$BERTH_BIN" --config-dir "$cfg" --no-color "$@"
}

# Number of client certificates host i trusts.
trusted_count() {
    LXD_DIR="$TB_DIR/host$1" lxc config trust list -f csv </dev/null | grep -c '^client,' || true
}

cert_fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d ':' | tr 'A-F' 'a-f'; }

# An lxc config dir made by the stock client: h1 and h2, and h2 again as my.lab (a name with a dot).
setup_lxc() {
    LXC=$WORK/lxc
    mkdir -p "$LXC"
    chmod 700 "$LXC"
    local i
    for i in 1 2; do
        local url="TB_HOST${i}_URL"
        LXD_CONF=$LXC lxc remote add "h$i" "${!url}" --password "$(tb_password "$i")" --accept-certificate \
            </dev/null >/dev/null 2>&1 || bail "lxc remote add h$i"
    done
    LXD_CONF=$LXC lxc remote add my.lab "$TB_HOST2_URL" --accept-certificate </dev/null >/dev/null 2>&1 ||
        bail "lxc remote add my.lab (already trusted)"
    [[ -f $LXC/client.crt && -f $LXC/servercerts/h1.crt && -f $LXC/config.yml ]] || bail "lxc wrote no config"
    LXC_FP=$(cert_fingerprint "$LXC/client.crt")
    LXC_KEY_LINE=$(sed -n 2p "$LXC/client.key")
    add_secret "$LXC_KEY_LINE"
}

fleet() {
    cat >"$1" <<EOF
version: 1
remotes:
  h1: {url: "${TB_HOST1_URL}"}
  h2: {url: "${TB_HOST2_URL}"}
  my.lab: {url: "${TB_HOST2_URL}"}
images:
  bb: {remote: h1, alias: bb}
containers:
  c1: {remote: h1, image: bb}
EOF
}

test_import_then_plan() {
    local cfg=$WORK/cfg1 before1 before2
    before1=$(trusted_count 1)
    before2=$(trusted_count 2)
    run env LXD_DIR="$WORK/no-lxd" "$BERTH_BIN" --config-dir "$cfg" --no-color remote import-lxc --from "$LXC"
    record
    assert_exit 0 "import-lxc into a fresh berth config dir"
    assert_contains "$OUT" "From $LXC:" "the output names the source"
    local name
    for name in h1 h2 my.lab; do
        assert_contains "$(grep -E "^  imported +$name " <<<"$OUT" || true)" "certificate sha256:" "$name is imported with its pinned certificate"
    done
    assert_contains "$(grep -E '^  skipped +images ' <<<"$OUT" || true)" "simplestreams" "images is skipped: an image server"
    assert_contains "$(grep -E '^  skipped +local ' <<<"$OUT" || true)" "$WORK/no-lxd/unix.socket" \
        "local is skipped: no socket where LXD_DIR says"
    assert_contains "$OUT" "Client certificate: lxc's (sha256:$LXC_FP) copied" "lxc's client certificate is copied"
    assert_contains "$OUT" "3 imported, 0 replaced, 0 unchanged, 2 skipped, 0 failed." "the summary counts"
    assert_eq "$LXC_FP" "$(cert_fingerprint "$cfg/client.crt")" "berth's client certificate is lxc's"
    assert_eq "600" "$(stat -c %a "$cfg/client.key")" "the copied key is mode 0600"
    assert_eq "700" "$(stat -c %a "$cfg")" "the config dir is mode 0700"
    assert_not_contains "$OUT$ERR" "PRIVATE KEY" "no key is printed"
    assert_eq "$before1 $before2" "$(trusted_count 1) $(trusted_count 2)" "no host was asked for new trust"

    local f=$WORK/fleet.yaml
    fleet "$f"
    run berth_in "$cfg" plan -f "$f" --json
    record
    assert_exit 0 "plan with the imported remotes"
    assert_jq "$OUT" '[.remotes.h1.status, .remotes.h2.status, .remotes["my.lab"].status] | join(" ")' "ok ok ok" \
        "h1, h2 and my.lab are read with lxc's trust"
    assert_jq "$OUT" "$ACTION_SET" "launch h1:c1" "the plan launches c1"

    # A second import changes nothing.
    run env LXD_DIR="$WORK/no-lxd" "$BERTH_BIN" --config-dir "$cfg" --no-color remote import-lxc --from "$LXC"
    record
    assert_exit 0 "a second import succeeds"
    assert_contains "$OUT" "0 imported, 0 replaced, 3 unchanged, 2 skipped, 0 failed." "a second import leaves all as they are"
    assert_contains "$OUT" "berth already uses lxc's" "the certificate is already lxc's"

    # remote list: the columns line up (each column starts at the same offset on every line).
    run berth_in "$cfg" remote list
    assert_exit 0 "remote list"
    local offsets
    offsets=$(awk '{ printf "%d %d\n", index($0, $2), index($0, $3) }' <<<"$OUT" | sort -u | wc -l)
    assert_eq 1 "$offsets" "remote list aligns its columns"
    assert_contains "$(head -1 <<<"$OUT")" "NAME" "remote list has a header"
}

test_lxd_conf_and_dry_run() {
    local cfg=$WORK/cfg2
    run env LXD_CONF="$LXC" LXD_DIR="$WORK/no-lxd" "$BERTH_BIN" --config-dir "$cfg" --no-color remote import-lxc --dry-run
    record
    assert_exit 0 "import-lxc --dry-run, lxc's dir from LXD_CONF"
    assert_contains "$OUT" "Dry run: nothing is written. From $LXC:" "LXD_CONF names the source"
    assert_contains "$OUT" "3 imported" "the dry run says what it would import"
    if [[ -e $cfg ]]; then _fail "the dry run wrote nothing" "$(find "$cfg")"; else _pass "the dry run wrote nothing"; fi
}

test_collision() {
    local cfg=$WORK/cfg3
    run berth_in "$cfg" remote add h1 "unix://$TB_HOST2_SOCKET"
    assert_exit 0 "berth remote add h1 (a unix socket)"
    run env LXD_DIR="$WORK/no-lxd" "$BERTH_BIN" --config-dir "$cfg" --no-color remote import-lxc --from "$LXC"
    record
    assert_exit 1 "a name berth already uses for another remote fails the import"
    assert_contains "$(grep -E '^  failed +h1 ' <<<"$OUT" || true)" "--force" "h1 failed, saying how to replace it"
    assert_contains "$(grep -E '^  imported +h2 ' <<<"$OUT" || true)" "$TB_HOST2_URL" "h2 is imported all the same"
    run berth_in "$cfg" remote list --json
    assert_jq "$OUT" '.remotes.h1.url' "unix://$TB_HOST2_SOCKET" "berth's h1 is left as it was"

    run env LXD_DIR="$WORK/no-lxd" "$BERTH_BIN" --config-dir "$cfg" --no-color remote import-lxc --from "$LXC" --force
    record
    assert_exit 0 "import-lxc --force"
    assert_contains "$(grep -E '^  replaced +h1 ' <<<"$OUT" || true)" "$TB_HOST1_URL" "h1 is replaced with lxc's"
    run berth_in "$cfg" remote list --json
    assert_jq "$OUT" '.remotes.h1.url' "$TB_HOST1_URL" "berth's h1 is now lxc's"
}

test_own_certificate() {
    local cfg=$WORK/cfg4 own
    run berth_in "$cfg" remote add own "$TB_HOST1_URL" --password "$(tb_password 1)" --accept-certificate
    record
    assert_exit 0 "berth remote add with berth's own certificate"
    own=$(cert_fingerprint "$cfg/client.crt")
    cp "$cfg/remotes.json" "$WORK/remotes.before"
    run env LXD_DIR="$WORK/no-lxd" "$BERTH_BIN" --config-dir "$cfg" --no-color remote import-lxc --from "$LXC"
    record
    assert_exit 1 "import-lxc refuses when berth has another client certificate"
    assert_contains "$ERR" "--replace-certificate" "the refusal says how to replace it"
    assert_contains "$ERR" "$own" "the refusal names berth's certificate"
    assert_eq "" "$(diff "$WORK/remotes.before" "$cfg/remotes.json")" "nothing was imported"
    assert_eq "$own" "$(cert_fingerprint "$cfg/client.crt")" "berth's certificate is untouched"

    run env LXD_DIR="$WORK/no-lxd" "$BERTH_BIN" --config-dir "$cfg" --no-color remote import-lxc --from "$LXC" \
        --replace-certificate
    record
    assert_exit 0 "import-lxc --replace-certificate"
    assert_eq "$LXC_FP" "$(cert_fingerprint "$cfg/client.crt")" "berth now uses lxc's certificate"
    assert_eq "$own" "$(cert_fingerprint "$cfg/client.crt.old")" "berth's own is kept as client.crt.old"
    assert_eq "600" "$(stat -c %a "$cfg/client.key.old")" "the old key is mode 0600"
    local f=$WORK/fleet4.yaml
    fleet "$f"
    run berth_in "$cfg" plan -f "$f" --json
    record
    assert_exit 0 "plan after replacing the certificate"
    assert_jq "$OUT" '.remotes.h2.status' ok "h2, which trusts only lxc's certificate, is read"
}

test_local_socket() {
    local cfg=$WORK/cfg5
    run env LXD_DIR="$TB_HOST1_LXD_DIR" "$BERTH_BIN" --config-dir "$cfg" --no-color remote import-lxc --from "$LXC"
    record
    assert_exit 0 "import-lxc with LXD_DIR set"
    assert_contains "$(grep -E '^  imported +local ' <<<"$OUT" || true)" "unix://$TB_HOST1_LXD_DIR/unix.socket" \
        "local is imported as LXD_DIR's socket"
    cat >"$WORK/fleet5.yaml" <<EOF
version: 1
remotes:
  local: {url: "unix://$TB_HOST1_LXD_DIR/unix.socket"}
containers: {}
EOF
    run berth_in "$cfg" plan -f "$WORK/fleet5.yaml" --json
    assert_exit 0 "plan over the imported local socket"
    assert_jq "$OUT" '.remotes.local.status' ok "the local socket is read"
}

test_bad_config() {
    local bad=$WORK/lxc-bad cfg=$WORK/cfg6
    mkdir -p "$bad"
    printf 'remotes: {h1: [\n' >"$bad/config.yml"
    run berth_in "$cfg" remote import-lxc --from "$bad"
    record
    assert_exit 1 "a malformed config.yml is an error"
    assert_contains "$ERR" "$bad/config.yml:" "the error names the file and the place"
    assert_contains "$ERR" "malformed YAML" "the error says what is wrong"
    run berth_in "$cfg" remote import-lxc --from "$WORK/nowhere"
    assert_exit 1 "a dir without config.yml is an error"
    assert_contains "$ERR" "no lxc configuration in $WORK/nowhere" "the error says there is no lxc configuration"
    if [[ -e $cfg ]]; then _fail "nothing was written" "$(find "$cfg")"; else _pass "nothing was written"; fi
}

test_no_secrets() {
    local i
    for i in 1 2; do
        assert_no_secret "$ALL_OUTPUT" "$(tb_password "$i")" "host$i's trust password never appears in berth's output"
    done
    assert_no_secret "$ALL_OUTPUT" "$LXC_KEY_LINE" "lxc's client key never appears in berth's output"
}

main() {
    [[ -x "$BERTH_BIN" ]] || bail "BERTH_BIN '$BERTH_BIN' is not executable"
    tb_start 2
    setup_lxc
    test_import_then_plan
    test_lxd_conf_and_dry_run
    test_collision
    test_own_certificate
    test_local_socket
    test_bad_config
    test_no_secrets
    finish
}

main "$@"
