#!/usr/bin/env bash
# deb_test.sh — the Debian package CPack makes of a build dir (as scripts/build-deb.sh does, but
# without a second build): its name, exactly the files it should hold with Debian's modes and
# owners, a Depends that names the package of every library the packaged berth links (yaml-cpp,
# OpenSSL, SQLite...), a packaged berth that runs, man pages compressed as Debian wants them, and,
# when lintian is installed, no lintian error but the ones listed below with their reason.
#
# Environment: BERTH_BIN (the berth built), BERTH_SOURCE_DIR (the source tree), BERTH_BUILD_DIR (the
# build dir that made BERTH_BIN: its CPackConfig.cmake is used).
set -euo pipefail

readonly BERTH=${BERTH_BIN:?BERTH_BIN must name the berth executable to test}
readonly SOURCE_DIR=${BERTH_SOURCE_DIR:?BERTH_SOURCE_DIR must name the source tree}
readonly BUILD_DIR=${BERTH_BUILD_DIR:?BERTH_BUILD_DIR must name the build dir to package}
[[ -x $BERTH ]] || { echo "deb_test: $BERTH is not executable" >&2; exit 1; }
[[ -f $BUILD_DIR/CPackConfig.cmake ]] || { echo "deb_test: no CPackConfig.cmake in $BUILD_DIR" >&2; exit 1; }
for tool in cpack dpkg-deb dpkg-shlibdeps readelf gzip; do
    command -v "$tool" >/dev/null 2>&1 ||
        { echo "deb_test: $tool is not installed; run scripts/install-deps.sh" >&2; exit 1; }
done

# lintian errors that are known and accepted, each with its reason: "tag  reason".
readonly ACCEPTED_LINTIAN_ERRORS=(
    "no-copyright-file  berth has no licence yet, so there is no copyright file to ship"
    "no-changelog  berth keeps no changelog yet"
)

WORK=$(mktemp -d)
readonly WORK
trap 'rm -rf "$WORK"' EXIT
FAILURES=0
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    FAILURES=$((FAILURES + 1))
}
ok() { printf 'ok: %s\n' "$*"; }
# one_line TEXT: the lines of TEXT on one line.
one_line() { tr '\n' ' ' <<<"$1" | sed 's/ *$//'; }

version=$("$BERTH" --version)
arch=$(dpkg --print-architecture)
readonly version arch

# --- the package --------------------------------------------------------------------------------------

if ! cpack --config "$BUILD_DIR/CPackConfig.cmake" -G DEB -B "$WORK/out" >"$WORK/cpack.log" 2>&1; then
    cat "$WORK/cpack.log" >&2
    echo "deb_test: cpack failed" >&2
    exit 1
fi
readonly DEB=$WORK/out/berth_${version}_${arch}.deb
if [[ ! -f $DEB ]]; then
    cat "$WORK/cpack.log" >&2
    echo "deb_test: cpack made no $(basename "$DEB") (berth --version says $version); it made:" >&2
    find "$WORK/out" -maxdepth 1 -name '*.deb' >&2
    exit 1
fi
ok "cpack made $(basename "$DEB")"

# --- contents -------------------------------------------------------------------------------------

# "MODE OWNER PATH" for each file we ship, as dpkg-deb -c prints them.
{
    echo "-rwxr-xr-x root/root ./usr/bin/berth"
    echo "-rwxr-xr-x root/root ./usr/bin/berthd"
    echo "-rwxr-xr-x root/root ./usr/bin/berthd-helper"
    for schema in "$SOURCE_DIR"/schemas/*.json; do
        echo "-rw-r--r-- root/root ./usr/share/berth/schemas/$(basename "$schema")"
    done
    for page in "$SOURCE_DIR"/man/*.1; do
        echo "-rw-r--r-- root/root ./usr/share/man/man1/$(basename "$page").gz"
    done
    echo "-rw-r--r-- root/root ./usr/share/bash-completion/completions/berth"
} | LC_ALL=C sort >"$WORK/expected"
dpkg-deb -c "$DEB" >"$WORK/contents"
awk '$1 !~ /^d/ { print $1, $2, $6 }' "$WORK/contents" | LC_ALL=C sort >"$WORK/files"
if ! diff -u "$WORK/expected" "$WORK/files" >"$WORK/diff"; then
    fail "the package's files (- expected, + in the package):"
    cat "$WORK/diff" >&2
else
    ok "the package holds exactly berth, berthd, berthd-helper, $(grep -c schemas/ "$WORK/expected") schemas," \
        "$(grep -c man1/ "$WORK/expected") man pages and the completion"
fi
bad_dirs=$(awk '$1 ~ /^d/ && ($1 != "drwxr-xr-x" || $2 != "root/root") { print $1, $2, $6 }' "$WORK/contents")
[[ -z $bad_dirs ]] || fail "directories not drwxr-xr-x root/root: $bad_dirs"
outside=$(awk '{ print $6 }' "$WORK/contents" | grep -vE '^\./(usr/?)?$|^\./usr/(bin|share)(/|$)' || true)
[[ -z $outside ]] || fail "paths outside /usr/bin and /usr/share: $outside"

# --- control fields -----------------------------------------------------------------------------------

field() { dpkg-deb -f "$DEB" "$1"; }
[[ $(field Package) == berth ]] || fail "Package is '$(field Package)', not berth"
[[ $(field Version) == "$version" ]] || fail "Version is '$(field Version)', berth --version says $version"
[[ $(field Architecture) == "$arch" ]] || fail "Architecture is '$(field Architecture)', not $arch"
[[ -n $(field Maintainer) ]] || fail "no Maintainer"
[[ $(field Description) == *LXD* ]] || fail "the Description does not say what berth is: $(field Description)"
depends=$(field Depends)
echo "Depends: $depends"
# Package names in Depends, one a line ("libc6 (>= 2.34), libssl3 (>= 3.0.0)" -> libc6, libssl3).
depends_names=$(tr ',|' '\n' <<<"$depends" | sed -E 's/^ *//; s/[ :(].*//' | sed '/^$/d')
for wanted in 'libyaml-cpp' 'libssl[0-9]' 'libsqlite3-' 'libstdc\+\+6' 'libc6'; do
    grep -qE "^$wanted" <<<"$depends_names" || fail "Depends names no ${wanted//\\/} package: $depends"
done

# --- the packaged files -------------------------------------------------------------------------------

dpkg-deb -x "$DEB" "$WORK/root"
packaged=$WORK/root/usr/bin/berth
[[ $("$packaged" --version) == "$version" ]] || fail "the packaged berth --version does not print $version"
"$packaged" --help | grep -q '^  plan ' || fail "the packaged berth --help does not list plan"
readelf -S "$packaged" | grep -qE '\.(symtab|debug_info)' && fail "the packaged berth is not stripped"
"$WORK/root/usr/bin/berthd" --help | grep -q -- '--dir' || fail "the packaged berthd --help does not list --dir"
# berthd starts containers through the helper beside it; run without a job, it prints its usage.
helper_usage=$("$WORK/root/usr/bin/berthd-helper" 2>&1 || true)
[[ $helper_usage == *forkstart* ]] || fail "the packaged berthd-helper does not run: $helper_usage"
for wanted in 'liblxc' 'libarchive'; do
    grep -qE "^$wanted" <<<"$depends_names" || fail "Depends names no $wanted package (berthd needs it): $depends"
done

# Every library it links comes from a package Depends names (dpkg-shlibdeps found them all).
failures_before=$FAILURES
linked=0
while read -r soname; do
    path=$(ldd "$packaged" | awk -v so="$soname" '$1 == so { print $3 }') || true
    [[ -n $path ]] || { fail "ldd does not resolve $soname"; continue; }
    owners=$(
        for candidate in "$path" "$(realpath "$path")" "/usr${path#/usr}" "${path#/usr}"; do
            dpkg -S "$candidate" 2>/dev/null || true
        done | sed -E 's/[:,].*//' | LC_ALL=C sort -u
    )
    [[ -n $owners ]] || { fail "no installed package holds $path ($soname)"; continue; }
    # The package, or a name it provides (libspdlog1.10 provides libspdlog1.10-fmt9, which its shlibs name).
    found=""
    for owner in $owners; do
        provides=$(dpkg-query -W -f='${Provides}' "$owner" 2>/dev/null | tr ',' ' ' | sed -E 's/\([^)]*\)//g') || true
        for name in "$owner" $provides; do
            grep -qx "$name" <<<"$depends_names" && found=$name
        done
    done
    [[ -n $found ]] || fail "berth links $soname from $(one_line "$owners"), which Depends does not name"
    linked=$((linked + 1))
done < <(readelf -d "$packaged" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p')
((linked > 0)) || fail "readelf found no library the packaged berth links"
((FAILURES > failures_before)) || ok "Depends names the package of each of the $linked libraries berth links"

for schema in "$SOURCE_DIR"/schemas/*.json; do
    cmp -s "$schema" "$WORK/root/usr/share/berth/schemas/$(basename "$schema")" ||
        fail "the packaged $(basename "$schema") differs from schemas/"
done
completion=$WORK/root/usr/share/bash-completion/completions/berth
cmp -s "$SOURCE_DIR/completion/berth.bash" "$completion" || fail "the packaged completion differs from completion/berth.bash"
registered=$(bash -c 'source "$1" && complete -p berth' _ "$completion" 2>&1) || true
[[ $registered == "complete -F _berth berth" ]] || fail "the packaged completion registers '$registered'"

for page in "$WORK"/root/usr/share/man/man1/*.gz; do
    name=$(basename "$page")
    # gzip -9n: no file name (FLG bit 3) and no time stamp (MTIME, bytes 4-7), as lintian wants.
    read -r -a header < <(head -c 8 "$page" | od -An -tu1)
    ((header[0] == 31 && header[1] == 139)) || { fail "$name is not gzip"; continue; }
    ((header[3] & 8)) && fail "$name records a file name (gzip without -n)"
    ((header[4] + header[5] + header[6] + header[7] == 0)) || fail "$name records a time stamp (gzip without -n)"
    text=$(gzip -dc "$page") || { fail "$name does not decompress"; continue; }
    [[ $text == *'"berth '"$version"'"'* ]] || fail "$name does not name berth $version"
    [[ $text != *@*@* ]] || fail "$name has an @VARIABLE@ CMake did not fill in"
done
ok "man pages compressed with gzip -9n, naming berth $version"

# --- lintian --------------------------------------------------------------------------------------

if command -v lintian >/dev/null 2>&1; then
    lintian --tag-display-limit 0 "$DEB" >"$WORK/lintian" 2>&1 || true
    cat "$WORK/lintian"
    while read -r line; do
        tag=$(awk '{ print $3 }' <<<"$line")
        accepted=""
        for entry in "${ACCEPTED_LINTIAN_ERRORS[@]}"; do [[ ${entry%% *} == "$tag" ]] && accepted=$entry; done
        if [[ -n $accepted ]]; then
            echo "lintian error accepted: $tag (${accepted#*  })"
        else
            fail "lintian: $line"
        fi
    done < <(grep '^E: ' "$WORK/lintian" || true)
    grep -qE '^(E|W): ' "$WORK/lintian" || ok "lintian is silent"
else
    echo "deb_test: lintian is not installed; the package is not linted"
fi

if ((FAILURES > 0)); then
    echo "deb_test: $FAILURES failed" >&2
    exit 1
fi
echo "deb_test: all passed ($(basename "$DEB"))"
