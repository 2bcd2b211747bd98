#!/usr/bin/env bash
# tests/model/check_ring_asym.sh: model-checks the asymmetric fence of light
# ring pushes with the waking token (tests/model/ring_asym.pml, sched/asym.c,
# sched/park.c) with spin: the light push with the parkers' membarrier
# (skipped when no ring is leased), and the seq_cst fallback, have no lost
# wake-up in an exhaustive search; each mutant (no membarrier; membarrier
# before the announce; no fence after the lease's CAS; the entry exchange
# of waking after the recheck, or none; a notifier that skips on SENT
# without marking PASS; no ws_pass_wake) is caught as an invalid end state. Exits non-zero on
# any deviation. CC: the C compiler for pan (default cc).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || exit 1
. "$here/spin_check.sh" ring_asym
spin_check ring_asym light_with_membarrier ok
spin_check ring_asym rmw_fallback ok -DRMW
spin_check ring_asym mutant_no_membarrier caught -DMUTANT_NO_HEAVY
spin_check ring_asym mutant_membarrier_before_announce caught -DMUTANT_HEAVY_BEFORE_ANNOUNCE
spin_check ring_asym mutant_no_fence_after_lease caught -DMUTANT_NO_LEASE_FENCE
spin_check ring_asym mutant_entry_exchange_after_recheck caught -DMUTANT_ENTRY_AFTER_RECHECK
spin_check ring_asym mutant_no_entry_exchange caught -DMUTANT_NO_ENTRY_EXCHANGE
spin_check ring_asym mutant_skip_unmarked caught -DMUTANT_SKIP_UNMARKED
spin_check ring_asym mutant_no_pass_wake caught -DMUTANT_NO_PASS
[ $bad = 0 ] && echo "check_ring_asym: ok" || echo "check_ring_asym: FAILED" >&2
exit $bad
