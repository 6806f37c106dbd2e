#!/usr/bin/env bash
# examples_test.sh — what can be checked of the GitOps examples without a host or a CI service:
#   - every examples/*.yml and *.yaml parses as YAML; github-actions.yml has the shape of a GitHub
#     Actions workflow (on: pull_request and push, jobs with runs-on and steps, secrets only through
#     env:, a concurrency group on apply) and gitlab-ci.yml that of a GitLab CI pipeline (stages,
#     jobs with a script in one of them, merge request rules, a resource_group);
#   - every berth command the examples run (pipeline scripts, systemd Exec lines) is one that the
#     berth built here has, with options its --help lists (tests/shell/examples_check.py);
#   - systemd-analyze verify takes berth-apply.service and berth-apply.timer without a message, and
#     the service runs a oneshot `berth apply --auto-approve` with credentials from systemd, never
#     written in the unit.
# systemd_unit_test.sh verifies every unit of examples/ too; this test adds what is particular to
# the scheduled apply.
#
# Environment: BERTH_BIN (the berth built), BERTH_SOURCE_DIR (the source tree).
set -euo pipefail

readonly BERTH=${BERTH_BIN:?BERTH_BIN must name the berth executable to test}
readonly SOURCE_DIR=${BERTH_SOURCE_DIR:?BERTH_SOURCE_DIR must name the source tree}
readonly EXAMPLES=$SOURCE_DIR/examples
readonly CHECK=$SOURCE_DIR/tests/shell/examples_check.py
[[ -x $BERTH ]] || { echo "examples_test: $BERTH is not executable" >&2; exit 1; }
# Debian's python3 with python3-yaml (scripts/install-deps.sh installs both), not whatever python3
# comes first in PATH.
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
if ! "$PY" -c 'import yaml' 2>/dev/null; then
    echo "examples_test: FAILED, not run: $PY cannot import yaml (Debian package python3-yaml;" \
        "scripts/install-deps.sh installs it)" >&2
    exit 1
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "examples_test: FAILED, not run: systemd-analyze is not installed (Debian package systemd;" \
        "scripts/install-deps.sh installs it)" >&2
    exit 1
fi
BERTH_ABS=$(realpath "$BERTH")
readonly BERTH_ABS
[[ $BERTH_ABS != *[[:space:]]* ]] ||
    { echo "examples_test: $BERTH_ABS has a space, which an ExecStart= line cannot take" >&2; exit 1; }

WORK=$(mktemp -d)
readonly WORK
trap 'rm -rf "$WORK"' EXIT
FAILURES=0
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    FAILURES=$((FAILURES + 1))
}

# --- the YAML, and the berth commands the examples run ---------------------------------------------

# The checker is not blind: it reports an unknown command or option, and finds commands in scripts.
"$PY" "$CHECK" --self-test "$BERTH_ABS" || fail "examples_check.py --self-test"

"$PY" "$CHECK" "$BERTH_ABS" "$EXAMPLES" || fail "the examples (above)"

# ...and a file that is not YAML, or a pipeline job without a script, fails it.
mkdir -p "$WORK/bad"
cp "$EXAMPLES/github-actions.yml" "$EXAMPLES/gitlab-ci.yml" "$WORK/bad/"
printf 'jobs:\n  plan:\n\truns-on: x\n' >"$WORK/bad/github-actions.yml"
printf 'build:\n  stage: plan\n' >>"$WORK/bad/gitlab-ci.yml"
out=$("$PY" "$CHECK" "$BERTH_ABS" "$WORK/bad" 2>&1) && fail "broken examples were accepted: $out"
for expected in "github-actions.yml is not valid YAML" "job build has no script"; do
    if [[ $out == *"$expected"* ]]; then
        echo "ok: a broken example is reported: $expected"
    else
        fail "a broken example was not reported as '$expected': $out"
    fi
done

# --- berth-apply.service and berth-apply.timer -----------------------------------------------------

service=$EXAMPLES/berth-apply.service
timer=$EXAMPLES/berth-apply.timer
for unit in "$service" "$timer"; do [[ -f $unit ]] || fail "examples/$(basename "$unit") is missing"; done
if [[ -f $service && -f $timer ]]; then
    # verify wants the ExecStart binary to exist: the copies run the berth built here. The man pages
    # of Documentation= are looked up among man/*.1 (without man, not at all).
    mkdir -p "$WORK/units" "$WORK/man/man1"
    for unit in "$service" "$timer"; do
        sed "s|/usr/bin/berth\\b|$BERTH_ABS|g" "$unit" >"$WORK/units/$(basename "$unit")"
    done
    for page in "$SOURCE_DIR"/man/*.1; do ln -s "$page" "$WORK/man/man1/"; done
    verify_args=()
    command -v man >/dev/null 2>&1 || verify_args+=(--man=no)
    rc=0
    out=$(cd "$WORK/units" && MANPATH=$WORK/man systemd-analyze verify "${verify_args[@]}" \
        ./berth-apply.timer ./berth-apply.service 2>&1) || rc=$?
    # systemd only warns of an unknown key or a bad value and carries on: any output fails.
    if ((rc != 0)) || [[ -n $out ]]; then
        fail "systemd-analyze verify berth-apply.timer berth-apply.service (exit $rc): $out"
    else
        echo "ok: systemd-analyze verify berth-apply.timer berth-apply.service"
    fi

    # key UNIT KEY: every value of KEY, one a line, continuation lines joined.
    key() {
        sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$1" | sed -n "s/^$2=//p"
    }
    exec_start=$(key "$service" ExecStart | tail -n 1)
    [[ $(key "$service" Type) == oneshot ]] || fail "berth-apply.service is not Type=oneshot"
    [[ $exec_start == /usr/bin/berth\ * ]] || fail "berth-apply.service runs something else than /usr/bin/berth"
    [[ " $exec_start " == *" apply "* && " $exec_start " == *" --auto-approve "* ]] ||
        fail "berth-apply.service does not run berth apply --auto-approve: $exec_start"
    [[ $exec_start == *"--state /var/lib/berth/state.db"* && $(key "$service" StateDirectory) == berth ]] ||
        fail "berth-apply.service keeps its state elsewhere than its StateDirectory, /var/lib/berth"
    # Credentials: loaded by systemd from files, never in the unit itself.
    key "$service" LoadCredential | grep -q '^client\.key:' || fail "berth-apply.service loads no client.key credential"
    if grep -qE 'BEGIN [A-Z ]*PRIVATE KEY|^Environment=.*BERTH_CLIENT_(CERT|KEY)=' "$service"; then
        fail "berth-apply.service has a key or certificate written in it"
    fi
    for hardening in User=berth NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes; do
        [[ $(key "$service" "${hardening%%=*}" | tail -n 1) == "${hardening#*=}" ]] ||
            fail "berth-apply.service lacks $hardening"
    done
    [[ -n $(key "$service" TimeoutStartSec) ]] ||
        fail "berth-apply.service sets no TimeoutStartSec (a oneshot unit has none by default: a stuck run would hold the timer forever)"
    [[ -n $(key "$timer" OnCalendar) || -n $(key "$timer" OnUnitInactiveSec) ]] ||
        fail "berth-apply.timer has no schedule"
    grep -qx 'WantedBy=timers.target' "$timer" || fail "berth-apply.timer is not wanted by timers.target"
    echo "ok: berth-apply.service runs a oneshot berth apply --auto-approve with systemd credentials"
fi

if ((FAILURES > 0)); then
    echo "examples_test: $FAILURES failed" >&2
    exit 1
fi
echo "examples_test: all passed"
