#!/usr/bin/env bash
# tests/model/check_flow_seal.sh: model-checks spawns from outside a flow
# racing its close (tests/model/flow_seal.pml; sched/flow.c, sched/
# close_async.c; docs/scheduler.md, "A spawn racing the close") with spin:
# the sync and the async close keep every accepted task before the close's
# return or done, and done once, in an exhaustive search (also with more
# spawns and opener tasks); each mutant (no seal; no second wait after a
# seal that found a count; an outsider counting into an async-closed
# flow's zero count; the bare
# bit as "sealed", which a negative count has) is caught as an assertion
# violation or an invalid end state. Exits non-zero on any deviation.
# CC: the C compiler for pan (default cc).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || exit 1
. "$here/spin_check.sh" flow_seal
spin_check flow_seal sync ok
spin_check flow_seal async ok -DASYNC
spin_check flow_seal sync_3_spawns_2_tasks ok -DS=3 -DK=2
spin_check flow_seal async_3_spawns_2_tasks ok -DASYNC -DS=3 -DK=2
spin_check flow_seal mutant_no_seal caught -DMUTANT_NO_SEAL
spin_check flow_seal mutant_no_rewait caught -DMUTANT_NO_REWAIT
spin_check flow_seal mutant_async_accept_zero caught -DASYNC -DMUTANT_ASYNC_ACCEPT_ZERO
spin_check flow_seal mutant_bare_bit caught -DMUTANT_BARE_BIT
spin_check flow_seal mutant_bare_bit_async caught -DASYNC -DMUTANT_BARE_BIT
[ $bad = 0 ] && echo "check_flow_seal: ok" || echo "check_flow_seal: FAILED" >&2
exit $bad
