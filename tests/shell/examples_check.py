#!/usr/bin/python3
"""The offline checks of examples_test.sh: the CI pipelines in examples/ are YAML of the shape
GitHub Actions and GitLab CI take, and every berth command the examples run (in a pipeline's
scripts, in a systemd unit's Exec lines) is one the berth built here has, with options it lists.

    examples_check.py BERTH EXAMPLES_DIR
    examples_check.py --self-test BERTH   (the checker finds a bad command, option or YAML)

Prints `ok: ...` per check and `FAIL: ...` per problem; exit 1 on any problem.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

FAILURES = []
QUIET = False  # the self-test expects failures: it counts them, without printing them


def fail(message):
    FAILURES.append(message)
    if not QUIET:
        print(f"FAIL: {message}", file=sys.stderr)


def ok(message, failures_before=None):
    """Prints an ok line, unless failures were reported since failures_before."""
    if failures_before is None or len(FAILURES) == failures_before:
        print(f"ok: {message}")


# --- what berth has: its --help, command by command ------------------------------------------------


class Command:
    """One level of `berth ... --help`: its options (and which take a value) and its subcommands."""

    def __init__(self, options, subcommands):
        self.options = options  # "--json" / "-f" -> takes a value
        self.subcommands = subcommands


def parse_help(text):
    options, subcommands, section = {}, [], None
    for line in text.splitlines():
        if re.match(r"^\S.*:$", line):
            section = line[:-1]
            continue
        if section == "Options" and re.match(r"^ +-", line):
            # "  -f,--file TEXT=berth.yaml   Fleet file": the names, then a value's type if it takes one.
            head = re.split(r" {2,}", line.strip())[0].split(" ")
            for name in head[0].split(","):
                options[name] = len(head) > 1
        elif section == "Subcommands":
            m = re.match(r"^  ([a-z][a-z0-9-]*)( |$)", line)
            if m:
                subcommands.append(m.group(1))
    return Command(options, subcommands)


class Berth:
    def __init__(self, path):
        self.path = path
        self.cache = {}

    def command(self, words):
        key = tuple(words)
        if key not in self.cache:
            run = subprocess.run([self.path, *words, "--help"], capture_output=True, text=True, check=False)
            self.cache[key] = parse_help(run.stdout) if run.returncode == 0 else None
        return self.cache[key]


def check_invocation(berth, argv, where):
    """argv[0] is berth. Options before the command must be global; after it, the command's own or a
    global one (berth's CLI lets those through). Returns the command words, e.g. ["plan"]."""
    top = berth.command([])
    if top is None:
        fail(f"{berth.path} --help failed")
        return None
    i, n = 1, len(argv)
    while i < n and argv[i].startswith("-"):
        name = argv[i].split("=", 1)[0]
        if name not in top.options:
            fail(f"{where}: `{' '.join(argv)}`: {name} is not a global option of berth (berth --help)")
        elif top.options[name] and "=" not in argv[i]:
            i += 1
        i += 1
    if i >= n:
        # `berth --version`, `berth --help`: the program alone is a complete command line.
        if not {"--version", "--help", "-h"} & set(argv[1:]):
            fail(f"{where}: `{' '.join(argv)}` runs no berth command")
        return None
    words, level = [], top
    while i < n and level.subcommands and not argv[i].startswith("-"):
        if argv[i] not in level.subcommands:
            shown = " ".join(["berth", *words])
            fail(f"{where}: `{' '.join(argv)}`: {argv[i]!r} is not a command of `{shown}` ({shown} --help)")
            return None
        words.append(argv[i])
        level = berth.command(words)
        if level is None:
            fail(f"{where}: `berth {' '.join(words)} --help` failed")
            return None
        i += 1
    if level.subcommands:
        fail(f"{where}: `{' '.join(argv)}` names no subcommand of `berth {' '.join(words)}`")
        return None
    shown = " ".join(["berth", *words])
    while i < n:
        token = argv[i]
        i += 1
        if not token.startswith("-") or token == "-":
            continue
        name = token.split("=", 1)[0]
        takes = level.options.get(name, top.options.get(name))
        if takes is None:
            fail(f"{where}: `{' '.join(argv)}`: {shown} has no option {name} ({shown} --help)")
        elif takes and "=" not in token:
            i += 1
    return words


# --- where the examples run berth -----------------------------------------------------------------

SEPARATORS = {";", ";;", "&", "&&", "||", "|", "(", ")", "{", "}", "!"}
KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until", "exec", "time", "command"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def shell_commands(script):
    """The simple commands of a shell script, as word lists, by shell rules close enough for the
    examples: continuation lines joined, comments dropped, quotes removed, split at ; && || | ( )."""
    text = re.sub(r"\\\n", " ", script)
    lines, pending = [], ""
    for line in text.split("\n"):
        pending = f"{pending}\n{line}" if pending else line
        try:
            lex = shlex.shlex(pending, posix=True, punctuation_chars=True)
            lex.whitespace_split = True
            lines.append(list(lex))
            pending = ""
        except ValueError:  # a quote open across lines
            continue
    if pending:
        fail(f"a script has an unclosed quote: {pending[:60]!r}")
    for tokens in lines:
        command = []
        for token in tokens + [";"]:
            if token in SEPARATORS or (set(token) <= set("<>&|;") and token):
                if command:
                    yield command
                command = []
            elif not command and (token in KEYWORDS or ASSIGNMENT.match(token)):
                continue
            else:
                command.append(token)


def is_berth(word):
    return word == "berth" or word.endswith("/berth")


def berth_invocations(script):
    for command in shell_commands(script):
        if command and is_berth(command[0]):
            yield command


def scripts_of(value):
    """A GitLab script: a string or a list of strings (nested lists are flattened, as GitLab does)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in scripts_of(item)]
    return []


# --- the pipelines --------------------------------------------------------------------------------


def check_github(path, doc, berth):
    name = path.name
    before = len(FAILURES)
    if not isinstance(doc, dict):
        fail(f"{name}: not a mapping at the top")
        return
    # PyYAML (YAML 1.1) reads the key `on` as true, as GitHub does not; accept both.
    on = doc.get("on", doc.get(True))
    if not isinstance(on, dict) or "pull_request" not in on or "push" not in on:
        fail(f"{name}: `on:` does not list pull_request and push")
    jobs = doc.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        fail(f"{name}: no `jobs:`")
        return
    commands = []
    for job_name, job in jobs.items():
        if not isinstance(job, dict) or "runs-on" not in job or not isinstance(job.get("steps"), list):
            fail(f"{name}: job {job_name} lacks runs-on or a list of steps")
            continue
        for n, step in enumerate(job["steps"], 1):
            where = f"{name}: job {job_name}, step {n} ({step.get('name', step.get('uses', ''))})"
            if not isinstance(step, dict) or ("run" in step) == ("uses" in step):
                fail(f"{where}: a step has either run: or uses:")
                continue
            run = step.get("run")
            if run is None:
                continue
            # Secrets reach a script through env:, never pasted into its text (where an expression
            # can be injected and a value echoed).
            if "secrets." in run:
                fail(f"{where}: a secret is expanded in the script; pass it through env:")
            if re.search(r"(^|[;&|]\s*)set -[a-z]*x", run, re.M):
                fail(f"{where}: set -x would print the secrets in the environment")
            for argv in berth_invocations(run):
                commands.append(check_invocation(berth, argv, where))
    if "apply" in jobs and "concurrency" not in jobs["apply"]:
        fail(f"{name}: the apply job has no concurrency group")
    check_flow(name, commands)
    ok(f"{name}: a GitHub Actions workflow of {len(jobs)} jobs, {len(commands)} berth commands", before)


GITLAB_RESERVED = {"stages", "variables", "default", "workflow", "include", "image", "services", "cache",
                   "before_script", "after_script"}


def check_gitlab(path, doc, berth):
    name = path.name
    before = len(FAILURES)
    if not isinstance(doc, dict):
        fail(f"{name}: not a mapping at the top")
        return
    stages = doc.get("stages")
    if not isinstance(stages, list) or not stages:
        fail(f"{name}: no `stages:` list")
        stages = []
    templates = {k: v for k, v in doc.items() if isinstance(k, str) and k.startswith(".")}
    jobs = {k: v for k, v in doc.items() if k not in GITLAB_RESERVED and k not in templates}
    if not jobs:
        fail(f"{name}: no jobs")
    commands = []

    def merged(job):
        """The job with what it extends (one level of keys, as GitLab merges them)."""
        result = {}
        bases = job.get("extends", [])
        for base in [bases] if isinstance(bases, str) else bases:
            if base not in templates:
                fail(f"{name}: extends {base}, which the file does not define")
                continue
            result.update(merged(templates[base]))
        result.update(job)
        return result

    for job_name, raw in jobs.items():
        if not isinstance(raw, dict):
            fail(f"{name}: job {job_name} is not a mapping")
            continue
        job = merged(raw)
        if not scripts_of(job.get("script")):
            fail(f"{name}: job {job_name} has no script")
        if job.get("stage", "test") not in stages:
            fail(f"{name}: job {job_name} is in stage {job.get('stage', 'test')!r}, not among {stages}")
        for key in ("before_script", "script", "after_script"):
            for script in scripts_of(raw.get(key)):
                if re.search(r"(^|[;&|]\s*)set -[a-z]*x", script, re.M):
                    fail(f"{name}: job {job_name}: set -x would print the secrets in the environment")
                for argv in berth_invocations(script):
                    commands.append(check_invocation(berth, argv, f"{name}: job {job_name} {key}"))
    # What jobs extend or inherit: the templates, `default:` and the old top-level scripts.
    shared = dict(templates)
    shared["default"] = doc.get("default")
    shared["(top level)"] = doc
    for tname, template in shared.items():
        for key in ("before_script", "script", "after_script"):
            for script in scripts_of(template.get(key) if isinstance(template, dict) else None):
                for argv in berth_invocations(script):
                    commands.append(check_invocation(berth, argv, f"{name}: {tname} {key}"))
    if "merge_request_event" not in yaml.safe_dump(doc.get("workflow", {})) + str(
            [j.get("rules") for j in jobs.values() if isinstance(j, dict)]):
        fail(f"{name}: no rule for merge request pipelines ($CI_PIPELINE_SOURCE == \"merge_request_event\")")
    if not any(isinstance(j, dict) and "resource_group" in j for j in jobs.values()):
        fail(f"{name}: no job has a resource_group (one apply at a time)")
    check_flow(name, commands)
    ok(f"{name}: a GitLab CI pipeline of {len(jobs)} jobs in stages {stages}, {len(commands)} berth commands",
       before)


def check_flow(name, commands):
    """The pipeline does what it is for: it plans, and it applies."""
    found = {tuple(c) for c in commands if c}
    for needed in (("plan",), ("apply",)):
        if needed not in found:
            fail(f"{name}: runs no `berth {' '.join(needed)}`")


# --- systemd units --------------------------------------------------------------------------------


def check_unit(path, berth):
    text = re.sub(r"\\\n", " ", path.read_text())
    before, count = len(FAILURES), 0
    for line in text.splitlines():
        m = re.match(r"^(ExecStart|ExecStartPre|ExecStartPost|ExecStop|ExecStopPost|ExecReload)=(.*)$", line)
        if not m or not m.group(2).strip():
            continue
        argv = shlex.split(m.group(2).lstrip("-@:+!|"))
        if argv and is_berth(argv[0]):
            check_invocation(berth, argv, f"{path.name}: {m.group(1)}")
            count += 1
    ok(f"{path.name}: {count} berth command(s)", before)


# --- main -----------------------------------------------------------------------------------------


def check_examples(berth, examples):
    files = sorted(list(examples.glob("*.yml")) + list(examples.glob("*.yaml")))
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            fail(f"{path.name} is not valid YAML: {e}")
            continue
        if path.name.startswith("github"):
            check_github(path, doc, berth)
        elif path.name.startswith("gitlab"):
            check_gitlab(path, doc, berth)
        else:
            ok(f"{path.name} parses")
    for name in ("github-actions.yml", "gitlab-ci.yml"):
        if not (examples / name).is_file():
            fail(f"examples/{name} is missing")
    for path in sorted(examples.glob("*.service")):
        check_unit(path, berth)


def self_test(berth):
    """The checks are not blind: each of these must be reported."""
    global QUIET
    QUIET = True
    cases = {
        "an unknown command": ["berth", "plann", "-f", "x"],
        "an unknown option": ["berth", "plan", "--no-such-option"],
        "a command's option before the command": ["berth", "--json", "plan"],
        "no subcommand of a group": ["berth", "remote"],
    }
    for what, argv in cases.items():
        before = len(FAILURES)
        check_invocation(berth, argv, "self-test")
        if len(FAILURES) == before:
            print(f"FAIL: {what} was not reported: {argv}", file=sys.stderr)
            return 1
    FAILURES.clear()
    QUIET = False
    found = [c for c in berth_invocations('x=1; if true; then berth plan --json; fi # berth nothing\n'
                                          'echo "berth apply" && y=$(berth show p)')]
    if found != [["berth", "plan", "--json"], ["berth", "show", "p"]]:
        print(f"FAIL: the script parser found {found}", file=sys.stderr)
        return 1
    for argv in (["berth", "plan", "-f", "x", "--json"], ["berth", "--no-color", "apply", "p", "--no-color"],
                 ["berth", "remote", "list", "--json"]):
        check_invocation(berth, argv, "self-test")
    if FAILURES:
        return 1
    print("ok: the checker reports an unknown command or option and accepts known ones")
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--self-test":
        return self_test(Berth(argv[2]))
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    check_examples(Berth(argv[1]), Path(argv[2]))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
