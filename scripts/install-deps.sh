#!/usr/bin/env bash
# install-deps.sh — install every Debian package that berth's build, tests,
# quickstart and benchmarks need. Idempotent: when everything is installed it
# does nothing (no apt-get update), so re-runs take well under a second.
# Debian 12, as root (or with sudo available).
set -euo pipefail

# Build: compilers, CMake and the libraries berth links against. clang and its
# runtime libraries (libFuzzer) build the fuzz targets in fuzz/. dpkg-dev
# (dpkg-shlibdeps) gives the .deb of scripts/build-deb.sh its Depends. protoc
# and libprotobuf build berthd's migration messages (daemon/migration/migrate.proto).
readonly BUILD_PACKAGES=(
    cmake g++ make pkg-config clang libclang-rt-14-dev clang-format git dpkg-dev
    libboost-dev libboost-program-options-dev libssl-dev libyaml-cpp-dev
    nlohmann-json3-dev libsqlite3-dev libspdlog-dev libfmt-dev libcli11-dev
    libarchive-dev libvalijson-dev libprotobuf-dev protobuf-compiler
    libgtest-dev libgmock-dev libbenchmark-dev
    lxc-dev
)
# Test bed (tests/testbed/tb.sh) and the integration tests: real LXD hosts,
# the busybox image, and the tools the test scripts call (squashfs-tools and
# xz-utils: image_server_test.sh builds split images for its image server;
# chromium: the watch tests render its status page headless;
# python3-prometheus-client: they parse /metrics with /usr/bin/python3).
# systemd-analyze (package systemd) checks the units in examples/, and
# python3-yaml the CI pipelines there (tests/shell/examples_test.sh); the
# benchmarks time berth with /usr/bin/time (package time).
readonly TEST_PACKAGES=(
    lxd lxc lxc-templates busybox-static btrfs-progs rsync
    iproute2 procps util-linux coreutils tar gzip openssl curl jq python3
    squashfs-tools xz-utils chromium python3-prometheus-client python3-yaml systemd time
)

log() { printf 'install-deps: %s\n' "$*" >&2; }

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

main() {
    local pkg missing=() sudo=()
    for pkg in "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        log "all packages present"
        return 0
    fi
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { log "must run as root to install: ${missing[*]}"; exit 1; }
        sudo=(sudo)
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}"
    for pkg in "${missing[@]}"; do
        is_installed "$pkg" || { log "package $pkg is still not installed"; exit 1; }
    done
    log "done"
}

main "$@"
