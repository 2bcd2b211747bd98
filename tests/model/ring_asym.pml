/*
 * tests/model/ring_asym.pml: the asymmetric fence between a light ring
 * push and a parking worker (sched/asym.c, docs/scheduler.md "Ring pushes:
 * the asymmetric fence"). Checked by tests/model/check_ring_asym.sh.
 *
 * The producer leases a ring (a CAS of the mask, then a seq_cst fence),
 * then pushes: its release store of tail goes into its store buffer,
 * which drains at any later moment; its load of sleepers reads memory
 * when it runs, so it may run before the store is visible (the
 * store-to-load reordering every CPU weft runs on allows). The buffer is
 * not FIFO here (ARM64's is not either). The parker reads epoch,
 * announces itself in sleepers (a seq_cst RMW: visible at once), and if
 * the mask shows a leased ring runs the heavy barrier (membarrier: the
 * producer's buffer drains at that moment, wherever the producer is in its
 * program); then it rechecks (mask and tail), and sleeps until epoch
 * moves. A wake-up is epoch++ (then futex_wake).
 *
 * A lost wake-up is a parker asleep for good with the item in the ring:
 * spin reports it as an invalid end state (the parker blocked at its
 * sleep when everyone else is done).
 *
 *   -DRMW                          the fallback: the lease and the push are
 *                                  seq_cst RMWs (visible at once), no
 *                                  heavy barrier
 *   -DMUTANT_NO_HEAVY              a light push, no membarrier
 *   -DMUTANT_HEAVY_BEFORE_ANNOUNCE a light push, membarrier before the
 *                                  announce instead of after it
 *   -DMUTANT_NO_LEASE_FENCE        no fence after the lease's CAS: its
 *                                  store may still be buffered when the
 *                                  producer loads sleepers (ARM64)
 */
bit mask;      /* the pool's rings_leased as memory has it */
bit tail;      /* the ring's tail as memory has it: 1, the item is visible */
bit bmask;     /* the producer's store of the mask, still buffered */
bit btail;     /* the producer's store of tail, still buffered */
byte sleepers;
byte epoch;
bit producer_done;

#define HEAVY atomic { if :: bmask -> mask = 1; bmask = 0 :: else -> skip fi; \
                       if :: btail -> tail = 1; btail = 0 :: else -> skip fi }

active proctype producer()
{
#ifdef MUTANT_NO_LEASE_FENCE
    bmask = 1;
#else
    mask = 1;                    /* the CAS, then the fence: drained */
#endif
#ifdef RMW
    tail = 1;
#else
    btail = 1;
#endif
    if
    :: sleepers > 0 -> epoch++
    :: else -> skip
    fi;
    producer_done = 1
}

active proctype store_buffer()
{
    /* Each buffered store drains once, at any moment, in either order. */
    do
    :: atomic { bmask -> mask = 1; bmask = 0 }
    :: atomic { btail -> tail = 1; btail = 0 }
    :: atomic { producer_done && !bmask && !btail } -> break
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
    if
    :: mask -> HEAVY             /* a ring is leased */
    :: else -> skip
    fi;
#endif
#endif
    if
    :: mask && tail -> skip      /* the recheck saw the item */
    :: else ->
        (epoch != e);            /* futex_wait(epoch, e) */
        (mask && tail)           /* woken: the item becomes visible */
    fi;
    sleepers--
}
