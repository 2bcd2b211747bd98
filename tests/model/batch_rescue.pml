/*
 * tests/model/batch_rescue.pml: a worker's batch and its rescue
 * (queue/wq_batch.h, queue/batch.c; docs/inject.md, "A worker's batch").
 * Checked by tests/model/check_batch_rescue.sh.
 *
 * The owner fills the batch twice (NB1 then NB2 items: the second fill is
 * the refill, once the first batch is empty) and takes its items one by
 * one: i = next; none if i >= end (acquire); store next = i + 1; load
 * rescue; if it is raised, the slow path (lock; rescue = 0; item i is the
 * owner's only if i < end, else next = end; unlock). Two rescuers (R1
 * rescues up to T1 times, R2 up to T2 times, each at any moment, also
 * while the batch is empty): lock; store rescue = 1; the membarrier
 * (light mode); load next = k; load end = e; take k .. e-1; if any, store
 * end = k; unlock.
 *
 * Items. slot[i] is items[i % WQ_BATCH_CAP] (no wrap at these sizes): the
 * number of the item a fill wrote there, 1, 2, ..; a refill after a rescue
 * writes at the indices the rescued items had (next = end = k), so an item
 * is its number, not its index. A take reads the slot when it decides.
 *
 * Memory. The owner's stores go into its store buffer: memory has mnext
 * and mend, the owner sees its own lnext (and lend while its store of end
 * is buffered). A buffered store of next drains at any moment, one value
 * at a time (coherence: memory's next goes through the owner's values in
 * order, it may lag behind); the fill's release store of end drains only
 * once the stores of next before it have (mnext >= nfill), while later
 * relaxed stores of next may overtake it (ARM64). The owner's loads read
 * memory when they run, so the load of rescue may run while the store of
 * next is still buffered; and (ARM64, light) the next claim's load of end
 * may run before the relaxed load of rescue (pf). The slow path's stores
 * drain at its unlock (release): nobody reads next or end under the lock
 * but its holder; the lock's acquire drains nothing. The rescuers' stores
 * and loads take effect at once (seq_cst, or followed by nothing but the
 * unlock's release); the items a fill writes are in memory when its end
 * is.
 *
 * The membarrier (light mode) is a full barrier in the owner at whatever
 * point of its program it has reached: the owner's buffer drains, at once,
 * while the rescuer waits; the owner's later loads come after it, and the
 * rescuer's store of rescue is in memory before it. It may fail: then the
 * rescuer takes nothing and leaves rescue raised (wq_batch_rescue).
 *
 * Seq_cst mode (-DSEQ_CST): the owner's store of next and load of rescue
 * are seq_cst: the store is in memory at once (after its buffered release
 * store of end: stlr after stlr, or xchg), before the load; no
 * membarrier.
 *
 * Checked: each item is taken at most once (assert at the take: by the
 * owner or a rescuer, never both, never twice), no empty slot is taken,
 * and once everyone is done every item filled was taken (the checker's
 * assert; a process stuck for good is an invalid end state).
 *
 *   -DSEQ_CST                        the seq_cst mode (default: light)
 *   -DMUTANT_NO_MEMBARRIER           light, the rescuer runs no membarrier
 *   -DMUTANT_MEMBARRIER_BEFORE_STORE light, the membarrier before the store
 *                                    of rescue instead of after it
 *   -DMUTANT_RESCUER_CLEARS          rescue lowered by the rescuer before
 *                                    its unlock, not by the owner's slow
 *                                    path
 *   -DMUTANT_LOAD_BEFORE_STORE       the owner loads rescue before it
 *                                    stores next
 *   -DMUTANT_NO_OWNER_LOCK           the owner's slow path without the lock
 *   -DNB1=n -DNB2=n -DT1=n -DT2=n    the sizes (defaults 3, 2, 2, 2)
 */
#ifndef NB1
#define NB1 3
#endif
#ifndef NB2
#define NB2 2
#endif
#ifndef T1
#define T1 2
#endif
#ifndef T2
#define T2 2
#endif
#define NITEMS (NB1 + NB2)

byte mnext;            /* next as memory has it */
byte lnext;            /* next as the owner has it (its last store) */
byte mend;             /* end as memory has it */
byte lend;             /* the owner's store of end, while buffered */
bit  bend;             /* ... buffered */
byte nfill;            /* the owner's next at that store */
bit  rescue;
bit  lock;
bit  owner_done;
byte rescuers_done;
byte slot[NITEMS];     /* items[i]: the item's number (1 ..), 0 none yet */
byte taken[NITEMS];    /* item n + 1: how many times it was taken */
byte nfilled;          /* items put in so far */

/* The owner's view of end: its own buffered store, else memory. */
#define OEND (bend -> lend : mend)

/* Everything the owner stored is in memory (a full barrier, the
 * membarrier's; or a release, the unlock's: nobody else reads under
 * the lock, so draining at the release is as early as anyone can tell). */
#define DRAIN   mnext = lnext; \
                if :: bend -> mend = lend; bend = 0 :: else -> skip fi

/* Take the item in items[i]: one that was put in, not taken before. */
#define TAKE(i) assert(i < NITEMS && slot[i] != 0 && taken[slot[i] - 1] == 0); \
                taken[slot[i] - 1]++

active proctype owner()
{
    byte i, e, batch;
    bit r, pf;
fill:
    /* next >= end, as the owner sees them: empty. Write the items at
     * next .., then store end = next + n, release (buffered). */
    if
    :: batch == 2 -> goto done
    :: else -> skip
    fi;
    d_step {
        e = (batch == 0 -> NB1 : NB2);
        i = lnext;
        do
        :: e > 0 -> assert(i < NITEMS); nfilled++; slot[i] = nfilled; i++; e--
        :: else -> break
        od;
        lend = i; bend = 1; nfill = lnext;
        batch++;
        i = 0; e = 0
    }
take:
    i = lnext;
    if
    :: pf && i >= e -> pf = 0; e = 0; goto fill  /* the early load */
    :: pf && i < e -> pf = 0; e = 0
    :: !pf && i >= OEND -> goto fill   /* none: the batch is empty */
    :: !pf && i < OEND -> skip
    fi;
#ifdef MUTANT_LOAD_BEFORE_STORE
    r = rescue;
#endif
#ifdef SEQ_CST
    atomic { DRAIN; lnext = i + 1; mnext = lnext }
#else
    lnext = i + 1;                     /* relaxed: buffered */
#ifndef MUTANT_LOAD_BEFORE_STORE
    /* ARM64: the next claim's load of end (acquire) may run before this
     * relaxed load of rescue; it is dropped if rescue is raised. */
    if
    :: e = OEND; pf = 1
    :: skip
    fi;
#endif
#endif
#ifndef MUTANT_LOAD_BEFORE_STORE
    r = rescue;
#endif
    if
    :: r -> r = 0; pf = 0; goto slow
    :: else -> skip
    fi;
    d_step { TAKE(i) }
    goto take;
slow:
#ifndef MUTANT_NO_OWNER_LOCK
    atomic { lock == 0 -> lock = 1 }
#endif
#ifndef MUTANT_RESCUER_CLEARS
    rescue = 0;
#endif
    e = OEND;
    if
    :: i < e -> d_step { TAKE(i) }
    :: else -> lnext = e               /* a rescuer took item i on */
    fi;
#ifndef MUTANT_NO_OWNER_LOCK
    atomic { DRAIN; lock = 0 }
#endif
    e = 0;
    goto take;                         /* (false: the caller refills) */
done:
    owner_done = 1
}

active proctype store_buffer()
{
    do
    :: atomic { mnext < lnext -> mnext++ }
    :: atomic { mnext > lnext -> mnext = lnext }   /* the slow path's next = e */
    :: atomic { bend && mnext >= nfill -> mend = lend; bend = 0 }
    :: atomic { owner_done && mnext == lnext && !bend -> break }
    od
}

proctype rescuer(byte tries)
{
    byte k, e, j;
    do
    :: tries > 0 ->
        tries--;
        atomic { lock == 0 -> lock = 1 };
#ifdef MUTANT_MEMBARRIER_BEFORE_STORE
        atomic { DRAIN };
        rescue = 1;
#else
        rescue = 1;
#if !defined(SEQ_CST) && !defined(MUTANT_NO_MEMBARRIER)
        if
        :: atomic { DRAIN }            /* the membarrier */
        :: goto unlock                 /* it failed: rescue stays raised */
        fi;
#endif
#endif
        k = mnext;
        e = mend;                      /* acquire */
        if
        :: k < e ->
            d_step {
                j = k;
                do
                :: j < e -> TAKE(j); j++
                :: else -> break
                od;
                j = 0
            };
            mend = k                   /* release */
        :: else -> skip
        fi;
unlock:
#ifdef MUTANT_RESCUER_CLEARS
        rescue = 0;
#endif
        k = 0; e = 0;
        lock = 0
    :: else -> break
    od;
    rescuers_done++
}

init
{
    atomic {
        run rescuer(T1);
        run rescuer(T2)
    }
}

active proctype checker()
{
    byte j;
    atomic {
        owner_done && rescuers_done == 2 && mnext == lnext && !bend;
        do
        :: j < NITEMS -> assert(taken[j] == (j < nfilled -> 1 : 0)); j++
        :: else -> break
        od
    }
}
