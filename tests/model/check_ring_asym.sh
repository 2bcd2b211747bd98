#!/usr/bin/env bash
# tests/model/check_ring_asym.sh: model-checks the asymmetric fence of light
# ring pushes (tests/model/ring_asym.pml, sched/asym.c) with spin: the light
# push with the parker's membarrier (skipped when no ring is leased), and
# the seq_cst fallback, have no lost wake-up in an exhaustive search; each
# mutant (no membarrier; membarrier before the announce; no fence after the
# lease's CAS) is caught as an invalid end state. Exits non-zero on
# any deviation. CC: the C compiler for pan (default cc).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || exit 1
cc=${CC:-cc}
command -v spin >/dev/null 2>&1 || { echo "check_ring_asym: spin is not installed" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ring-asym.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
bad=0
check() { # NAME EXPECT(ok|caught) DEFINES...
    local name=$1 expect=$2 dir=$tmp/$1
    shift 2
    mkdir -p "$dir" && cp "$here/ring_asym.pml" "$dir/" || return 1
    (cd "$dir" && spin "$@" -a ring_asym.pml >spin.log 2>&1 &&
        "$cc" -w -O1 -DSAFETY -o pan pan.c >cc.log 2>&1 && ./pan >pan.log 2>&1) || {
        echo "check_ring_asym: $name: spin or pan failed to run" >&2; bad=1; return; }
    local errors got
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.log")
    got=ok
    if [ "${errors:-0}" != 0 ]; then
        grep -q "invalid end state" "$dir/pan.log" && got=caught || got="error(other)"
    fi
    printf '%-34s %-8s %s\n' "$name" "$got" "$(grep -m1 'states, stored' "$dir/pan.log" | sed 's/^ *//')"
    [ "$got" = "$expect" ] || { echo "check_ring_asym: $name: expected $expect" >&2; bad=1; }
}
check light_with_membarrier ok
check rmw_fallback ok -DRMW
check mutant_no_membarrier caught -DMUTANT_NO_HEAVY
check mutant_membarrier_before_announce caught -DMUTANT_HEAVY_BEFORE_ANNOUNCE
check mutant_no_fence_after_lease caught -DMUTANT_NO_LEASE_FENCE
[ $bad = 0 ] && echo "check_ring_asym: ok" || echo "check_ring_asym: FAILED" >&2
exit $bad
