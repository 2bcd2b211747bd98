/*
 * tests/model/ring_asym.pml: the asymmetric fence between a light ring
 * push and a parking worker (sched/asym.c, docs/scheduler.md "Ring pushes:
 * the asymmetric fence"). Checked by tests/model/check_ring_asym.sh.
 *
 * The producer's release store of tail goes into its store buffer, which
 * drains at any later moment; its load of sleepers reads memory when it
 * runs, so it may run before the store is visible (the store-to-load
 * reordering every CPU weft runs on allows). The parker reads epoch,
 * announces itself in sleepers (a seq_cst RMW: visible at once), runs the
 * heavy barrier (membarrier: the producer's buffer drains at that moment,
 * wherever the producer is in its program), rechecks tail, and sleeps
 * until epoch moves. A wake-up is epoch++ (then futex_wake).
 *
 * A lost wake-up is a parker asleep for good with the item in the ring:
 * spin reports it as an invalid end state (the parker blocked at its
 * sleep when everyone else is done).
 *
 *   -DRMW                          the fallback: the push is a seq_cst RMW
 *                                  (visible at once, buffer drained), no
 *                                  heavy barrier
 *   -DMUTANT_NO_HEAVY              a light push, no membarrier
 *   -DMUTANT_HEAVY_BEFORE_ANNOUNCE a light push, membarrier before the
 *                                  announce instead of after it
 */
bit tail;      /* the ring's tail as memory has it: 1, the item is visible */
bit buffered;  /* the producer's store of tail, still in its store buffer */
byte sleepers;
byte epoch;
bit producer_done;

#define HEAVY atomic { if :: buffered -> tail = 1; buffered = 0 :: else -> skip fi }

active proctype producer()
{
#ifdef RMW
    atomic { tail = 1; buffered = 0 }
#else
    buffered = 1;
#endif
    if
    :: sleepers > 0 -> epoch++
    :: else -> skip
    fi;
    producer_done = 1
}

active proctype store_buffer()
{
    /* Drains once, at any moment (or not before the end, if the heavy
     * barrier drained it). */
    do
    :: atomic { buffered -> tail = 1; buffered = 0 }; break
    :: atomic { producer_done && !buffered } -> break
    od
}

active proctype parker()
{
    byte e;
    e = epoch;
#ifdef MUTANT_HEAVY_BEFORE_ANNOUNCE
    HEAVY;
    sleepers++;
#else
    sleepers++;
#if !defined(RMW) && !defined(MUTANT_NO_HEAVY)
    HEAVY;
#endif
#endif
    if
    :: tail -> skip              /* the recheck saw the item */
    :: else ->
        (epoch != e);            /* futex_wait(epoch, e) */
        (tail)                   /* woken: the item becomes visible */
    fi;
    sleepers--
}
