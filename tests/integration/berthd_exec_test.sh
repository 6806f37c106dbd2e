#!/usr/bin/env bash
# berthd_exec_test.sh — commands and files in containers on a berthd the test starts, driven by the stock lxc
# client, with the effects checked in the container (through lxc-attach, not berthd):
# - lxc exec: stdout and stderr apart, the exit code, stdin piped (5 MB, byte for byte), output of
#   20000 lines, --env with LXD's default PATH/HOME, --user/--group/--cwd, a missing command (127);
# - an interactive session through a pty: the container's /dev/pts, the window size, the exit code;
# - signals: SIGTERM to lxc reaches the command (143); a client killed with -9 leaves no command
#   running in the container;
# - record-output without websockets: the exit code and the output files under /logs, deleted
#   after; lxc info --show-log; a stopped container refuses exec;
# - lxc file push (owner, mode; a tree with a symlink), pull (-r), delete; a symlink pointing out of
#   the container resolves inside it, for reading and writing (the host's /etc is untouched);
# - /1.0/resources (cpus, memory, disks as the host counts them; lxc info --resources) and
#   /1.0/metrics (lxd_procs_total against the container's ps, LXD's names and labels; 403 to an
#   untrusted client; a metrics certificate reads it and nothing else);
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
# A client that reads slowly (its output goes to a pipe nobody reads for 2 s): the command is held
# back, and every line still arrives (berthd once queued the output until it gave up on the client).
SLOW=$(lxc exec b:c1 -- sh -c 'i=0; while [ $i -lt 100000 ]; do echo line-$i; i=$((i+1)); done' </dev/null |
    (sleep 2; wc -l))
assert_eq 100000 "$SLOW" "a slow reader gets all 100000 lines"
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
# In a subshell whose stderr is dropped: bash reports a job killed by a signal.
(
    lxc exec b:c1 -- sleep 102 </dev/null &
    echo $! >"$WORK/exec.pid"
    wait
) 2>/dev/null &
P=$!
for ((i = 0; i < 50; i++)); do in_c1 ps | grep -q "sleep 102" && break; sleep 0.1; done
kill -9 "$(cat "$WORK/exec.pid")"
wait "$P" || true
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

# --- files: push with owner and mode, pull, a tree, symlinks, delete; paths stay in the container
printf 'hello\n' >"$WORK/f1"
run l file push "$WORK/f1" b:c1/root/f1 --uid 1000 --gid 1001 --mode 0640
assert_exit 0 "lxc file push with --uid, --gid and --mode"
assert_eq "1000 1001 640 hello" "$(in_c1 sh -c 'stat -c "%u %g %a" /root/f1 | tr "\n" " "; cat /root/f1')" \
    "the container sees the file with that owner and mode"
assert_eq "$((${SUBUID_BASE:-1000000} + 1000))" "$(stat -c %u "$DIR/storage/containers/c1/rootfs/root/f1")" \
    "owned on the host by the mapped id"
run l file pull b:c1/root/f1 "$WORK/f1.back"
assert_exit 0 "lxc file pull"
assert_eq hello "$(cat "$WORK/f1.back")" "the pulled file has the content"
assert_eq 640 "$(stat -c %a "$WORK/f1.back")" "and the mode"
mkdir -p "$WORK/tree/a/b"
echo x >"$WORK/tree/a/b/x"
ln -s x "$WORK/tree/a/b/lnk"
run l file push -r "$WORK/tree" b:c1/root/
assert_exit 0 "lxc file push -r of a tree with a symlink"
assert_eq "x x" "$(in_c1 sh -c 'cat /root/tree/a/b/x; readlink /root/tree/a/b/lnk' | tr '\n' ' ' | sed 's/ $//')" \
    "the tree and its symlink are in the container"
run l file pull -r b:c1/root/tree "$WORK/back"
assert_exit 0 "lxc file pull -r"
assert_eq x "$(cat "$WORK/back/tree/a/b/x")" "the tree comes back"
run l file delete b:c1/root/f1
assert_exit 0 "lxc file delete"
assert_eq gone "$(in_c1 sh -c '[ -e /root/f1 ] && echo there || echo gone')" "the file is gone from the container"
in_c1 ln -s /../../../../../etc "/root/escape"
run l file pull b:c1/root/escape/passwd "$WORK/passwd"
assert_exit 1 "a symlink pointing out of the container resolves inside it (no /etc/passwd there)"
run l file push "$WORK/f1" b:c1/root/escape/pushed
assert_exit 0 "a push through it"
assert_eq hello "$(in_c1 cat /etc/pushed)" "lands in the container's /etc"
assert_eq 0 "$(find /etc -maxdepth 1 -name pushed | wc -l)" "and the host's /etc is untouched"

# --- the host's resources and the containers' metrics
run l query b:/1.0/resources
assert_eq "$(nproc --all)" "$(jq -r .cpu.total <<<"$OUT")" "/1.0/resources counts this host's cpus"
assert_eq "$(($(awk '/^MemTotal:/{print $2}' /proc/meminfo) * 1024))" "$(jq -r .memory.total <<<"$OUT")" \
    "and its memory"
assert_eq "$(find /sys/block -mindepth 1 -maxdepth 1 ! -name 'loop*' ! -name 'ram*' ! -name 'zram*' ! -name 'dm-*' | wc -l)" \
    "$(jq -r .storage.total <<<"$OUT")" "and its disks"
run l info --resources b:
assert_exit 0 "lxc info --resources"
assert_contains "$OUT" "Total: " "shows the memory"
run l query --raw b:/1.0/metrics
assert_exit 0 "lxc query /1.0/metrics"
PROCS=$(awk '/^lxd_procs_total\{.*name="c1"/{print $2}' <<<"$OUT")
# ps itself is one of the processes it lists.
assert_eq "$(($(in_c1 ps -o pid | tail -n +2 | wc -l) - 1))" "$PROCS" "lxd_procs_total is c1's number of processes"
assert_contains "$OUT" 'lxd_cpu_seconds_total{cpu="0",mode="user",name="c1",project="default",type="container"}' \
    "CPU time per cpu and mode, with LXD's labels"
assert_contains "$OUT" 'lxd_memory_MemTotal_bytes{name="c1",project="default",type="container"}' "and memory"
assert_not_contains "$OUT" 'name="c2"' "a stopped container has no metrics"
assert_eq 403 "$(curl -sk -o /dev/null -w '%{http_code}' "$BERTHD_URL/1.0/metrics")" "an untrusted client gets 403"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=metrics \
    -keyout "$WORK/metrics.key" -out "$WORK/metrics.crt" 2>/dev/null
run l config trust add b: "$WORK/metrics.crt" --type metrics
assert_exit 0 "lxc config trust add --type metrics"
MCURL=(curl -sk --cert "$WORK/metrics.crt" --key "$WORK/metrics.key" -o "$WORK/m.out" -w '%{http_code}')
assert_eq 200 "$("${MCURL[@]}" "$BERTHD_URL/1.0/metrics")" "a metrics certificate reads /1.0/metrics"
assert_contains "$(cat "$WORK/m.out")" "lxd_procs_total" "and gets the metrics"
assert_eq 403 "$("${MCURL[@]}" "$BERTHD_URL/1.0/instances")" "and nothing else"

# --- after a restart of berthd
kill -TERM "$BERTHD_PID"
wait "$BERTHD_PID" 2>/dev/null || true
berthd_start "$DIR" "$PASSWORD"
run l exec b:c1 -- echo still here
assert_eq "still here" "$OUT" "lxc exec into a container that ran through a restart of berthd"
assert_eq 0 "$(pgrep -fc "berthd forkexec" || true)" "no exec helper is left running"

finish
