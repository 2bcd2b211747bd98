/*
 * tests/model/ring_asym.pml: the asymmetric fence between a light ring
 * push and parking workers (sched/asym.c, docs/scheduler.md "Ring pushes:
 * the asymmetric fence"), with the one-wake-up token park.waking
 * (sched/park.c ws_wake_once, ws_pass_wake; docs/scheduler.md "One wake-up
 * at a time"). Checked by tests/model/check_ring_asym.sh.
 *
 * The producer leases a ring (a CAS of rings_leased, then a seq_cst fence),
 * then pushes N items: each release store of tail goes into its store
 * buffer, which drains at any later moment (stores to tail in order, the
 * leased flag apart: not FIFO, as ARM64's is not); its loads (sleepers, then
 * waking, both relaxed: ws_notify_light) read memory when they run, so
 * they may run before its stores are visible. Its CAS of waking is a
 * locked instruction: it drains the buffer. On a sleeper it reads waking:
 * 0, it CASes SENT and wakes one (epoch++, futex_wake(1)); SENT, it CASes
 * PASS and wakes nobody; PASS, nothing.
 *
 * NP parkers each loop: take an item if one is visible (head < tail, a
 * seq_cst CAS), then, if it owes a pass, ws_pass_wake (a seq_cst RMW read
 * of sleepers; if nonzero the token step above with PASS as the mark);
 * else park: read epoch, announce (sleepers++, seq_cst), take the token
 * (exchange waking to 0; PASS: owe a pass), run the membarrier if rings_leased
 * shows a leased ring (the producer's buffer drains at that moment,
 * wherever the producer is), recheck, and sleep in futex_wait(epoch, e)
 * (blocks only if epoch is still e; returns only on a futex_wake that
 * picks it); having slept it owes no pass; then sleepers--, exchange
 * waking to 0 again (PASS: owe a pass).
 *
 * A lost wake-up is a parker asleep for good while an item is in the ring
 * that nobody will take: spin reports an invalid end state (a parker
 * blocked in futex_wait, everyone else asleep or done, head < N). Once
 * all N items are taken, sleepers are let go (the pool's stop).
 *
 *   -DRMW                          the fallback: the lease and the pushes
 *                                  are seq_cst RMWs (visible at once), no
 *                                  heavy barrier
 *   -DMUTANT_NO_HEAVY              a light push, no membarrier
 *   -DMUTANT_HEAVY_BEFORE_ANNOUNCE a light push, membarrier before the
 *                                  announce instead of after it
 *   -DMUTANT_NO_LEASE_FENCE        no fence after the lease's CAS: its
 *                                  store may still be buffered when the
 *                                  producer loads sleepers (ARM64)
 *   -DMUTANT_ENTRY_AFTER_RECHECK   the parker's entry exchange after the
 *                                  membarrier and the recheck (just before
 *                                  futex_wait) instead of before them
 *   -DMUTANT_NO_ENTRY_EXCHANGE     no entry exchange (only the exit one)
 *   -DMUTANT_SKIP_UNMARKED         a notifier that finds SENT wakes nobody
 *                                  and leaves SENT (does not mark PASS)
 *   -DMUTANT_NO_PASS               a worker that owes a pass never calls
 *                                  ws_pass_wake (shows the chain is used)
 * Knob: -DN= (items; NP is 2, wake1 names both parkers).
 */
#ifndef N
#define N 2            /* items pushed */
#endif
#define NP 2           /* parkers */
#define SENT 1
#define PASS 3

bit leased;      /* the pool's rings_leased as memory has it */
byte tail;     /* the ring's tail as memory has it */
bit bleased;     /* the producer's store of the leased, still buffered */
byte btail;    /* the producer's stores of tail still buffered (in order) */
byte head;     /* items taken */
byte sleepers;
byte epoch;
byte waking;
bit infutex[NP];
bit producer_done;

#define DRAIN  if :: bleased -> leased = 1; bleased = 0 :: else -> skip fi; \
               tail = tail + btail; btail = 0
#define HEAVY  atomic { DRAIN }

/* epoch++ (release RMW), then futex_wake(&epoch, 1): one waiter, if any. */
inline wake1() {
    epoch++;
    atomic {
        if
        :: infutex[0] -> infutex[0] = 0
        :: infutex[1] -> infutex[1] = 0
        :: !infutex[0] && !infutex[1] -> skip
        fi
    }
}

/* ws_wake_once(p, 1, mark): the load of waking (relaxed for the light
 * notifier, seq_cst for ws_pass_wake: the same read here, memory being
 * sequentially consistent but for the producer's buffer), then seq_cst
 * CASes; drain: the caller is the producer, whose buffer the CAS drains.
 * wake_once_from: the loop, once k holds the value read of waking. */
inline wake_once_from(mark, drain) {
    do
    :: k == PASS -> break
#ifdef MUTANT_SKIP_UNMARKED
    :: k == SENT -> break
#endif
    :: else ->
        atomic {
            if :: drain -> DRAIN :: else -> skip fi;
            if
            :: waking == k -> waking = (k -> PASS : mark); ok = 1
            :: else -> k = waking; ok = 0
            fi
        }
        if
        :: ok && k == 0 -> wake1(); break
        :: ok && k != 0 -> break
        :: else -> skip
        fi
    od;
    k = 0; ok = 0
}

inline wake_once(mark, drain) {
    k = waking;
    wake_once_from(mark, drain)
}

active proctype producer()
{
    byte i, k;
    bit ok;
#ifdef MUTANT_NO_LEASE_FENCE
    bleased = 1;
#else
    leased = 1;                    /* the CAS, then the fence: drained */
#endif
    do
    :: i < N ->
#ifdef RMW
        tail++;
#else
        btail++;
#endif
        /* ws_notify_light(p, 1): two relaxed loads, the second only
         * under a control dependency, which does not order loads (ARM64):
         * waking may be read before sleepers. */
        if
        :: sleepers > 0 -> k = waking; wake_once_from(SENT, 1)
        :: else -> skip
        :: k = waking;
           if
           :: sleepers > 0 -> wake_once_from(SENT, 1)
           :: else -> k = 0
           fi
        fi;
        i++
    :: else -> break
    od;
    producer_done = 1
}

active proctype store_buffer()
{
    /* Each buffered store drains at any moment; tail's in order. */
    do
    :: atomic { bleased -> leased = 1; bleased = 0 }
    :: atomic { btail > 0 -> tail++; btail-- }
    :: atomic { producer_done && !bleased && btail == 0 } -> break
    od
}

inline exchange_token() {
    atomic { if :: waking == PASS -> pass = 1 :: else -> skip fi; waking = 0 }
}

active [NP] proctype parker()
{
    byte e, k;
    bit ok, pass, seen;
    do
    :: head == N -> break
    :: atomic { head < tail -> head++ } ->      /* found work */
        if
#ifndef MUTANT_NO_PASS
        :: pass ->                              /* ws_pass_wake */
            pass = 0;
            if
            :: sleepers > 0 -> wake_once(PASS, 0)
            :: else -> skip
            fi
#endif
        :: else -> skip
        fi;
        if
        :: break                 /* a long task: never looks again */
        :: skip                  /* a short one: looks for more */
        fi
    :: atomic { head < N && head == tail } ->   /* nothing: park */
        e = epoch;
#ifdef MUTANT_HEAVY_BEFORE_ANNOUNCE
        HEAVY;
        sleepers++;
#else
        sleepers++;
#endif
#if !defined(MUTANT_NO_ENTRY_EXCHANGE) && !defined(MUTANT_ENTRY_AFTER_RECHECK)
        exchange_token();
#endif
#if !defined(RMW) && !defined(MUTANT_NO_HEAVY) && !defined(MUTANT_HEAVY_BEFORE_ANNOUNCE)
        if
        :: leased -> HEAVY         /* a ring is leased */
        :: else -> skip
        fi;
#endif
        seen = (head < tail);    /* the recheck */
#ifdef MUTANT_ENTRY_AFTER_RECHECK
        exchange_token();
#endif
        if
        :: seen -> skip
        :: else ->
            atomic {             /* futex_wait(&epoch, e) */
                if
                :: epoch == e -> infutex[_pid - 2] = 1
                :: else -> skip
                fi
            }
            (!infutex[_pid - 2] || head == N);
            infutex[_pid - 2] = 0;
            pass = 0
        fi;
        seen = 0;
        e = 0;
        sleepers--;
        exchange_token()
    od
}
