#!/usr/bin/env bash
# image_server_test.sh — images from an image server, on a real LXD host:
#
# - the test serves a simplestreams tree itself, over HTTPS on a loopback address of the test bed's
#   subnet, with a self-signed certificate it makes and names as certificate: in the fleet file;
# - the first version of the image is a unified tarball (lxd_combined.tar.gz: its fingerprint is
#   its sha256), the second a split image (lxd.tar.xz + a squashfs rootfs: the fingerprint is
#   combined_squashfs_sha256, the sha256 of both files one after the other);
# - berth launches from it (the host fetches the image itself); volatile.base_image is the
#   fingerprint the test computed and berth resolved (the second plan is empty, with no drift);
# - publishing the second version under the same alias makes the plan report drift; --replace with
#   --allow-recreate recreates the container from it; a saved plan launches from the server too;
# - a pinned fingerprint: drift is compared with the pin, without asking the server;
# - a server that does not answer, or answers with another certificate, makes only the containers
#   that need it unplanned (exit 1), naming the server; the rest of the plan goes on;
# - protocol: lxd, with the test bed's own host as the image server (a public image).
# The host reaches the server through loopback, which LXD's proxy function never proxies
# (shared/proxy.go useProxy: loopback addresses and localhost go direct); tb.sh also sets NO_PROXY.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE
FLEET=$WORK/fleet.yaml
SRV=$WORK/server
SRV_PID=
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

stop_server() {
    if [[ -n "$SRV_PID" ]]; then
        kill "$SRV_PID" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
        SRV_PID=
    fi
}
# set +e: under set -e, `(exit 1)` would end the trap before lib.sh's _cleanup stops the test bed.
trap 'rc=$?; set +e; stop_server; (exit $rc); _cleanup' EXIT

case "$(uname -m)" in
    x86_64) SS_ARCH=amd64 ;;
    aarch64) SS_ARCH=arm64 ;;
    *) echo "1..0 # SKIP no simplestreams name for $(uname -m)"; exit 0 ;;
esac
command -v mksquashfs >/dev/null || { echo "mksquashfs not found; run scripts/install-deps.sh" >&2; exit 1; }

sha() { sha256sum "$@" | awk '{print $1}'; }

# make_rootfs DIR: the test bed's busybox tree.
make_rootfs() {
    local d=$1 a
    mkdir -p "$d"/rootfs/{bin,sbin,etc,proc,sys,dev,tmp,root}
    cp /bin/busybox "$d/rootfs/bin/busybox"
    for a in sh ls cat echo sleep hostname ps mount; do ln -s busybox "$d/rootfs/bin/$a"; done
    ln -s ../bin/busybox "$d/rootfs/sbin/init"
}

# metadata DIR SERIAL: metadata.yaml of one version (its serial makes each version's bytes differ
# from the others and from the bb image tb.sh imports).
metadata() {
    cat >"$1/metadata.yaml" <<EOF
architecture: $(uname -m)
creation_date: $(date +%s)
properties: {os: busybox, release: "1.35", serial: "$2", description: busybox from the test image server}
EOF
}

# Version 1: a unified tarball.
build_v1() {
    local d=$WORK/v1
    make_rootfs "$d"
    metadata "$d" 20260101_0000
    mkdir -p "$SRV/images/v1"
    tar -C "$d" -czf "$SRV/images/v1/lxd.tar.gz" metadata.yaml rootfs
    FP1=$(sha "$SRV/images/v1/lxd.tar.gz")
    SIZE1=$(stat -c %s "$SRV/images/v1/lxd.tar.gz")
}

# Version 2: split, metadata (xz) and a squashfs rootfs.
build_v2() {
    local d=$WORK/v2
    make_rootfs "$d"
    echo v2 >"$d/rootfs/etc/image-version"
    metadata "$d" 20260102_0000
    mkdir -p "$SRV/images/v2"
    tar -C "$d" -cJf "$SRV/images/v2/lxd.tar.xz" metadata.yaml
    mksquashfs "$d/rootfs" "$SRV/images/v2/rootfs.squashfs" -noappend -quiet -all-root >/dev/null
    FP2=$(cat "$SRV/images/v2/lxd.tar.xz" "$SRV/images/v2/rootfs.squashfs" | sha)
}

# write_streams [v2]: streams/v1/index.json and images.json listing version 1, and 2 when asked.
write_streams() {
    local with_v2=${1:-}
    mkdir -p "$SRV/streams/v1"
    cat >"$SRV/streams/v1/index.json" <<EOF
{"format": "index:1.0", "index": {"images": {"datatype": "image-downloads", "format": "products:1.0",
  "path": "streams/v1/images.json", "products": ["busybox:1.35:$SS_ARCH:default"]}}}
EOF
    local v2=
    if [[ -n "$with_v2" ]]; then
        v2=$(
            cat <<EOF
,
    "20260102_0000": {"items": {
      "lxd.tar.xz": {"ftype": "lxd.tar.xz", "path": "images/v2/lxd.tar.xz",
        "sha256": "$(sha "$SRV/images/v2/lxd.tar.xz")", "size": $(stat -c %s "$SRV/images/v2/lxd.tar.xz"),
        "combined_squashfs_sha256": "$FP2"},
      "root.squashfs": {"ftype": "squashfs", "path": "images/v2/rootfs.squashfs",
        "sha256": "$(sha "$SRV/images/v2/rootfs.squashfs")", "size": $(stat -c %s "$SRV/images/v2/rootfs.squashfs")}}}
EOF
        )
    fi
    cat >"$SRV/streams/v1/images.json" <<EOF
{"content_id": "images", "datatype": "image-downloads", "format": "products:1.0", "products": {
  "busybox:1.35:$SS_ARCH:default": {"aliases": "bb/test,bb/1.35", "arch": "$SS_ARCH", "os": "busybox",
    "release": "1.35", "release_title": "1.35", "variant": "default", "versions": {
    "20260101_0000": {"items": {
      "lxd_combined.tar.gz": {"ftype": "lxd_combined.tar.gz", "path": "images/v1/lxd.tar.gz",
        "sha256": "$FP1", "size": $SIZE1}}}$v2}}}}
EOF
}

# make_cert NAME ADDR: a self-signed certificate for ADDR (an IP SAN: the host verifies the address).
make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=berth image server test" -addext "subjectAltName=IP:$2" \
        -addext "extendedKeyUsage=serverAuth" \
        -keyout "$WORK/$1.key" -out "$WORK/$1.pem" 2>/dev/null
}

start_server() {
    cat >"$WORK/serve.py" <<'EOF'
import functools, http.server, ssl, sys
addr, port, root, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
httpd = http.server.ThreadingHTTPServer((addr, port), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
print("serving", flush=True)
httpd.serve_forever()
EOF
    "$PY" "$WORK/serve.py" "$SRV_ADDR" "$SRV_PORT" "$SRV" "$WORK/server.pem" "$WORK/server.key" \
        >"$WORK/server.log" 2>&1 &
    SRV_PID=$!
    local t
    for ((t = 0; t < 100; t++)); do
        curl -sf --noproxy '*' --cacert "$WORK/server.pem" "$SRV_URL/streams/v1/index.json" >/dev/null && return 0
        sleep 0.1
    done
    bail "the test image server did not start" "$(cat "$WORK/server.log")"
}

# write_fleet [WEB_EXTRA] [MORE]: web from the image server (WEB_EXTRA: more of its keys), MORE
# appended under containers.
write_fleet() {
    cat >"$FLEET" <<EOF
version: 1
remotes:
  h1: {url: "${TB_HOST1_URL}"}
images:
  bb: {remote: h1, alias: bb}
  served: {server: "$SRV_URL", alias: bb/test, certificate: ./server.pem}
  pinned: {server: "$SRV_URL", protocol: simplestreams, alias: bb/test, fingerprint: "$FP1", certificate: server.pem}
  silent: {server: "https://$SRV_ADDR:1", alias: bb/test, certificate: server.pem}
  impostor: {server: "$SRV_URL", alias: bb/test, certificate: other.pem}
containers:
  web:
    remote: h1
    image: served
${1:-}
${2:-}
EOF
}

test_validate() {
    run berth validate -f "$FLEET"
    assert_exit 0 "the fleet file with image servers is valid"
}

test_launch() {
    run berth plan -f "$FLEET" --json
    assert_exit 0 "plan a launch from the image server"
    assert_jq "$OUT" "$ACTION_SET" "launch h1:web" "web is launched"
    assert_jq "$OUT" '.actions[0].spec.image | "\(.server) \(.protocol) \(.alias)"' "$SRV_URL simplestreams bb/test" \
        "the JSON plan names the server, protocol and alias"
    assert_jq "$OUT" '.actions[0].spec.image.certificate | startswith("-----BEGIN CERTIFICATE-----")' true \
        "and carries the pinned certificate"
    run berth plan -f "$FLEET"
    assert_contains "$OUT" "from $SRV_URL bb/test" "the text plan shows where the image comes from"

    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "apply launches web from the image server"
    assert_eq Running "$(lxc_status h1 web)" "web runs"
    assert_eq "$FP1" "$(lxc_config h1 web volatile.base_image)" "web runs the unified image (fingerprint: its sha256)"
    assert_eq "$FP1" "$(tb_lxc query h1:/1.0/images/"$FP1" | jq -r .fingerprint)" "the host fetched it from the server"

    run berth plan -f "$FLEET" --json --detailed-exitcode
    assert_exit 0 "the second plan is empty"
    assert_jq "$OUT" '[.diagnostics[] | select(.path == "h1:web")] | length' 0 \
        "no drift: berth resolved the alias to the fingerprint the host gave the image"
}

test_drift_and_replace() {
    build_v2
    write_streams v2
    run berth plan -f "$FLEET" --json
    assert_exit 0 "a plan with drift from the image server"
    assert_jq "$OUT" "$ACTION_SET" "" "drift alone plans no action"
    assert_jq "$OUT" '[.diagnostics[] | select(.path == "h1:web") | .summary] | join(" ")' \
        "runs image ${FP1:0:12}, but $SRV_URL bb/test now resolves to ${FP2:0:12}; not replaced" \
        "the drift names the new version's combined fingerprint"

    run berth_t apply -f "$FLEET" --auto-approve --replace web
    check_hung apply
    assert_exit 1 "no recreate without consent"
    assert_eq "$FP1" "$(lxc_config h1 web volatile.base_image)" "nothing was recreated"

    # The host reads the server through its own cache of the index (an hour in LXD 5.0): it does
    # not see version 2 yet, so the recreate fails before anything is deleted.
    run berth_t apply -f "$FLEET" --auto-approve --replace web --allow-recreate
    check_hung apply
    assert_exit 1 "the host cannot fetch a version published after it cached the index"
    assert_contains "$OUT" "web was not deleted" "the failure says nothing was lost"
    assert_eq "$FP1" "$(lxc_config h1 web volatile.base_image)" "web still runs version 1"
    assert_eq Running "$(lxc_status h1 web)" "and still runs"

    # The hour passes: the host's cache of this server expires.
    local cache
    cache="$TB_HOST1_LXD_DIR/cache/$(printf '%s' "$SRV_URL" | sha256sum | awk '{print $1}')"
    [[ -d "$cache" ]] || bail "LXD's simplestreams cache is not where LXD 5.0 keeps it" "$cache"
    rm -rf "$cache"

    run berth_t apply -f "$FLEET" --auto-approve --replace web --allow-recreate
    check_hung apply
    assert_exit 0 "apply --replace --allow-recreate"
    assert_eq Running "$(lxc_status h1 web)" "web runs again"
    assert_eq "null" "$(tb_lxc query h1:/1.0/images/"$FP2" 2>/dev/null | jq -r .fingerprint 2>/dev/null || echo null)" \
        "the image fetched for the recreate is not left in the host's store"
    assert_eq "$FP2" "$(lxc_config h1 web volatile.base_image)" \
        "web runs the split image: LXD's fingerprint is combined_squashfs_sha256"
    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "no drift after the replace"
}

test_on_image_change_replace() {
    # Back to version 1 only: the alias names it again; on_image_change: replace plans the recreate.
    write_streams
    write_fleet '    on_image_change: replace
    recreate: allowed'
    run berth plan -f "$FLEET" --json
    assert_jq "$OUT" "$ACTION_SET" "recreate h1:web" "on_image_change: replace plans a recreate"
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "apply recreates web"
    assert_eq "$FP1" "$(lxc_config h1 web volatile.base_image)" "web runs version 1 again"
}

test_saved_plan() {
    local p=$WORK/launch.plan
    write_fleet '' '  web2: {remote: h1, image: served, state: stopped}'
    run berth plan -f "$FLEET" --out "$p"
    assert_exit 0 "plan --out with a launch from the image server"
    run berth show "$p" --json
    assert_jq "$OUT" '.actions[] | select(.container == "web2") | .spec.image.server' "$SRV_URL" \
        "the saved plan keeps the image server"
    run berth_t apply "$p"
    check_hung apply
    assert_exit 0 "apply of the saved plan"
    assert_eq "$FP1" "$(lxc_config h1 web2 volatile.base_image)" "web2 was launched from the server"
}

test_pinned() {
    write_fleet '' '  web2: {remote: h1, image: pinned, state: stopped}'
    stop_server
    run berth plan -f "$FLEET" --json --detailed-exitcode
    assert_jq "$OUT" '.not_planned | keys | join(",")' "h1:web" "with the server gone, web (not pinned) is not planned"
    assert_jq "$OUT" '.not_planned["h1:web"] | contains("'"$SRV_URL"'")' true "the reason names the server"
    assert_jq "$OUT" '[.diagnostics[] | select(.path == "h1:web2")] | length' 0 \
        "web2, pinned to the fingerprint it runs, needs no server"
    start_server
}

test_unreadable_servers() {
    write_fleet '' '  lost: {remote: h1, image: silent}
  fooled: {remote: h1, image: impostor}
  plain: {remote: h1, image: bb, state: stopped}'
    run berth plan -f "$FLEET" --json
    assert_exit 1 "a plan with unreadable image servers is incomplete"
    assert_jq "$OUT" '.not_planned | keys | join(",")' "h1:fooled,h1:lost" "only their containers are not planned"
    assert_jq "$OUT" '.not_planned["h1:lost"] | contains("https://'"$SRV_ADDR"':1")' true "the reason names the server"
    assert_jq "$OUT" '.not_planned["h1:fooled"] | test("does not match")' true "a server with another certificate is refused"
    assert_jq "$OUT" "$ACTION_SET" "launch h1:plain" "the rest is planned"
}

# protocol: lxd, against the test bed's own host: its bb image made public, pinned by the host's
# certificate. berth reads the alias as an untrusted client, as LXD's public image servers are read.
test_lxd_protocol() {
    local fp
    fp=$(tb_lxc query h1:/1.0/images/aliases/bb | jq -r .target)
    tb_lxc_q query -X PATCH "h1:/1.0/images/$fp" -d '{"public": true}'
    cp "$TB_HOST1_LXD_DIR/server.crt" "$WORK/h1.pem"
    cat >"$FLEET" <<EOF
version: 1
remotes:
  h1: {url: "${TB_HOST1_URL}"}
images:
  public: {server: "${TB_HOST1_URL}", protocol: lxd, alias: bb, certificate: h1.pem}
  private: {server: "${TB_HOST1_URL}", protocol: lxd, alias: no-such-alias, certificate: h1.pem}
containers:
  pub: {remote: h1, image: public, state: stopped}
  priv: {remote: h1, image: private, state: stopped}
EOF
    run berth plan -f "$FLEET" --json
    assert_jq "$OUT" "$ACTION_SET" "launch h1:pub" "a public alias on an LXD server resolves"
    assert_jq "$OUT" '.not_planned["h1:priv"] | test("no public image alias .no-such-alias.")' true \
        "an alias it does not have is named"
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_eq "$fp" "$(lxc_config h1 pub volatile.base_image)" "pub was launched from the LXD server's image"
    run berth plan -f "$FLEET" --json
    assert_jq "$OUT" '[.diagnostics[] | select(.path == "h1:pub")] | length' 0 "no drift for pub"
}

tb_start 1
add_secret "$(tb_password 1)"
run berth remote add h1 "$TB_HOST1_URL" --password "$(tb_password 1)" --accept-certificate
((RC == 0)) || bail "berth remote add h1" "$(_last_output)"

SRV_URL=$("$TB_SH" unused-addr "$TB_DIR")
SRV_ADDR=${SRV_URL#https://}
SRV_PORT=${SRV_ADDR##*:}
SRV_ADDR=${SRV_ADDR%:*}
make_cert server "$SRV_ADDR"
make_cert other "$SRV_ADDR"
build_v1
write_streams
start_server
log "image server $SRV_URL (v1 $FP1)"
write_fleet

test_validate
test_launch
test_drift_and_replace
test_on_image_change_replace
test_saved_plan
test_pinned
test_unreadable_servers
test_lxd_protocol
finish
