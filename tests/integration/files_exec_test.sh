#!/usr/bin/env bash
# files_exec_test.sh — files: and exec: on a real LXD host:
#
# - a new container is created stopped, its files are pushed (content, a source file in a
#   directory that does not exist yet, a secret from the environment with mode 0600), it starts,
#   and its commands run in file order; the next plan is empty;
# - a changed source file is pushed again and only the command watching it runs again; the
#   when: create command never runs twice;
# - a failing command fails the apply with its exit code and output, and runs again next time;
#   allow_failure: true records it as run;
# - a saved plan pushes what it showed, and refuses a source file changed since;
# - a container that existed before berth declared a when: create command does not run it;
# - the secret never appears in output, plans or the state file.
# shellcheck disable=SC2016 # jq filters and shell snippets for the container use $ literally
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$WORK/state.db
export BERTH_STATE=$STATE
FLEET=$WORK/fleet.yaml
export APP_SECRET="s3cr3t-token-$RANDOM$RANDOM"
add_secret "$APP_SECRET"

# write_fleet [EXTRA_EXEC]: web with three files and three commands (EXTRA_EXEC: more exec
# entries, indented by 6), and old (made by hand before it was declared).
write_fleet() {
    tb_fleet_header "$FLEET"
    cat >>"$FLEET" <<EOF
containers:
  web:
    remote: h1
    image: bb
    files:
      /etc/motd: {content: "hello\n", mode: "0644"}
      /etc/app/app.conf: {source: ./app.conf, uid: 0, gid: 0}
      /root/secret: {content: "\${env:APP_SECRET}", mode: 0600}
      /etc/app.env: {content: "KEY=\${env:APP_SECRET}\n"}
    exec:
      init: {command: [sh, -c, "echo ready >> /root/ready"], when: create}
      reload: {command: [sh, -c, "cat /etc/app/app.conf >> /root/reloads"], when: change, watch: [/etc/app/app.conf]}
      greet:
        command: [sh, -c, 'echo "\$GREETING" > /root/greeting; echo "token is \$TOKEN"; printf "%s-x\\n" "\$(cat /etc/app.env)"']
        when: change
        environment: {GREETING: hi, TOKEN: "\${env:APP_SECRET}"}
${1:-}
  old:
    remote: h1
    image: bb
    exec:
      init: {command: [sh, -c, "echo ran > /root/init"], when: create}
EOF
}

in_web() { tb_lxc exec h1:web -- "$@"; }

test_first_apply() {
    echo "version 1" >"$WORK/app.conf"
    write_fleet
    tb_container h1 old running
    run berth plan -f "$FLEET" --json
    assert_exit 0 "plan"
    assert_jq "$OUT" '[.actions[] | select(.container == "web") | .id] | join(", ")' \
        "launch h1:web, push h1:web, start h1:web, exec h1:web init, exec h1:web reload, exec h1:web greet" \
        "web: launched stopped, files pushed, started, commands in file order"
    assert_jq "$OUT" '[.diagnostics[] | select(.path == "h1:old") | .summary | test("init .when: create. does not run")] | any' \
        true "old existed before: its when: create command is not run (a warning says so)"
    assert_jq "$OUT" '[.actions[] | select(.container == "old" and .action == "exec")] | length' 0 "no exec for old"
    assert_jq "$OUT" '.actions[] | select(.id == "exec h1:web greet") | .spec.exec.environment.TOKEN' "(sensitive)" \
        "the secret environment value is masked in the plan"
    run berth plan -f "$FLEET"
    assert_contains "$OUT" "! exec      h1:web init" "the text plan shows exec actions"
    assert_contains "$OUT" "/root/secret: (not pushed by berth) -> hmac-sha256:" "the text plan shows each file's digest"
    assert_contains "$OUT" "mode 0600, owner 0:0, content (sensitive)" "and its mode and owner"
    assert_no_secret "$OUT" "$APP_SECRET" "plan text"

    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "apply pushes and runs"
    assert_contains "$OUT" "exec h1:web init: done" "init ran"
    assert_no_secret "$OUT" "$APP_SECRET" "apply output"
    assert_contains "$OUT" "stdout: token is (sensitive)" "a secret a command prints is masked"
    assert_contains "$OUT" "stdout: KEY=(sensitive)-x" "also when it prints the secret within other text"
    assert_eq Running "$(lxc_status h1 web)" "web runs"
    assert_eq "hello" "$(in_web cat /etc/motd)" "/etc/motd was pushed"
    assert_eq "version 1" "$(in_web cat /etc/app/app.conf)" "app.conf was pushed into a new directory"
    assert_eq "$APP_SECRET" "$(in_web cat /root/secret)" "the secret file has the environment's value"
    assert_contains "$(in_web ls -ln /root/secret)" "-rw-------" "the secret file has mode 0600"
    assert_eq "ready" "$(in_web cat /root/ready)" "init ran once"
    assert_eq "version 1" "$(in_web cat /root/reloads)" "reload ran once, after the files were there"
    assert_eq "hi" "$(in_web cat /root/greeting)" "greet got its environment"
    assert_eq "<unset>" "$(tb_lxc exec h1:old -- cat /root/init 2>/dev/null || echo '<unset>')" "old's init did not run"
    assert_no_secret "$(lxc_config h1 web user.berth.files)$(lxc_config h1 web user.berth.exec)" "$APP_SECRET" "berth's records"
    assert_no_secret_in_dir "$BERTH_CFG" "$APP_SECRET" "the config directory"
    assert_no_secret_in_dir "$WORK" "$APP_SECRET" "the state file and everything else berth wrote"
    assert_eq 600 "$(stat -c %a "$BERTH_CFG/digest.key")" "the digest key is private"

    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "nothing to do after apply (secret file and command included)"
}

test_change() {
    echo "version 2" >"$WORK/app.conf"
    write_fleet
    run berth plan -f "$FLEET" --json
    assert_exit 0 "plan after app.conf changed"
    assert_jq "$OUT" '[.actions[] | .id] | join(", ")' "push h1:web, exec h1:web reload" \
        "only app.conf is pushed and only reload runs"
    assert_jq "$OUT" '[.actions[0].changes[].path] | join(",")' "files./etc/app/app.conf" "one file"
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "apply of the change"
    assert_eq "version 2" "$(in_web cat /etc/app/app.conf)" "the new content is there"
    assert_eq "$(printf 'version 1\nversion 2')" "$(in_web cat /root/reloads)" "reload ran a second time"
    assert_eq "ready" "$(in_web cat /root/ready)" "init did not run twice"
    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "nothing to do"
}

test_failing_command() {
    write_fleet '      fail: {command: [sh, -c, "echo oops-out; echo oops-err >&2; exit 3"], when: change}'
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 1 "a failing command fails the apply"
    assert_contains "$OUT" "exit code 3" "its exit code is shown"
    assert_contains "$OUT" "stderr: oops-err" "its stderr is shown"
    assert_contains "$OUT" "stdout: oops-out" "its stdout is shown"
    run berth plan -f "$FLEET" --json
    assert_jq "$OUT" "$ACTION_SET" "exec h1:web" "it is planned again"
    run berth_t apply -f "$FLEET" --auto-approve --json
    assert_exit 1 "it fails again"
    assert_jq "$(grep '"failed"' <<<"$OUT" | head -1)" '.exit_code' 3 "apply --json has the exit code"

    write_fleet '      fail: {command: [sh, -c, "exit 3"], when: change, allow_failure: true}'
    run berth_t apply -f "$FLEET" --auto-approve
    check_hung apply
    assert_exit 0 "with allow_failure: true the apply succeeds"
    assert_contains "$OUT" "exit code 3" "the exit code is still reported"
    run berth plan -f "$FLEET" --detailed-exitcode
    assert_exit 0 "a command allowed to fail counts as run"
}

test_saved_plan() {
    local p=$WORK/push.plan
    echo "version 3" >"$WORK/app.conf"
    write_fleet
    run berth plan -f "$FLEET" --out "$p"
    assert_exit 0 "plan --out"
    assert_no_secret "$(cat "$p")" "$APP_SECRET" "the saved plan"
    assert_not_contains "$(cat "$p")" "version 3" "the saved plan holds no file content"
    echo "version 4" >"$WORK/app.conf"
    run berth_t apply "$p"
    assert_exit 1 "a saved plan refuses a source file changed since"
    assert_contains "$ERR" "/etc/app/app.conf differs from when the plan was made" "and says which"
    assert_eq "version 2" "$(in_web cat /etc/app/app.conf)" "nothing was pushed"
    echo "version 3" >"$WORK/app.conf"
    run berth_t apply "$p"
    check_hung apply
    assert_exit 0 "the saved plan applies once the file is as planned"
    assert_eq "version 3" "$(in_web cat /etc/app/app.conf)" "the planned content was pushed"
}

tb_start 2
add_remotes
test_first_apply
test_change
test_failing_command
test_saved_plan
finish
