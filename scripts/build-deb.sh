#!/usr/bin/env bash
# build-deb.sh — build berth's Debian package: configures a Release build without the tests in
# BUILD_DIR (default build-deb/, with Debian's hardening flags), builds it and runs CPack, which
# writes BUILD_DIR/berth_<version>_<arch>.deb. Prints the package's path on standard output, and
# everything else on standard error. Its Depends come from dpkg-shlibdeps (dpkg-dev). The package
# holds /usr/bin/berth, the JSON schemas, the man pages and the bash completion;
# tests/package/deb_test.sh checks all that (on the package of build/).
#
#   scripts/build-deb.sh [BUILD_DIR]
#
# Environment:
#   BERTH_JOBS=N              parallel build jobs (default 2)
#   BERTH_CMAKE_ARGS="..."    extra arguments for the cmake configure run
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
BUILD_DIR=$(realpath -m -- "${1:-$ROOT/build-deb}")
readonly BUILD_DIR
readonly JOBS=${BERTH_JOBS:-2}
read -r -a CMAKE_ARGS <<<"${BERTH_CMAKE_ARGS:-}"

log() { printf 'build-deb: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

main() {
    (($# <= 1)) || die "usage: scripts/build-deb.sh [BUILD_DIR]"
    cd "$ROOT" # dpkg-buildflags maps this directory out of the binary's paths
    local tool
    for tool in cmake cpack dpkg-deb dpkg-shlibdeps dpkg-buildflags; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed; run scripts/install-deps.sh"
    done

    # Debian's build flags, as a package built by dpkg-buildpackage gets them: hardening (fortified
    # functions, stack protector, full RELRO, bind now). Without -g: the binary is stripped anyway.
    local cxxflags ldflags
    cxxflags="$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS) $(
        DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CXXFLAGS)"
    cxxflags=$(sed -E 's/(^| )-g( |$)/ /' <<<"$cxxflags")
    ldflags=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)

    log "configure $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DBERTH_TESTS=OFF -DBERTH_SANITIZE=OFF \
        -DBERTH_FUZZ=OFF "-DCMAKE_CXX_FLAGS=$cxxflags" "-DCMAKE_EXE_LINKER_FLAGS=$ldflags" \
        ${CMAKE_ARGS[@]+"${CMAKE_ARGS[@]}"} >&2
    log "build $BUILD_DIR"
    cmake --build "$BUILD_DIR" -j "$JOBS" >&2
    log "package"
    # Only this run's package in the directory, so that the path printed is the one just made.
    rm -f "$BUILD_DIR"/berth_*.deb
    (cd "$BUILD_DIR" && cpack --config CPackConfig.cmake -G DEB) >&2

    local -a debs
    mapfile -t debs < <(find "$BUILD_DIR" -maxdepth 1 -name 'berth_*.deb')
    ((${#debs[@]} == 1)) || die "expected one berth_*.deb in $BUILD_DIR, found ${#debs[@]}"
    log "built ${debs[0]} (install it with: apt install ${debs[0]})"
    printf '%s\n' "${debs[0]}"
}

main "$@"
