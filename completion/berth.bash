# bash completion for berth                                    -*- shell-script -*-
#
# Installed as share/bash-completion/completions/berth, where bash-completion loads it on first use;
# or source it from ~/.bashrc. It needs bash 4.3 and awk, not bash-completion's helpers.
#
# Completes commands, each command's options, log levels, `watch --mode`, `--format` (markdown on plan
# and show only), file names (fleet files and
# `-`, standard input, for -f; any file for --out, --state, --listen-token-file, --client-cert,
# --client-key and a saved plan, and
# for --events with `-`, standard output; directories for --config-dir and `remote import-lxc
# --from`), the remote and container names a fleet file declares (the file -f
# names on the line, else berth.yaml; none for `-f -`), addresses (`remote:container`,
# `remote:project/container` and `project/container` outside the default project, or a bare
# container name) for --target and --replace, the file's remotes for --drain, and for `berth remote remove` the remotes `berth
# remote list --json` prints. Its lists of options are checked against `berth COMMAND --help` by
# tests/shell/completion_test.sh.

# Options that take a value, on any command (so that a value is never taken for a command).
_berth_options_with_value=" -f --file --out --state --read-parallelism --parallelism --lock-timeout"
_berth_options_with_value+=" --max-file-size --max-response-size --password --token --target --replace --drain"
_berth_options_with_value+=" --from --config-dir --client-cert --client-key --log-level --interval --jitter --mode"
_berth_options_with_value+=" --listen --listen-token-file"
_berth_options_with_value+=" --max-retries --shutdown-timeout --events --keep-runs --limit --format "

# _berth_fleet_names FILE: one line per name the fleet file declares, "remote NAME PROJECT" for each
# key of the top-level `remotes:` map and "container NAME REMOTE PROJECT" for each key of
# `containers:` (REMOTE is its `remote:`, PROJECT its `project:`, each empty when not given). Block-style maps only, as docs/fleet-file.md writes them (a container's
# own value may be a flow map, `web: {remote: a, image: bb}`); anything else is skipped quietly.
# `-` is standard input, which berth would read: no names (and awk must not read it).
_berth_fleet_names() {
    [[ $1 != - && -r $1 && -f $1 ]] || return 0
    awk '
        function unquote(s) {
            if (s ~ /^".*"$/ || s ~ /^\047.*\047$/) return substr(s, 2, length(s) - 2)
            return s
        }
        function name_ok(s) { return s ~ /^[A-Za-z0-9][A-Za-z0-9_.-]*$/ }
        function flush() {
            if (!name_ok(project)) project = ""
            if (container != "" && name_ok(container)) {
                if (!name_ok(remote)) remote = ""
                print "container", container, remote, project
            }
            if (rname != "" && name_ok(rname)) print "remote", rname, project
            container = ""; remote = ""; rname = ""; project = ""
        }
        # The value of `KEY: value` in a flow map (`{url: x, project: p}`), or "".
        function flow_value(rest, key,    value) {
            if (!match(rest, "[{,][ ]*" key "[ ]*:[ ]*[^,} ]+")) return ""
            value = substr(rest, RSTART + 1, RLENGTH - 1); sub("^[ ]*" key "[ ]*:[ ]*", "", value)
            return unquote(value)
        }
        {
            sub(/\r$/, "")
            if ($0 ~ /^[ ]*(#|$)/) next
            if ($0 ~ /^(---|\.\.\.)/) { flush(); section = ""; next }
            match($0, /^ */); indent = RLENGTH
            text = substr($0, indent + 1)
            if (indent == 0) {
                flush(); section = ""
                if (text ~ /^(remotes|containers)[ ]*:[ ]*(#.*)?$/) {
                    section = text; sub(/[ ]*:.*/, "", section); key_indent = -1
                }
                next
            }
            if (section == "") next
            if (key_indent < 0) key_indent = indent
            if (indent < key_indent) next
            if (indent == key_indent) {
                flush()
                if (!match(text, /^[^:#]*:/)) next
                key = substr(text, 1, RLENGTH - 1); sub(/[ ]+$/, "", key); key = unquote(key)
                rest = substr(text, RLENGTH + 1)
                field_indent = -1
                project = flow_value(rest, "project")
                if (section == "remotes") { rname = key; next }
                container = key
                remote = flow_value(rest, "remote")
                next
            }
            # A line inside a container or remote: its own keys are the first, least indented ones.
            if (container == "" && rname == "") next
            if (field_indent < 0) field_indent = indent
            if (indent != field_indent) next
            if (container != "" && match(text, /^remote[ ]*:[ ]*/)) {
                value = substr(text, RLENGTH + 1); sub(/[ ]*(#.*)?$/, "", value)
                remote = unquote(value)
            }
            if (match(text, /^project[ ]*:[ ]*/)) {
                value = substr(text, RLENGTH + 1); sub(/[ ]*(#.*)?$/, "", value)
                project = unquote(value)
            }
        }
        END { flush() }
    ' "$1" 2>/dev/null
}

# _berth_fleet_file: the fleet file the command line names with -f/--file (before or after the
# word being completed), else berth.yaml.
_berth_fleet_file() {
    local i file=berth.yaml
    for ((i = 1; i < ${#_berth_words[@]}; i++)); do
        ((i == _berth_cword || i + 1 == _berth_cword)) && continue
        case ${_berth_words[i]} in
        -f | --file) file=${_berth_words[i + 1]-} ;;
        --file=*) file=${_berth_words[i]#--file=} ;;
        esac
    done
    file=${file#[\"\']} && file=${file%[\"\']}
    printf '%s\n' "${file/#\~\//$HOME/}"
}

# _berth_command: the command on the line before the word being completed (its first word that is
# neither an option nor an option's value), or nothing.
_berth_command() {
    local i word
    for ((i = 1; i < _berth_cword; i++)); do
        word=${_berth_words[i]}
        if [[ $_berth_options_with_value == *" $word "* ]]; then
            i=$((i + 1))
        elif [[ $word != -* ]]; then
            printf '%s\n' "$word"
            return 0
        fi
    done
}

# _berth_remote_names: the remotes berth has pinned, from `berth remote list --json`, run with the
# --config-dir the line gives. The berth that runs is the one being completed.
_berth_remote_names() {
    local berth=${_berth_words[0]/#\~\//$HOME/} i
    local -a global=()
    for ((i = 1; i < ${#_berth_words[@]}; i++)); do
        ((i == _berth_cword || i + 1 == _berth_cword)) && continue
        case ${_berth_words[i]} in
        --config-dir) global=(--config-dir "${_berth_words[i + 1]-}") ;;
        --config-dir=*) global=("${_berth_words[i]}") ;;
        esac
    done
    # {"remotes": {"NAME": {"url": ..., "fingerprint": ...}, ...}}, two spaces a level.
    "$berth" "${global[@]}" remote list --json 2>/dev/null </dev/null |
        sed -n 's/^    "\([A-Za-z0-9_.-]*\)": {.*$/\1/p'
}

# _berth_reply WORD CANDIDATE...: COMPREPLY is the candidates that start with WORD, less the part of
# WORD before the word bash is completing (bash splits `--file=x` and `a:web` at = and :, and
# replaces only what follows).
_berth_reply() {
    local word=$1 candidate
    shift
    local strip=$((${#word} - ${#_berth_bash_cur}))
    ((strip < 0)) && strip=0
    COMPREPLY=()
    for candidate in "$@"; do
        [[ $candidate == "$word"* ]] && COMPREPLY+=("${candidate:strip}")
    done
}

# _berth_files PREFIX WORD [yaml|yaml-only|dash]: file names (directories too) completing WORD, each
# after PREFIX (`--file=`, or empty); with yaml or yaml-only, only *.yaml and *.yml files when there
# are any; with yaml or dash, also `-` (standard input or output) when WORD is empty or `-`.
_berth_files() {
    local prefix=$1 word=$2 kind=${3:-} f path
    local -a found=() files=() dirs=()
    mapfile -t found < <(compgen -f -- "$word")
    for f in "${found[@]}"; do
        path=${f/#\~\//$HOME/} # compgen leaves ~/ as typed
        if [[ -d $path ]]; then
            dirs+=("$prefix$f")
        elif [[ $kind != yaml* || $f == *.yaml || $f == *.yml ]]; then
            files+=("$prefix$f")
        fi
    done
    if [[ $kind == yaml* && ${#files[@]} -eq 0 ]]; then
        for f in "${found[@]}"; do
            path=${f/#\~\//$HOME/}
            [[ -d $path ]] || files+=("$prefix$f")
        done
    fi
    [[ ($kind == yaml || $kind == dash) && ( -z $word || $word == - ) ]] && files+=("$prefix-")
    compopt -o filenames 2>/dev/null
    _berth_reply "$prefix$word" "${files[@]}" "${dirs[@]}"
}

# _berth_value OPTION PREFIX WORD: completes the value of OPTION; PREFIX is `OPTION=` when the value
# is written in the same word.
_berth_value() {
    local option=$1 prefix=$2 word=$3 kind name remote project lines
    local -a candidates=()
    local -A remote_project=()
    case $option in
    -f | --file)
        # watch re-reads its file every run: standard input is not one.
        if [[ $(_berth_command) == watch ]]; then
            _berth_files "$prefix" "$word" yaml-only
        else
            _berth_files "$prefix" "$word" yaml
        fi
        ;;
    --out | --state | --listen-token-file | --client-cert | --client-key) _berth_files "$prefix" "$word" ;;
    --events) _berth_files "$prefix" "$word" dash ;;
    --config-dir | --from)
        compopt -o filenames 2>/dev/null
        mapfile -t candidates < <(compgen -d -- "$word")
        _berth_reply "$prefix$word" "${candidates[@]/#/$prefix}"
        ;;
    --log-level) _berth_reply "$prefix$word" "${prefix}"{trace,debug,info,warn,error,off} ;;
    --mode) _berth_reply "$prefix$word" "${prefix}"{correct,report} ;;
    --format)
        # markdown: only the commands that print a plan for review.
        case $(_berth_command) in
        plan | show) _berth_reply "$prefix$word" "${prefix}"{text,json,markdown} ;;
        *) _berth_reply "$prefix$word" "${prefix}"{text,json} ;;
        esac
        ;;
    --target | --replace)
        # Addresses as the plan prints them: a project other than default (the container's, else its
        # remote's) goes between the remote and the name.
        lines=$(_berth_fleet_names "$(_berth_fleet_file)")
        while read -r kind name project; do
            [[ $kind == remote ]] && remote_project[$name]=$project
        done <<<"$lines"
        while read -r kind name remote project; do
            [[ $kind == container ]] || continue
            candidates+=("$prefix$name")
            [[ -z $project && -n $remote ]] && project=${remote_project[$remote]-}
            [[ $project == default ]] && project=
            [[ -n $project ]] && candidates+=("$prefix$project/$name")
            [[ -n $remote ]] && candidates+=("$prefix$remote:${project:+$project/}$name")
        done <<<"$lines"
        _berth_reply "$prefix$word" "${candidates[@]}"
        ;;
    --drain)
        while read -r kind name _; do
            [[ $kind == remote ]] && candidates+=("$prefix$name")
        done < <(_berth_fleet_names "$(_berth_fleet_file)")
        _berth_reply "$prefix$word" "${candidates[@]}"
        ;;
    *) COMPREPLY=() ;; # a number, a size, a duration, a share, an address or a secret
    esac
}

_berth() {
    # Undo bash's splitting at : and = (COMP_WORDBREAKS), so that `--file=x` and `a:web` are one word.
    local -a _berth_words=()
    local _berth_cword=0 _berth_bash_cur=${COMP_WORDS[COMP_CWORD]} i glue=0
    [[ $_berth_bash_cur =~ ^[:=]+$ ]] && _berth_bash_cur=
    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
        local w=${COMP_WORDS[i]}
        if ((i > 0)) && { [[ $w =~ ^[:=]+$ ]] || ((glue)); }; then
            _berth_words[-1]+=$w
        else
            _berth_words+=("$w")
        fi
        glue=0
        [[ $w =~ ^[:=]+$ ]] && glue=1
        ((i == COMP_CWORD)) && _berth_cword=$((${#_berth_words[@]} - 1))
    done
    local cur=${_berth_words[_berth_cword]}
    COMPREPLY=()

    # The value of an option, written `--option=VALUE` or as the next word.
    if [[ $cur == --*=* ]]; then
        _berth_value "${cur%%=*}" "${cur%%=*}=" "${cur#*=}"
        return 0
    fi
    if ((_berth_cword > 1)) && [[ $_berth_options_with_value == *" ${_berth_words[_berth_cword - 1]} "* ]]; then
        _berth_value "${_berth_words[_berth_cword - 1]}" "" "$cur"
        return 0
    fi

    # The command (and for state and remote, the subcommand), and the positional arguments after it.
    local command="" positional=0 word
    for ((i = 1; i < _berth_cword; i++)); do
        word=${_berth_words[i]}
        if [[ $_berth_options_with_value == *" $word "* ]]; then
            i=$((i + 1))
        elif [[ $word == -* ]]; then
            :
        elif [[ -z $command ]]; then
            command=$word
        elif [[ ($command == state || $command == remote) && $command != *" "* ]]; then
            command+=" $word"
        else
            positional=$((positional + 1))
        fi
    done

    local options="--help" takes=""
    # What a positional argument at the cursor would be: a command, a file, a name, or nothing.
    case $command in
    "") options="--config-dir --client-cert --client-key --log-level --no-color --help --version"
        takes="command" ;;
    validate) options+=" -f --file --json --format --max-file-size" ;;
    plan) options+=" -f --file --json --format --out --detailed-exitcode --prune --read-parallelism --allow-restart --allow-move
        --allow-recreate --destroy --target --replace --drain --state --max-file-size --max-response-size" ;;
    show) options+=" --json --format --max-file-size"
        ((positional == 0)) && takes="file" ;;
    apply) options+=" -f --file --auto-approve --parallelism --read-parallelism --json --format --state --lock-timeout
        --max-file-size --max-response-size --allow-restart --allow-move --allow-recreate --prune --target --replace --drain"
        ((positional == 0)) && takes="file" ;;
    destroy) options+=" -f --file --auto-approve --parallelism --read-parallelism --json --format --state --lock-timeout
        --max-file-size --max-response-size --target" ;;
    watch) options+=" -f --file --interval --jitter --mode --listen --listen-token-file --allow-restart --allow-move
        --allow-recreate --allow-empty --max-retries --shutdown-timeout --events --keep-runs --state --parallelism
        --read-parallelism --max-file-size --max-response-size" ;;
    history) options+=" --state --json --format --limit" ;;
    force-unlock) options+=" --state --hosts -f --file --auto-approve"
        ((positional == 0)) && takes=id ;;
    state) takes="subcommand intents drop-intent" ;;
    "state intents") options+=" --state --json --format" ;;
    "state drop-intent") options+=" --state --auto-approve"
        ((positional == 0)) && takes=id ;;
    remote) takes="subcommand add list remove import-lxc" ;;
    "remote add") options+=" --password --token --accept-certificate"
        ((positional == 0)) && takes=fleet-remote
        ((positional == 1)) && takes=url ;;
    "remote list") options+=" --json --format" ;;
    "remote remove") ((positional == 0)) && takes=remote ;;
    "remote import-lxc") options+=" --from --force --replace-certificate --dry-run" ;;
    *) return 0 ;;
    esac

    if [[ $cur == -* ]]; then
        # shellcheck disable=SC2086 # a list of words
        _berth_reply "$cur" $options
        return 0
    fi
    local kind name rest
    local -a candidates=()
    case $takes in
    command) _berth_reply "$cur" validate plan show apply destroy watch history force-unlock state remote ;;
    subcommand*)
        # shellcheck disable=SC2086
        _berth_reply "$cur" ${takes#subcommand } ;;
    file) _berth_files "" "$cur" ;;
    fleet-remote)
        while read -r kind name rest; do
            [[ $kind == remote ]] && candidates+=("$name")
        done < <(_berth_fleet_names "$(_berth_fleet_file)")
        _berth_reply "$cur" "${candidates[@]}"
        ;;
    remote)
        mapfile -t candidates < <(_berth_remote_names)
        _berth_reply "$cur" "${candidates[@]}"
        ;;
    id | url) ;; # nothing to guess
    *)
        # No positional argument: the options, so that `berth plan <TAB>` shows them.
        # shellcheck disable=SC2086
        _berth_reply "$cur" $options
        ;;
    esac
    return 0
}

complete -F _berth berth
