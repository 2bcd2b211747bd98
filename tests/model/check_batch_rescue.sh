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
cc=${CC:-cc}
command -v spin >/dev/null 2>&1 || { echo "check_batch_rescue: spin is not installed" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/batch-rescue.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
bad=0
check() { # NAME EXPECT(ok|caught) DEFINES...
    local name=$1 expect=$2 dir=$tmp/$1
    shift 2
    mkdir -p "$dir" && cp "$here/batch_rescue.pml" "$dir/" || return 1
    (cd "$dir" && spin "$@" -a batch_rescue.pml >spin.log 2>&1 &&
        "$cc" -w -O1 -DSAFETY -o pan pan.c >cc.log 2>&1 && ./pan >pan.log 2>&1) || {
        echo "check_batch_rescue: $name: spin or pan failed to run" >&2; bad=1; return; }
    local errors got
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.log")
    got=ok
    if [ "${errors:-0}" != 0 ]; then
        grep -Eq "assertion violated|invalid end state" "$dir/pan.log" && got=caught || got="error(other)"
    elif grep -q "max search depth too small" "$dir/pan.log"; then
        got="error(depth)"   # the search was cut short: not exhaustive
    fi
    printf '%-34s %-8s %s\n' "$name" "$got" "$(grep -m1 'states, stored' "$dir/pan.log" | sed 's/^ *//')"
    [ "$got" = "$expect" ] || { echo "check_batch_rescue: $name: expected $expect" >&2; bad=1; }
}
check light_with_membarrier ok
check seq_cst ok -DSEQ_CST
check light_3+3_items_3+3_rescues ok -DNB1=3 -DNB2=3 -DT1=3 -DT2=3
check seq_cst_3+3_items_3+3_rescues ok -DSEQ_CST -DNB1=3 -DNB2=3 -DT1=3 -DT2=3
check mutant_no_membarrier caught -DMUTANT_NO_MEMBARRIER
check mutant_membarrier_before_store caught -DMUTANT_MEMBARRIER_BEFORE_STORE
check mutant_rescuer_clears caught -DMUTANT_RESCUER_CLEARS
check mutant_rescuer_clears_seq_cst caught -DSEQ_CST -DMUTANT_RESCUER_CLEARS
check mutant_load_before_store caught -DMUTANT_LOAD_BEFORE_STORE
check mutant_load_before_store_seq_cst caught -DSEQ_CST -DMUTANT_LOAD_BEFORE_STORE
check mutant_no_owner_lock caught -DMUTANT_NO_OWNER_LOCK
[ $bad = 0 ] && echo "check_batch_rescue: ok" || echo "check_batch_rescue: FAILED" >&2
exit $bad
