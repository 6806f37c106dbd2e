#!/usr/bin/env bash
# man_test.sh — the man pages (man/) are true to the berth they ship with: berth(1) lists every
# command `berth --help` does and each has its page; every option a command's --help lists is in its
# page, and every option a page describes under OPTIONS is one the command has. With man-db
# installed, each page also formats without a warning (as lintian checks it).
#
# Environment: BERTH_BIN (the berth built), BERTH_SOURCE_DIR (the source tree).
set -euo pipefail

readonly BERTH=${BERTH_BIN:?BERTH_BIN must name the berth executable to test}
readonly SOURCE_DIR=${BERTH_SOURCE_DIR:?BERTH_SOURCE_DIR must name the source tree}
readonly MAN_DIR=$SOURCE_DIR/man
[[ -x $BERTH ]] || { echo "man_test: $BERTH is not executable" >&2; exit 1; }

FAILURES=0
# one_line TEXT: the lines of TEXT on one line.
one_line() { tr '\n' ' ' <<<"$1" | sed 's/ *$//'; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    FAILURES=$((FAILURES + 1))
}

# help_options COMMAND...: the long options `berth COMMAND... --help` lists (before its subcommands).
help_options() {
    "$BERTH" "$@" --help | sed '/^Subcommands:/,$d' | grep -oE '^ +(-[A-Za-z],)?--[a-z][a-z-]*' |
        grep -oE -- '--[a-z][a-z-]*' | LC_ALL=C sort -u
}

# page_options PAGE: every long option the page mentions anywhere.
page_options() {
    grep -oE '\\-\\-[a-z]([a-z]|\\-)*' "$1" | sed 's/\\-/-/g' | LC_ALL=C sort -u
}

# described_options PAGE: the long options the page's OPTIONS section describes (its .TP tags).
described_options() {
    awk '/^\.SH /{ in_options = ($2 == "OPTIONS") } in_options && tag { print } { tag = ($0 == ".TP") }' "$1" |
        grep -oE '\\-\\-[a-z]([a-z]|\\-)*' | sed 's/\\-/-/g' | LC_ALL=C sort -u
}

# check_page PAGE COMMAND...: each COMMAND is one command line ("plan", "state intents").
check_page() {
    local name=$1 page=$MAN_DIR/$1 command have=""
    shift
    [[ -f $page ]] || { fail "no man page $name"; return; }
    for command in "$@"; do
        local missing
        # shellcheck disable=SC2086 # "state intents" is two words
        have+=$'\n'$(help_options $command)
        # shellcheck disable=SC2086
        missing=$(LC_ALL=C comm -23 <(help_options $command) <(page_options "$page"))
        [[ -z $missing ]] ||
            fail "$name: berth ${command:+$command }has $(one_line "$missing"), which the page does not describe"
    done
    local stale
    stale=$(LC_ALL=C comm -13 <(sed '/^$/d' <<<"$have" | LC_ALL=C sort -u) <(described_options "$page"))
    local commands_of_page
    commands_of_page=$(printf 'berth%s, ' "${@/#/ }")
    [[ -z $stale ]] || fail "$name describes $(one_line "$stale"), which ${commands_of_page%, } does not have"
    echo "checked $name"
}

# subcommands COMMAND...: the subcommands `berth COMMAND... --help` lists, one a line.
subcommands() { "$BERTH" "$@" --help | sed -n '/^Subcommands:/,$p' | { grep -oE '^  [a-z][a-z-]*' || true; } | tr -d ' '; }

commands=$(subcommands)
[[ -n $commands ]] || { echo "man_test: berth --help lists no commands" >&2; exit 1; }
listed=$(grep -oE '^\.BR berth\\-[a-z\\-]+ \(1\)$' "$MAN_DIR/berth.1" |
    sed -E 's/^\.BR berth\\-//; s/ \(1\)$//; s/\\-/-/g')
for command in $commands; do
    grep -qx "$command" <<<"$listed" || fail "berth.1 does not list the command $command"
    [[ -f $MAN_DIR/berth-$command.1 ]] || fail "no man page berth-$command.1 for the command $command"
done
for command in $listed; do
    grep -qx "$command" <<<"$commands" || fail "berth.1 lists $command, which berth --help does not"
done

check_page berth.1 ""
# berth-COMMAND.1 describes the command, or all its subcommands (berth-remote.1: add, list, remove).
for command in $commands; do
    subs=$(subcommands "$command")
    if [[ -z $subs ]]; then
        check_page "berth-$command.1" "$command"
        continue
    fi
    lines=()
    for sub in $subs; do
        lines+=("$command $sub")
        grep -qF "berth ${command//-/\\-} ${sub//-/\\-}" "$MAN_DIR/berth-$command.1" ||
            fail "berth-$command.1 does not show berth $command $sub"
    done
    check_page "berth-$command.1" "${lines[@]}"
done

# Each page names its version as @PROJECT_VERSION@, which CMake fills in.
for page in "$MAN_DIR"/*.1; do
    grep -q '^\.TH .*"berth @PROJECT_VERSION@"' "$page" ||
        fail "$(basename "$page"): .TH does not name \"berth @PROJECT_VERSION@\""
done

# As lintian's manpage-has-errors-from-man check runs man.
if command -v man >/dev/null 2>&1; then
    for page in "$MAN_DIR"/*.1; do
        warnings=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
            man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
        [[ -z $warnings ]] || fail "$(basename "$page") formats with warnings: $warnings"
    done
    echo "formatted every page without warnings"
else
    echo "man_test: man is not installed; pages not formatted"
fi

if ((FAILURES > 0)); then
    echo "man_test: $FAILURES failed" >&2
    exit 1
fi
echo "man_test: all passed"
