#!/usr/bin/env bash
# completion_test.sh — the bash completion (completion/berth.bash) completes what the berth it
# completes accepts: commands, every command's options (checked against `berth COMMAND --help`),
# container and remote names from the fleet file the line names, addresses, remotes from `berth
# remote list --json`, the formats --format takes, and file names.
#
# Environment: BERTH_BIN (the berth built), BERTH_SOURCE_DIR (the source tree).
set -euo pipefail

readonly BERTH=${BERTH_BIN:?BERTH_BIN must name the berth executable to test}
readonly SOURCE_DIR=${BERTH_SOURCE_DIR:?BERTH_SOURCE_DIR must name the source tree}
[[ -x $BERTH ]] || { echo "completion_test: $BERTH is not executable" >&2; exit 1; }

WORK=$(mktemp -d)
readonly WORK
trap 'rm -rf "$WORK"' EXIT
FAILURES=0
# one_line TEXT: the lines of TEXT on one line.
one_line() { tr '\n' ' ' <<<"$1" | sed 's/ *$//'; }

# shellcheck source=/dev/null # completion/berth.bash
source "$SOURCE_DIR/completion/berth.bash"

# complete_words WORD...: the sorted completions of the last word (or of word $CURSOR), given the
# words as bash splits a line (at spaces, and at the : and = of COMP_WORDBREAKS: `--target=a:w`
# is `--target = a : w`).
complete_words() {
    local -a COMP_WORDS=("$@")
    local COMP_CWORD=${CURSOR:-$(($# - 1))} COMP_LINE="$*"
    local COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _berth berth "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" || true
    if ((${#COMPREPLY[@]} > 0)); then printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort; fi
}

# expect DESCRIPTION EXPECTED WORD...: the completions are exactly EXPECTED (space-separated).
expect() {
    local what=$1 expected actual
    expected=$(tr ' ' '\n' <<<"$2" | sed '/^$/d' | LC_ALL=C sort)
    shift 2
    actual=$(complete_words "$@")
    if [[ "$actual" != "$expected" ]]; then
        printf 'FAIL: %s\n  line: %s\n  expected: %s\n  got:      %s\n' "$what" "$*" "$(one_line "$expected")" \
            "$(one_line "$actual")" >&2
        FAILURES=$((FAILURES + 1))
    else
        printf 'ok: %s\n' "$what"
    fi
}

# help_options COMMAND...: the options `berth COMMAND... --help` lists, one a line, sorted (but -h:
# --help is completed).
help_options() {
    "$BERTH" "$@" --help | grep -oE '^ +(-[A-Za-z],)?--[a-z][a-z-]*' | tr ',' '\n' | sed 's/^ *//' |
        grep -v '^-h$' | LC_ALL=C sort -u
}

# Every option a command has is completed, and nothing else.
check_options() {
    local expected actual extra missing
    expected=$(help_options "$@")
    [[ -n $expected ]] || { echo "FAIL: berth $* --help lists no options" >&2; FAILURES=$((FAILURES + 1)); return; }
    actual=$(complete_words "$BERTH" "$@" -)
    missing=$(LC_ALL=C comm -23 <(echo "$expected") <(echo "$actual"))
    extra=$(LC_ALL=C comm -13 <(echo "$expected") <(echo "$actual"))
    if [[ -n $missing || -n $extra ]]; then
        printf 'FAIL: options of berth %s\n  not completed: %s\n  completed but not in --help: %s\n' "$*" \
            "$(one_line "$missing")" "$(one_line "$extra")" >&2
        FAILURES=$((FAILURES + 1))
    else
        printf 'ok: options of berth %s\n' "$*"
    fi
}

# --- commands and options --------------------------------------------------------------------------

# subcommands COMMAND...: the subcommands `berth COMMAND... --help` lists, one a line.
subcommands() { "$BERTH" "$@" --help | sed -n '/^Subcommands:/,$p' | { grep -oE '^  [a-z][a-z-]*' || true; } | tr -d ' '; }

commands=$(subcommands)
[[ -n $commands ]] || { echo "completion_test: berth --help lists no commands" >&2; exit 1; }
expect "the commands berth --help lists" "$(one_line "$commands")" "$BERTH" ""
# Each command line that runs something: "plan", "state intents", "remote add"...
command_lines=()
for command in $commands; do
    subs=$(subcommands "$command")
    if [[ -z $subs ]]; then
        command_lines+=("$command")
        continue
    fi
    expect "the subcommands berth $command --help lists" "$(one_line "$subs")" "$BERTH" "$command" ""
    for sub in $subs; do command_lines+=("$command $sub"); done
done
expect "a command from its start" "plan" "$BERTH" pl
expect "commands after global options" "show state" "$BERTH" --config-dir "$WORK" --no-color s
expect "global options" "--client-cert --client-key --config-dir --help --log-level --no-color --version" "$BERTH" --
expect "log levels" "trace debug info warn error off" "$BERTH" --log-level ""
expect "log level after =" "debug" "$BERTH" --log-level = d
expect "options of plan from their start" "--allow-move --allow-recreate --allow-restart" "$BERTH" plan --allow-
expect "options of apply from their start" "--allow-move --allow-recreate --allow-restart" "$BERTH" apply --allow-
expect "--destroy on plan" "--destroy --detailed-exitcode" "$BERTH" plan --de
expect "--json on validate" "--json" "$BERTH" validate --j
expect "berth remote: import-lxc among the subcommands" "import-lxc" "$BERTH" remote i
expect "options of remote import-lxc from their start" "--force --from" "$BERTH" remote import-lxc --f
expect "options of plan after global options" "--json" "$BERTH" --log-level info plan --js
expect "options of a command without arguments, on an empty word" "--format --help --json" "$BERTH" remote list ""
expect "nothing for a number" "" "$BERTH" plan --read-parallelism ""
expect "watch --mode" "correct report" "$BERTH" watch --mode ""
expect "watch --mode=" "report" "$BERTH" watch --mode = r
expect "--format on plan" "text json markdown" "$BERTH" plan --format ""
expect "--format= on show" "markdown" "$BERTH" show --format = m
expect "--format on apply: no markdown" "text json" "$BERTH" apply --format ""
expect "--format on remote list: no markdown" "text json" "$BERTH" remote list --format ""
expect "options after --format's value" "--json" "$BERTH" history --format json --js
expect "nothing for a duration" "" "$BERTH" watch --interval ""
expect "nothing for an address" "" "$BERTH" watch --listen ""
expect "options of watch after values" "--allow-empty --allow-move --allow-recreate --allow-restart" \
    "$BERTH" watch --interval 5m --jitter 10% --mode report --al
expect "options of history from their start" "--json" "$BERTH" history --j
expect "nothing for --limit" "" "$BERTH" history --limit ""
for command in "${command_lines[@]}"; do
    # shellcheck disable=SC2086 # two words for the subcommands
    check_options $command
done
# `--help` and `--version` of the top level, and the global options.
top=$("$BERTH" --help | sed '/^Subcommands:/,$d' | grep -oE '^ +(-[A-Za-z],)?--[a-z][a-z-]*' | tr ',' '\n' |
    sed 's/^ *//' | grep -v '^-h$' | LC_ALL=C sort -u | tr '\n' ' ')
expect "global options are those of berth --help" "$top" "$BERTH" --

# --- names from the fleet file ------------------------------------------------------------------------

mkdir -p "$WORK/fleet/sub" "$WORK/other"
cd "$WORK/fleet"
cat >berth.yaml <<'EOF'
# A fleet written the ways docs/fleet-file.md allows.
version: 1
name: test
remotes:
  a:
    url: https://10.0.0.1:8443   # a comment
  "b-2": {url: "https://10.0.0.2:8443"}

  c_3:
    url: unix:///var/lib/lxd/unix.socket
images:
  bb: {remote: a, alias: bb}
containers:
  # comment lines and blank lines are skipped

  web:
    remote: a
    image: bb
    devices:
      remote:                  # a device named `remote`, not the container's remote
        type: disk
        source: /srv
        path: /mnt
  'db': {remote: "b-2", image: bb, state: stopped}
  worker:
    image: bb
    config:
      user.remote: x
    remote: c_3
  unplaced:
    copy_of: web
prune: true
EOF
cat >"$WORK/other/fleet.yaml" <<'EOF'
version: 1
remotes:
  far: {url: "https://10.9.0.1:8443"}
containers:
  remote-box:
    remote: far
EOF
cp "$WORK/other/fleet.yaml" "$WORK/fleet/sub/x.yml"
: >"$WORK/fleet/notes.txt"

addresses="web a:web db b-2:db worker c_3:worker unplaced"
expect "--target: containers and addresses of berth.yaml" "$addresses" "$BERTH" plan --target ""
expect "--replace on apply" "$addresses" "$BERTH" apply --replace ""
expect "--target on destroy" "$addresses" "$BERTH" destroy --target ""
expect "--replace on plan" "$addresses" "$BERTH" plan --replace ""
expect "--target on apply" "$addresses" "$BERTH" apply --target ""
expect "--target after --destroy" "$addresses" "$BERTH" plan --destroy --target ""
expect "--target, a second time" "$addresses" "$BERTH" plan --target web --target ""
expect "--replace: an address after its remote" "db" "$BERTH" apply --replace b-2 : d
expect "--replace=ADDRESS" "web worker" "$BERTH" apply --allow-recreate --replace = w
expect "--target: a container from its start" "web worker" "$BERTH" plan --target w
# `--target a:w` reaches the completion as `a`, `:`, `w`, and bash replaces only `w`.
expect "--target: an address after its remote" "web" "$BERTH" plan --target a : w
expect "--target: an address right after the colon" "db" "$BERTH" plan --target b-2 :
expect "--target=ADDRESS" "$addresses" "$BERTH" plan --target = ""
expect "--target=REMOTE:CONTAINER" "worker" "$BERTH" plan --target = c_3 : w
expect "--target: the file -f names" "remote-box far:remote-box" "$BERTH" plan -f ../other/fleet.yaml --target ""
expect "--target: the file --file= names" "remote-box far:remote-box" \
    "$BERTH" apply --file = ../other/fleet.yaml --target ""
CURSOR=3 expect "--target: the file -f names after the cursor" "remote-box far:remote-box" \
    "$BERTH" plan --target "" -f ../other/fleet.yaml
cat >"$WORK/other/projects.yaml" <<'EOF'
version: 1
remotes:
  h1: {url: "https://10.9.0.1:8443"}
  h2:
    url: "https://10.9.0.2:8443"
    project: tenant
containers:
  web: {remote: h1, project: p}
  api:
    remote: h2
  db:
    project: default
    remote: h2
  plain: {remote: h1}
EOF
expect "--target: project addresses" "web p/web h1:p/web api tenant/api h2:tenant/api db h2:db plain h1:plain" \
    "$BERTH" plan -f ../other/projects.yaml --target ""
expect "--target: no fleet file, no names" "" "$BERTH" plan -f ../missing.yaml --target ""
expect "--target: -f -, no names" "" "$BERTH" plan -f - --target ""
# Not even from a file named `-`, nor from standard input (which awk reads for `-`).
mkdir -p "$WORK/dash"
cp "$WORK/other/fleet.yaml" "$WORK/dash/-"
cd "$WORK/dash"
expect "--target: -f -, no names from standard input" "" "$BERTH" apply --file = - --target "" <"$WORK/fleet/berth.yaml"
cd "$WORK/fleet"
mkdir -p "$WORK/home"
cp "$WORK/other/fleet.yaml" "$WORK/home/f.yaml"
# shellcheck disable=SC2088 # the ~ is typed, not expanded
HOME=$WORK/home expect "--target: the file -f names under ~" "remote-box far:remote-box" \
    "$BERTH" plan -f "~/f.yaml" --target ""
expect "remote add: remotes of berth.yaml" "a b-2 c_3" "$BERTH" remote add ""
expect "remote add: nothing for the URL" "" "$BERTH" remote add a ""

# --- remotes berth has pinned -------------------------------------------------------------------------

mkdir -p "$WORK/config"
cat >"$WORK/config/remotes.json" <<'EOF'
{"remotes": {"h1": {"url": "https://10.0.0.1:8443", "fingerprint": "ab"},
             "lab-2": {"url": "unix:///var/lib/lxd/unix.socket"}}}
EOF
expect "remote remove: berth remote list --json, --config-dir" "h1 lab-2" \
    "$BERTH" --config-dir "$WORK/config" remote remove ""
expect "remote remove: --config-dir=" "lab-2" "$BERTH" --config-dir = "$WORK/config" remote remove l
BERTH_CONFIG_DIR=$WORK/config expect "remote remove: BERTH_CONFIG_DIR" "h1 lab-2" "$BERTH" remote remove ""
expect "remote remove: an empty config dir" "" "$BERTH" --config-dir "$WORK/other" remote remove ""
expect "remote remove: one name, then options" "--help" "$BERTH" --config-dir "$WORK/config" remote remove h1 ""

# --- file names ---------------------------------------------------------------------------------------

expect "-f: fleet files, directories and - (standard input)" "- berth.yaml sub" "$BERTH" plan -f ""
expect "--file=: fleet files, directories and -" "- berth.yaml sub" "$BERTH" validate --file = ""
expect "-f -" "-" "$BERTH" destroy -f -
expect "--file=-" "-" "$BERTH" apply --file = -
expect "-f: in a directory" "sub/x.yml" "$BERTH" plan -f sub/
expect "-f: any file when no fleet file matches" "notes.txt" "$BERTH" plan -f n
expect "--out: any file" "berth.yaml notes.txt sub" "$BERTH" plan --out ""
expect "--state: any file" "notes.txt" "$BERTH" apply --state no
expect "watch -f: fleet files and directories, not - (watch re-reads the file)" "berth.yaml sub" "$BERTH" watch -f ""
expect "watch --file=: not -" "berth.yaml sub" "$BERTH" --log-level info watch --mode report --file = ""
expect "watch --events: any file, and - (standard output)" "- berth.yaml notes.txt sub" "$BERTH" watch --events ""
expect "watch --listen-token-file: any file" "notes.txt" "$BERTH" watch --listen-token-file no
expect "history --state: any file" "notes.txt" "$BERTH" history --state no
expect "--client-cert: any file" "notes.txt" "$BERTH" --client-cert no
expect "--client-key: any file, then the command" "notes.txt" "$BERTH" --client-cert x.crt --client-key no
expect "a command after --client-cert and --client-key" "plan" "$BERTH" --client-cert x.crt --client-key x.key pl
expect "show PLANFILE: any file" "berth.yaml notes.txt sub" "$BERTH" show ""
expect "apply PLANFILE: any file" "notes.txt" "$BERTH" apply n
expect "--config-dir: directories" "sub" "$BERTH" --config-dir ""
expect "remote import-lxc --from: directories" "sub" "$BERTH" remote import-lxc --from ""
expect "remote import-lxc --from=: directories" "sub" "$BERTH" remote import-lxc --dry-run --from = s
expect "remote import-lxc: options after --from DIR" "--dry-run" "$BERTH" remote import-lxc --from sub --d
# shellcheck disable=SC2088
HOME=$WORK/home expect "-f: under ~" "~/f.yaml" "$BERTH" plan -f "~/"
expect "show: one plan file, then options" "--format --help --json --max-file-size" "$BERTH" show berth.yaml ""

if ((FAILURES > 0)); then
    echo "completion_test: $FAILURES failed" >&2
    exit 1
fi
echo "completion_test: all passed"
