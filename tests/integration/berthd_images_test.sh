#!/usr/bin/env bash
# berthd_images_test.sh — images between servers, on a mixed test bed: h1 and h2 are berthd, h3 is
# a real LXD 5.0. The bb image is on h1 and h3 only.
# - `lxc image copy h1:bb h2:` (a private image: lxc asks h1 for a secret, h2 downloads with it);
# - `lxc launch` across remotes in every direction: berthd from berthd, berthd from LXD (h2 has no
#   copy of the image then: it downloads it), and LXD from berthd (LXD's own download code reads
#   berthd's untrusted image endpoints); volatile.base_image is the image's fingerprint everywhere;
# - an image secret is single-use and only for its image: a stranger without one, with another
#   image's, with a revoked one or after its use is over gets 404; a public image needs none;
# - berth launches a container on h2 from the image on h1 (the plan's image remote is another
#   berthd), and its plan is empty afterwards.
# shellcheck disable=SC2016 # jq filters use jq's $variables
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tb_start 3 berthd,berthd,lxd
# tb_start imports bb everywhere; h2 is to start without it.
tb_lxc_q image delete h2:bb
FP=$(tb_lxc query h1:/1.0/images/aliases/bb | jq -r .target)
ucurl() { curl -sk --max-time 10 -o "$WORK/body" -w '%{http_code}' "$@"; }
secret_of() { curl -s --max-time 10 --unix-socket "$TB_HOST1_SOCKET" -X POST "http://b/1.0/images/$1/secret"; }

# --- lxc image copy, berthd to berthd
run tb_lxc image copy h1:bb h2: --alias bb-copy
assert_exit 0 "lxc image copy h1:bb h2: (a private image, with a secret)"
assert_eq "$FP" "$(tb_lxc query h2:/1.0/images/aliases/bb-copy | jq -r .target)" "h2 has it under the new alias"
assert_eq "$FP" "$(sha256sum "$TB_HOST2_LXD_DIR/images/$FP" | cut -d' ' -f1)" "the file h2 stored is the image"
assert_eq false "$(tb_lxc query "h2:/1.0/images/$FP" | jq -r .cached)" "a copy made on purpose is not a cache"
tb_lxc_q image delete h2:bb-copy

# --- launches across remotes
run tb_lxc launch h3:bb h2:from-lxd -q
assert_exit 0 "lxc launch h3:bb h2:from-lxd (berthd downloads from LXD)"
assert_eq Running "$(lxc_status h2 from-lxd)" "it runs"
assert_eq RUNNING "$(lxc-info -P "$TB_HOST2_LXD_DIR/containers" -n from-lxd -sH)" "liblxc runs it on h2"
assert_eq "$FP" "$(lxc_config h2 from-lxd volatile.base_image)" "volatile.base_image is the image"
assert_eq true "$(tb_lxc query "h2:/1.0/images/$FP" | jq -r .cached)" "the image fetched for a launch is cached"
run tb_lxc launch h1:bb h2:from-berthd -q
assert_exit 0 "lxc launch h1:bb h2:from-berthd (berthd from berthd; the image is cached now)"
assert_eq Running "$(lxc_status h2 from-berthd)" "it runs"
run tb_lxc launch h1:bb h3:on-lxd -q
assert_exit 0 "lxc launch h1:bb h3:on-lxd (LXD downloads from berthd)"
assert_eq Running "$(lxc_status h3 on-lxd)" "it runs on LXD"
assert_eq "$FP" "$(lxc_config h3 on-lxd volatile.base_image)" "LXD's volatile.base_image is the same fingerprint"

# --- lxc publish: a stopped container and a snapshot become images that berthd and LXD launch
run tb_lxc publish h2:from-berthd h2: --alias pub
assert_exit 1 "a running container is not published"
assert_contains "$ERR" "running" "the refusal says why"
tb_lxc_q stop h2:from-berthd --force
printf 'published\n' >"$WORK/marker"
tb_lxc_q snapshot h2:from-berthd before
cp "$WORK/marker" "$TB_HOST2_LXD_DIR/storage/containers/from-berthd/rootfs/root/marker"
# Owned by the container's root, as the host sees it (the base of its id map).
base=$(lxc_config h2 from-berthd volatile.last_state.idmap | jq -r '.[0].Hostid')
chown "$base:$base" "$TB_HOST2_LXD_DIR/storage/containers/from-berthd/rootfs/root/marker"
run tb_lxc publish h2:from-berthd h2: --alias pub os=published-os
assert_exit 0 "lxc publish h2:from-berthd --alias pub os=published-os"
PUB=$(tb_lxc query h2:/1.0/images/aliases/pub | jq -r .target)
assert_eq published-os "$(tb_lxc query "h2:/1.0/images/$PUB" | jq -r .properties.os)" "the command's properties replace the image's"
assert_eq "$PUB" "$(sha256sum "$TB_HOST2_LXD_DIR/images/$PUB" | cut -d' ' -f1)" "its fingerprint is the tarball's sha256"
run tar -tvzf "$TB_HOST2_LXD_DIR/images/$PUB" ./rootfs/root/marker rootfs/root/marker
assert_contains "$OUT" " 0/0 " "owners are mapped back out of the container's map (its root is root in the image)"
assert_eq metadata.yaml "$(tar -tzf "$TB_HOST2_LXD_DIR/images/$PUB" | head -1)" "metadata.yaml comes first"
run tb_lxc launch h2:pub h2:from-pub -q
assert_exit 0 "berthd launches its published image"
assert_eq published "$(cat "$TB_HOST2_LXD_DIR/storage/containers/from-pub/rootfs/root/marker")" "with the container's files"
run tb_lxc launch h2:pub h3:lxd-from-pub -q
assert_exit 0 "LXD launches berthd's published image (it downloads it from h2)"
assert_eq published "$(tb_lxc file pull h3:lxd-from-pub/root/marker - 2>/dev/null)" "LXD sees the file"
assert_eq "0 0" "$(tb_lxc exec h3:lxd-from-pub -- /bin/busybox stat -c '%u %g' /root/marker 2>/dev/null)" \
    "owned by root inside LXD's container"
run tb_lxc publish h2:from-berthd/before h2: --alias pub-snap
assert_exit 0 "lxc publish of a snapshot"
SNAP_IMG=$(tb_lxc query h2:/1.0/images/aliases/pub-snap | jq -r .target)
run tar -tzf "$TB_HOST2_LXD_DIR/images/$SNAP_IMG"
assert_not_contains "$OUT" "rootfs/root/marker" "the snapshot's image is the snapshot (no later file)"
tb_lxc_q start h2:from-berthd

# --- an export is named by its fingerprint, never by a recorded filename (lxc writes the file under
# the name it is given)
bb_image "$WORK/other.tar.gz"
OTHER=$(sha256sum "$WORK/other.tar.gz" | cut -d' ' -f1)
op=$(curl -sf --max-time 20 --unix-socket "$TB_HOST1_SOCKET" -X POST -H "X-LXD-filename: ../../escaped.tar.gz" \
    --data-binary @"$WORK/other.tar.gz" http://b/1.0/images | jq -r .operation)
tb_lxc_q query "h1:$op/wait"
mkdir -p "$WORK/exported/inner"
run tb_lxc image export "h1:$OTHER" "$WORK/exported/inner/"
assert_exit 0 "lxc image export of an image uploaded with a hostile filename"
assert_eq "$OTHER.tar.gz" "$(ls "$WORK/exported/inner")" "the file is named FINGERPRINT.tar.gz, in the target dir"
assert_eq "" "$(find "$WORK" -name escaped.tar.gz)" "nothing is written where the recorded name points"

# --- the image endpoints for a stranger
assert_eq 404 "$(ucurl "$TB_HOST1_URL/1.0/images/$FP")" "a private image without a secret: 404"
assert_eq 404 "$(ucurl "$TB_HOST1_URL/1.0/images/$FP/export")" "its export without a secret: 404"
assert_eq 404 "$(ucurl "$TB_HOST1_URL/1.0/images/aliases/bb")" "its alias: 404"
assert_eq '[]' "$(ucurl "$TB_HOST1_URL/1.0/images" >/dev/null; jq -c .metadata "$WORK/body")" "the list shows no private image"
assert_eq 403 "$(ucurl -X POST "$TB_HOST1_URL/1.0/images/$FP/secret")" "a stranger cannot ask for a secret"
op=$(secret_of "$FP")
secret=$(jq -r .metadata.metadata.secret <<<"$op")
add_secret "$secret"
assert_eq 64 "${#secret}" "POST /1.0/images/FP/secret gives a 64-character secret"
assert_eq "/1.0/images/$FP" "$(jq -r '.metadata.resources.images[0]' <<<"$op")" "for that image"
# Another image: FP's first 12 characters and a 13th that differs from FP's (the same one would be
# a prefix of FP, which names the image itself).
other_fp=${FP:0:12}$([[ "${FP:12:1}" == 0 ]] && echo 1 || echo 0)
assert_eq 404 "$(ucurl "$TB_HOST1_URL/1.0/images/$other_fp/export?secret=$secret")" "not for another image"
assert_eq 404 "$(ucurl "$TB_HOST1_URL/1.0/images/$FP?secret=x$secret")" "a wrong secret: 404"
assert_eq 200 "$(ucurl "$TB_HOST1_URL/1.0/images/$FP?secret=$secret")" "the image with its secret"
assert_eq "$FP" "$(jq -r .metadata.fingerprint "$WORK/body")" "is the image"
assert_eq Cancelled "$(tb_lxc query "h1:$(jq -r .operation <<<"$op")" | jq -r .status)" "the secret is used up (single use)"
assert_eq 200 "$(ucurl "$TB_HOST1_URL/1.0/images/$FP/export?secret=$secret")" "the export that follows, with the same secret"
assert_eq "$FP" "$(sha256sum "$WORK/body" | cut -d' ' -f1)" "sends the image's bytes"
sleep 11 # berthd keeps a finished operation 10 s
assert_eq 404 "$(ucurl "$TB_HOST1_URL/1.0/images/$FP/export?secret=$secret")" "and not once its operation is gone"
op=$(secret_of "$FP")
secret=$(jq -r .metadata.metadata.secret <<<"$op")
add_secret "$secret"
tb_lxc_q query -X DELETE "h1:$(jq -r .operation <<<"$op")"
assert_eq 404 "$(ucurl "$TB_HOST1_URL/1.0/images/$FP?secret=$secret")" "a revoked secret: 404"
tb_lxc_q query -X PATCH "h1:/1.0/images/$FP" --data '{"public": true}'
assert_eq 200 "$(ucurl "$TB_HOST1_URL/1.0/images/aliases/bb")" "a public image's alias needs no secret"
assert_eq 200 "$(ucurl "$TB_HOST1_URL/1.0/images/$FP/export")" "nor its export"
tb_lxc_q query -X PATCH "h1:/1.0/images/$FP" --data '{"public": false}'
assert_no_secret "$(cat "$TB_DIR"/host1.log "$TB_DIR"/host2.log)" "$secret" "no secret in berthd's logs"

# --- berth: a launch on h2 from the image on h1
run berth remote add h1 "$TB_HOST1_URL" --password "$(tb_password 1)" --accept-certificate
assert_exit 0 "berth remote add h1"
run berth remote add h2 "$TB_HOST2_URL" --password "$(tb_password 2)" --accept-certificate
assert_exit 0 "berth remote add h2"
FLEET=$WORK/fleet.yaml
tb_fleet_header "$FLEET"
cat >>"$FLEET" <<'EOF'
containers:
  web: {remote: h2, image: bb, config: {user.role: web}}
EOF
export BERTH_STATE=$WORK/state.db
tb_lxc_q image delete "h2:$FP" # from scratch: h2 must fetch the image again
# lxc's launch on h3 above asked h1 for a secret that LXD never used (h3 had the image): revoked
# here, so that what is left after berth's apply is berth's.
for op in $(tb_lxc query h1:/1.0/operations | jq -r '.running // [] | .[]'); do tb_lxc_q query -X DELETE "h1:$op"; done
run berth_t apply -f "$FLEET" --auto-approve
check_hung apply
assert_exit 0 "berth apply launches web on h2 from h1's image"
assert_eq Running "$(lxc_status h2 web)" "web runs on h2"
assert_eq "$FP" "$(lxc_config h2 web volatile.base_image)" "from the image on h1"
assert_eq 0 "$(tb_lxc query h1:/1.0/operations | jq '.running // [] | length')" "berth left no image secret on h1"
run berth plan -f "$FLEET" --detailed-exitcode
assert_exit 0 "the plan is empty after the apply"

finish
