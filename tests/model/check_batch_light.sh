#!/usr/bin/env bash
# tests/model/check_batch_light.sh: model-checks a worker's batch filled
# from a light ring and the relaxed notify after the fill
# (tests/model/batch_light.pml, sched/pool.c ws_batch_keep, sched/park.c)
# with spin: the light fill with the parkers' membarrier while the ring
# stays leased, and the seq_cst fallback, lose no wake-up in an exhaustive
# search (a gate task that waits for the items behind it in its worker's
# batch always ends, and the search does reach a peer's rescue while the
# gate waits); each mutant (no membarrier; no notify after the
# fill; the ring returned before its items ran) is caught as an invalid
# end state. Exits non-zero on any deviation. CC: the C compiler for pan
# (default cc).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || exit 1
. "$here/spin_check.sh" batch_light
spin_check batch_light light_with_membarrier ok
spin_check batch_light light_2_items ok -DN=2
spin_check batch_light seq_cst ok -DSEQ_CST
spin_check batch_light reach_rescue_while_gate_waits caught -DREACH_RESCUE
spin_check batch_light mutant_no_membarrier caught -DMUTANT_NO_HEAVY
spin_check batch_light mutant_no_fill_notify caught -DMUTANT_NO_FILL_NOTIFY
spin_check batch_light mutant_early_return caught -DMUTANT_EARLY_RETURN
[ $bad = 0 ] && echo "check_batch_light: ok" || echo "check_batch_light: FAILED" >&2
exit $bad
