#!/usr/bin/env bash
# berthd_exec_test.sh — commands in containers on a berthd the test starts, driven by the stock lxc
# client, with the effects checked in the container (through lxc-attach, not berthd):
# - lxc exec: stdout and stderr apart, the exit code, stdin piped (5 MB, byte for byte), output of
#   20000 lines, --env with LXD's default PATH/HOME, --user/--group/--cwd, a missing command (127);
# - an interactive session through a pty: the container's /dev/pts, the window size, the exit code;
# - signals: SIGTERM to lxc reaches the command (143); a client killed with -9 leaves no command
#   running in the container;
# - record-output without websockets: the exit code and the output files under /logs, deleted
#   after; lxc info --show-log; a stopped container refuses exec;
# - after a restart of berthd, lxc exec into the container that kept running works.
# shellcheck disable=SC2016 # sh -c scripts are for the container's shell
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSWORD="pw-$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
chmod 711 "$WORK" # containers' mapped root must reach their rootfs
DIR=$WORK/berthd
LXCPATH=$DIR/containers
BERTHD_PORT=$(free_port)
export BERTHD_PORT
berthd_start "$DIR" "$PASSWORD"
export LXD_CONF=$WORK/lxc
mkdir -p "$LXD_CONF"
l() { lxc "$@" </dev/null; }
# What runs in c1, as liblxc sees it (not through berthd).
in_c1() { lxc-attach -P "$LXCPATH" -n c1 -- /bin/busybox "$@" </dev/null; }
trap 'rc=$?; set +e; kill_containers "$LXCPATH"; (exit $rc); _cleanup' EXIT

bb_image "$WORK/bb.tar.gz"
tb_lxc_q remote add b "$BERTHD_URL" --accept-certificate --password "$PASSWORD"
tb_lxc_q image import "$WORK/bb.tar.gz" b: --alias bb
tb_lxc_q launch b:bb b:c1

# --- non-interactive
run l exec b:c1 -- sh -c 'echo out; echo err >&2; exit 3'
assert_exit 3 "lxc exec returns the command's exit code"
assert_eq out "$OUT" "stdout comes on stdout"
assert_eq err "$ERR" "stderr on stderr"
head -c 5000000 /dev/urandom >"$WORK/big"
assert_eq "$(md5sum <"$WORK/big" | cut -d' ' -f1)" \
    "$(lxc exec b:c1 -- /bin/busybox md5sum <"$WORK/big" | cut -d' ' -f1)" "5 MB piped to stdin arrive byte for byte"
run l exec b:c1 -- sh -c 'i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done'
assert_eq 20000 "$(printf '%s\n' "$OUT" | wc -l)" "20000 lines of output, all of them"
assert_eq line-19999 "$(printf '%s\n' "$OUT" | tail -1)" "in order"
run l exec b:c1 --env FOO=bar -- sh -c 'echo "$FOO|$PATH|$HOME|$USER|$LANG"'
assert_eq "bar|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root|root|C.UTF-8" "$OUT" \
    "--env, and LXD's default environment"
run l exec b:c1 --user 1000 --group 1001 --cwd /tmp -- sh -c 'id -u; id -g; pwd'
assert_eq "1000 1001 /tmp" "$(tr '\n' ' ' <<<"$OUT" | sed 's/ $//')" "--user, --group and --cwd"
SUBUID_BASE=$(awk -F: '$1=="root"{print $2; exit}' /etc/subuid)
run l exec b:c1 -- cat /proc/self/uid_map
assert_eq "0 ${SUBUID_BASE:-1000000}" "$(awk '{print $1, $2; exit}' <<<"$OUT")" \
    "the command runs in the container's user namespace (LXD's map)"
run l exec b:c1 -- nosuchcommand
assert_exit 127 "a missing command is 127"
assert_contains "$ERR" "nosuchcommand" "and says which"

# --- interactive, through a pty the test drives
cat >"$WORK/drive_pty.py" <<'EOF'
import os, pty, select, struct, sys, time, fcntl, termios
pid, fd = pty.fork()
if pid == 0:
    os.execvp("lxc", ["lxc", "exec", "b:c1", "--", "sh"])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
out = b""
def read_for(seconds):
    global out
    end = time.time() + seconds
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            if not data:
                return
            out += data
read_for(1.5)
os.write(fd, b"tty; stty size; echo marker-$((6*7)); exit 7\n")
read_for(5)
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
print("exit=%d" % os.waitstatus_to_exitcode(status))
EOF
run python3 "$WORK/drive_pty.py"
[ -n "$OUT" ] || echo "# drive_pty.py: $ERR"
assert_contains "$OUT" "marker-42" "an interactive shell runs what is typed"
assert_contains "$OUT" "$(printf '/dev/pts/')" "its terminal is in the container's /dev/pts"
assert_contains "$OUT" "33 101" "with the client's window size"
assert_contains "$OUT" "exit=7" "and its exit code comes back"

# --- signals and a client that goes away
lxc exec b:c1 -- sleep 101 </dev/null &
P=$!
for ((i = 0; i < 50; i++)); do in_c1 ps | grep -q "sleep 101" && break; sleep 0.1; done
kill -TERM "$P"
RC=0
wait "$P" || RC=$?
assert_eq 143 "$RC" "SIGTERM to lxc exec reaches the command (128+15)"
lxc exec b:c1 -- sleep 102 </dev/null &
P=$!
for ((i = 0; i < 50; i++)); do in_c1 ps | grep -q "sleep 102" && break; sleep 0.1; done
kill -9 "$P"
{ wait "$P"; } 2>/dev/null || true
for ((i = 0; i < 50; i++)); do in_c1 ps | grep -q "sleep 102" || break; sleep 0.1; done
assert_eq 0 "$(in_c1 ps | grep -c "sleep 102" || true)" "a client killed with -9 leaves no command behind"

# --- record-output, without websockets (what berth's exec: uses)
OP=$(l query -X POST -d '{"command":["sh","-c","echo recorded; echo oops >&2; exit 5"],"record-output":true,"wait-for-websocket":false}' \
    b:/1.0/instances/c1/exec)
OP=$(l query "b:/1.0/operations/$(jq -r .id <<<"$OP")/wait")
assert_eq 5 "$(jq -r '.metadata.return' <<<"$OP")" "a recorded command's exit code"
STDOUT_LOG=$(jq -r '.metadata.output["1"]' <<<"$OP")
STDERR_LOG=$(jq -r '.metadata.output["2"]' <<<"$OP")
run l query --raw "b:$STDOUT_LOG"
assert_eq recorded "$OUT" "its stdout is in the log the metadata names"
run l query --raw "b:$STDERR_LOG"
assert_eq oops "$OUT" "and its stderr"
assert_contains "$(l query b:/1.0/instances/c1/logs)" "$STDOUT_LOG" "the logs list has it"
run l query -X DELETE "b:$STDOUT_LOG"
assert_exit 0 "the recorded output can be deleted"
assert_not_contains "$(l query b:/1.0/instances/c1/logs)" "$STDOUT_LOG" "and is gone"
run l query -X DELETE b:/1.0/instances/c1/logs/lxc.log
assert_exit 1 "liblxc's log cannot be deleted"
run l query b:/1.0/instances/c1/logs/..%2Fconfig
assert_exit 1 "a log path outside the logs is refused"
run l info --show-log b:c1
assert_contains "$OUT" "lxc c1" "lxc info --show-log shows liblxc's log"

# --- errors
run l query -X POST -d '{"command":[]}' b:/1.0/instances/c1/exec
assert_exit 1 "an empty command is refused"
run l query -X POST -d '{"command":["true"],"user":-1}' b:/1.0/instances/c1/exec
assert_exit 1 "a negative user is refused"
tb_lxc_q init b:bb b:c2
run l exec b:c2 -- true
assert_exit 1 "exec in a stopped container is refused"
assert_contains "$ERR" "not running" "saying why"

# --- after a restart of berthd
kill -TERM "$BERTHD_PID"
wait "$BERTHD_PID" 2>/dev/null || true
berthd_start "$DIR" "$PASSWORD"
run l exec b:c1 -- echo still here
assert_eq "still here" "$OUT" "lxc exec into a container that ran through a restart of berthd"
assert_eq 0 "$(pgrep -fc "berthd forkexec" || true)" "no exec helper is left running"

finish
