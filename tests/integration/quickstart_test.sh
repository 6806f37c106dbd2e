#!/usr/bin/env bash
# quickstart_test.sh — scripts/quickstart.sh (the README's first command)
# works with the built berth and leaves nothing running behind.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    [[ -x "$BERTH_BIN" ]] || bail "BERTH_BIN '$BERTH_BIN' is not executable"
    local root
    root=$(mktemp -d "${BERTH_TB_ROOT:-/tmp}/qs.XXXXXX")
    chmod 711 "$root"
    run env BERTH_SKIP_DEPS=1 BERTH_BIN="$BERTH_BIN" BERTH_TB_ROOT="$root" \
        timeout 600 "$BERTH_SOURCE_DIR/scripts/quickstart.sh"
    assert_exit 0 "scripts/quickstart.sh succeeds"
    assert_contains "$OUT" "berth plan" "it shows the plan"
    assert_eq "" "$(ls -A "$root")" "the quickstart's test bed is gone afterwards"
    rmdir "$root" 2>/dev/null || true
    finish
}

main "$@"
