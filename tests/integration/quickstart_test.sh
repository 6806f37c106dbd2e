#!/usr/bin/env bash
# quickstart_test.sh — scripts/quickstart.sh (the README's first command)
# works with the built berth, on its two berthd hosts (the default, a copy
# across them included) and on two LXD hosts (the documented option), and
# leaves nothing running behind.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    [[ -x "$BERTH_BIN" ]] || bail "BERTH_BIN '$BERTH_BIN' is not executable"
    local root
    root=$(mktemp -d "${BERTH_TB_ROOT:-/tmp}/qs.XXXXXX")
    chmod 711 "$root"
    local kinds
    for kinds in berthd lxd; do
        run env BERTH_SKIP_DEPS=1 BERTH_BIN="$BERTH_BIN" BERTHD_BIN="$BERTHD_BIN" BERTH_TB_ROOT="$root" \
            BERTH_QUICKSTART_KINDS="$([[ $kinds == berthd ]] || echo lxd)" \
            timeout 600 "$BERTH_SOURCE_DIR/scripts/quickstart.sh"
        assert_exit 0 "scripts/quickstart.sh succeeds ($kinds hosts)"
        assert_contains "$ERR" "($kinds,$kinds)" "it starts two $kinds hosts (tb.sh says so)"
        assert_contains "$OUT" "web-replica" "its plan copies web's snapshot across the hosts ($kinds)"
        assert_contains "$OUT" "Apply complete" "the apply completes ($kinds)"
        assert_eq "" "$(ls -A "$root")" "the quickstart's test bed is gone afterwards ($kinds)"
    done
    rmdir "$root" 2>/dev/null || true
    finish
}

main "$@"
