#!/usr/bin/env bash
# berthd_crash_test.sh — berthd killed with SIGKILL in the middle of a create (from an image),
# a snapshot and a copy, on a berthd the test starts, then started again:
# - the instance or snapshot being made is not listed, and nothing of it is left on disk (its
#   volume, its snapshot's volume, its liblxc config) nor in the database (no record, no journal);
# - the operation is reported failed (GET /1.0/operations/ID: Failure, with why);
# - the database and the disk agree: every volume in the pool is a listed instance and every
#   listed instance has its volume, the same for the snapshots;
# - what was there before the crash is untouched: the source container and its snapshots, and
#   the same create, snapshot and copy succeed after the restart.
# Each case kills berthd once the new volume appears on disk; the work is made slow enough (an
# image of 40000 small files) for the kill to land before it ends. When it still ended first (the
# operation is not in the journal after the restart), the case is tried again, at most 3 times.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSWORD="pw-$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
chmod 711 "$WORK" # containers' mapped root must reach their rootfs
DIR=$WORK/berthd
LXCPATH=$DIR/containers
POOL=$DIR/storage
BERTHD_PORT=$(free_port)
export BERTHD_PORT
berthd_start "$DIR" "$PASSWORD"
export LXD_CONF=$WORK/lxc
mkdir -p "$LXD_CONF"
l() { lxc "$@" </dev/null; }
trap 'rc=$?; set +e; kill_containers "$LXCPATH"; (exit $rc); _cleanup' EXIT
# The API through the unix socket, as a local client would reach it: the body, for a 202 the
# operation's id in .operation.
api() { curl -s --unix-socket "$DIR/unix.socket" -X "$1" ${3:+-d "$3"} "http://berthd$2"; }
db_query() { python3 -c 'import sqlite3, sys; print("\n".join("|".join(map(str, r)) for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2])))' "$DIR/berthd.db" "$1"; }

# The busybox image with 40000 small files in /data: unpacking, copying and snapshotting it on the
# dir pool takes long enough to be caught in the middle.
IMG=$WORK/slow-image
mkdir -p "$IMG"/rootfs/{bin,sbin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$IMG/rootfs/bin/"
for a in sh ls cat echo sleep; do ln -s busybox "$IMG/rootfs/bin/$a"; done
ln -s ../bin/busybox "$IMG/rootfs/sbin/init"
python3 - "$IMG/rootfs/data" <<'EOF'
import os, sys
for d in range(200):
    p = os.path.join(sys.argv[1], "d%03d" % d)
    os.makedirs(p)
    for f in range(200):
        with open(os.path.join(p, "f%03d" % f), "w") as out:
            out.write("%d/%d\n" % (d, f))
EOF
printf 'architecture: x86_64\ncreation_date: %s\nproperties: {os: busybox, description: many files}\n' \
    "$(date +%s)" >"$IMG/metadata.yaml"
tar -C "$IMG" -czf "$WORK/slow.tar.gz" metadata.yaml rootfs
rm -rf "$IMG"

tb_lxc_q remote add b "$BERTHD_URL" --accept-certificate --password "$PASSWORD"
tb_lxc_q image import "$WORK/slow.tar.gz" b: --alias slow
tb_lxc_q init b:slow b:src
tb_lxc_q snapshot b:src before
FP=$(l image info b:slow | awk '/^Fingerprint:/ {print $2}')

# crash_during WHAT MARKER METHOD PATH BODY: sends the request, kills berthd with SIGKILL as soon as
# MARKER exists, starts it again, and sets OP_ID and OP (the operation after the restart; "" when
# the operation had ended before the kill).
crash_during() {
    local what=$1 marker=$2 method=$3 path=$4 body=$5 answer i
    answer=$(api "$method" "$path" "$body")
    OP_ID=$(jq -r '.operation // "" | sub("^/1.0/operations/"; "")' <<<"$answer")
    [[ -n "$OP_ID" ]] || bail "$what: no operation in berthd's answer" "$answer"
    for ((i = 0; i < 20000; i++)); do
        [[ -e "$marker" ]] && break
        sleep 0.001
    done
    kill -KILL "$BERTHD_PID"
    wait "$BERTHD_PID" 2>/dev/null || true
    [[ -e "$marker" ]] || bail "$what: $marker never appeared" "$(tail -20 "$DIR.log")"
    berthd_start "$DIR" "$PASSWORD"
    OP=$(l query "b:/1.0/operations/$OP_ID" 2>/dev/null || true)
}

# agrees: the pool and the database hold the same instances and snapshots.
agrees() {
    local listed on_disk name
    listed=$(l query 'b:/1.0/instances' | jq -r '.[] | sub(".*/"; "")' | sort | tr '\n' ' ')
    on_disk=$(find "$POOL/containers" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' ')
    assert_eq "$listed" "$on_disk" "$1: the pool's volumes are the listed instances"
    for name in $listed; do
        listed=$(l query "b:/1.0/instances/$name/snapshots" | jq -r '.[] | sub(".*/"; "")' | sort | tr '\n' ' ')
        on_disk=""
        if [[ -d "$POOL/containers-snapshots/$name" ]]; then
            on_disk=$(find "$POOL/containers-snapshots/$name" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' ')
        fi
        assert_eq "$listed" "$on_disk" "$1: $name's snapshot volumes are its listed snapshots"
    done
    assert_eq "" "$(db_query "SELECT kind, key FROM documents WHERE kind IN ('pending', 'operation')")" \
        "$1: the journal is empty once berthd has started"
}

# failed_op WHAT: the operation after the restart is a Failure saying berthd stopped.
failed_op() {
    assert_eq "Failure" "$(jq -r .status <<<"$OP")" "$1: the operation is reported failed after the restart"
    assert_contains "$(jq -r .err <<<"$OP")" "berthd stopped before this operation finished" "$1: and says why"
    assert_contains "$(l query 'b:/1.0/operations?recursion=1' | jq -r '.failure[]?.id')" "$OP_ID" \
        "$1: it is listed among the failed operations"
}

# --- a create from the image
for attempt in 1 2 3; do
    name=made$attempt
    crash_during "create" "$POOL/containers/$name/rootfs/data" POST /1.0/instances \
        "{\"name\":\"$name\",\"source\":{\"type\":\"image\",\"fingerprint\":\"$FP\"}}"
    [[ -n "$OP" ]] && break
    log "create: ended before the kill; again"
done
[[ -n "$OP" ]] || bail "create: each of 3 creates ended before berthd was killed"
failed_op "create"
run l info "b:$name"
assert_exit 1 "create: the half-made instance is not listed"
assert_eq "no" "$([[ -e "$POOL/containers/$name" ]] && echo yes || echo no)" "create: its volume is gone"
assert_eq "no" "$([[ -e "$LXCPATH/$name" ]] && echo yes || echo no)" "create: its liblxc config is gone"
assert_eq "" "$(db_query "SELECT key FROM documents WHERE key = '$name'")" "create: no record of it"
assert_contains "$(cat "$DIR.log")" "removed instance $name, which berthd stopped before it finished making" \
    "create: berthd's log says what it removed"
agrees "create"
tb_lxc_q init b:slow "b:$name"
assert_eq "Stopped" "$(l query "b:/1.0/instances/$name" | jq -r .status)" "create: the same name can be made after"

# --- a snapshot
for attempt in 1 2 3; do
    snap=snap$attempt
    crash_during "snapshot" "$POOL/containers-snapshots/src/$snap" POST /1.0/instances/src/snapshots \
        "{\"name\":\"$snap\"}"
    [[ -n "$OP" ]] && break
    log "snapshot: ended before the kill; again"
done
[[ -n "$OP" ]] || bail "snapshot: each of 3 snapshots ended before berthd was killed"
failed_op "snapshot"
assert_eq "before" "$(l query 'b:/1.0/instances/src/snapshots' | jq -r '.[] | sub(".*/"; "")' | tr '\n' ' ' |
    sed 's/ $//')" "snapshot: only the snapshot made before is listed"
assert_eq "no" "$([[ -e "$POOL/containers-snapshots/src/$snap" ]] && echo yes || echo no)" \
    "snapshot: its volume is gone"
agrees "snapshot"
run l snapshot b:src "$snap"
assert_exit 0 "snapshot: the same snapshot can be made after"

# --- a copy (with its snapshots)
for attempt in 1 2 3; do
    name=copy$attempt
    crash_during "copy" "$POOL/containers/$name" POST /1.0/instances \
        "{\"name\":\"$name\",\"source\":{\"type\":\"copy\",\"source\":\"src\"}}"
    [[ -n "$OP" ]] && break
    log "copy: ended before the kill; again"
done
[[ -n "$OP" ]] || bail "copy: each of 3 copies ended before berthd was killed"
failed_op "copy"
run l info "b:$name"
assert_exit 1 "copy: the half-made copy is not listed"
assert_eq "no" "$([[ -e "$POOL/containers/$name" || -e "$POOL/containers-snapshots/$name" ]] && echo yes || echo no)" \
    "copy: its volume and snapshots are gone"
agrees "copy"
assert_eq "40000" "$(find "$POOL/containers/src/rootfs/data" -type f | wc -l)" "copy: the source is whole"
tb_lxc_q copy b:src "b:$name"
assert_eq "before $snap" "$(l query "b:/1.0/instances/$name/snapshots" | jq -r '.[] | sub(".*/"; "")' | sort |
    tr '\n' ' ' | sed 's/ $//')" "copy: the same copy can be made after, with the source's snapshots"
agrees "at the end"

finish
