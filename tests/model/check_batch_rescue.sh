#!/usr/bin/env bash
# tests/model/check_batch_rescue.sh: model-checks a worker's batch and its
# rescue (tests/model/batch_rescue.pml, queue/wq_batch.h, queue/batch.c)
# with spin: the light claims with the rescuer's membarrier, and the
# seq_cst claims, take every item exactly once in an exhaustive search
# (two fills, two rescuers rescuing repeatedly; also a larger size); each
# mutant (no membarrier; membarrier before the store of rescue; rescue
# lowered by the rescuer at its unlock; the owner's load of rescue before
# its store of next; the owner's slow path without the lock) is caught as
# an assertion violation or an invalid end state. Exits non-zero on any
# deviation. CC: the C compiler for pan (default cc).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || exit 1
. "$here/spin_check.sh" batch_rescue
spin_check batch_rescue light_with_membarrier ok
spin_check batch_rescue seq_cst ok -DSEQ_CST
spin_check batch_rescue light_3+3_items_3+3_rescues ok -DNB1=3 -DNB2=3 -DT1=3 -DT2=3
spin_check batch_rescue seq_cst_3+3_items_3+3_rescues ok -DSEQ_CST -DNB1=3 -DNB2=3 -DT1=3 -DT2=3
spin_check batch_rescue mutant_no_membarrier caught -DMUTANT_NO_MEMBARRIER
spin_check batch_rescue mutant_membarrier_before_store caught -DMUTANT_MEMBARRIER_BEFORE_STORE
spin_check batch_rescue mutant_rescuer_clears caught -DMUTANT_RESCUER_CLEARS
spin_check batch_rescue mutant_rescuer_clears_seq_cst caught -DSEQ_CST -DMUTANT_RESCUER_CLEARS
spin_check batch_rescue mutant_load_before_store caught -DMUTANT_LOAD_BEFORE_STORE
spin_check batch_rescue mutant_load_before_store_seq_cst caught -DSEQ_CST -DMUTANT_LOAD_BEFORE_STORE
spin_check batch_rescue mutant_no_owner_lock caught -DMUTANT_NO_OWNER_LOCK
[ $bad = 0 ] && echo "check_batch_rescue: ok" || echo "check_batch_rescue: FAILED" >&2
exit $bad
