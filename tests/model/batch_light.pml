/*
 * tests/model/batch_light.pml: a worker's batch filled from a light ring,
 * and the notify after the fill (sched/pool.c ws_batch_keep,
 * ws_notify_light; docs/inject.md "A worker's batch", "Wake-ups"), with the
 * parking protocol of tests/model/ring_asym.pml (the one-wake-up token
 * park.waking, the parkers' membarrier while a ring is leased). Checked by
 * tests/model/check_batch_light.sh.
 *
 * What is checked: a worker that claims items from the ring keeps the rest
 * in its batch and runs the first; when that first item waits for the
 * others (a gate: tests/sched_batch.c), only a peer's rescue lets it end,
 * so a peer must not sleep for good while items sit in the batch. The
 * fill's publish is a release store of end and its notify a relaxed load
 * of sleepers (ws_notify_light): no barrier on the worker's side. The
 * argument is that the ring stays leased until its items have run, so a
 * parker that announced itself and then saw the lease runs the membarrier
 * (every other thread's buffered stores drain: the fill included), and
 * one that did not see the lease announced itself before the lease in the
 * total order, so the lessee's fence makes its first push's notify see the
 * announce.
 *
 * Memory is sequentially consistent except for the store buffers of the
 * producer (its stores of tail: light pushes) and of each worker (its
 * store of its batch's end: the fill), which drain at any later moment; a
 * thread's own locked instruction (a CAS of head or waking, the announce)
 * drains its own buffer; the membarrier drains all. Loads read memory
 * (a thread reads its own buffered store of end when it takes from its own
 * batch: modelled as a drain first). The rescue itself (the owner's claims
 * against a rescuer's) is checked in tests/model/batch_rescue.pml; here a
 * rescue takes every item it sees in one step.
 *
 * The producer leases the ring (visible at once: the CAS, then the fence)
 * and pushes N items, each a buffered store of tail and a notify_light.
 * NW workers loop: claim everything visible in the ring (a CAS of head;
 * the item with index 0 is the gate), keep the rest in the batch and
 * notify, then run the first (the gate waits until the N - 1 others have
 * run); or take from their own batch; or rescue a peer's visible batch; or
 * park (announce, token, membarrier if a ring is leased, recheck the ring
 * and every batch, futex_wait). A lost wake-up: the gate's worker waits
 * for ever with items in its batch and its peer asleep: spin reports an
 * invalid end state. Once all N ran, sleepers are let go.
 *
 *   -DSEQ_CST                the fallback: the fill is visible at once and
 *                            its notify is ws_notify (a seq_cst RMW first);
 *                            the ring's pushes too, no membarrier
 *   -DMUTANT_NO_HEAVY        light, and no membarrier in the parkers
 *   -DMUTANT_NO_FILL_NOTIFY  light, and no notify after the fill
 *   -DMUTANT_EARLY_RETURN    light, and the ring is returned (its lease
 *                            bit cleared) once the producer is done and
 *                            the ring is empty, before its items have run
 *   -DREACH_RESCUE           asserts that no rescue happens while the gate
 *                            waits: its failure shows the search reaches
 *                            the case the model is about
 */
#ifndef N
#define N 3            /* items pushed */
#endif
#define NW 2           /* workers */
#define SENT 1
#define PASS 3

bit leased;            /* the pool's rings_leased */
byte tail;             /* the ring's tail as memory has it */
byte btail;            /* the producer's stores of tail still buffered */
byte head;             /* items claimed from the ring */
byte batch[NW];        /* items in each worker's batch, as memory has it */
byte bbatch[NW];       /* a worker's fill, still in its store buffer */
byte ran;              /* items run */
byte sleepers;
byte epoch;
byte waking;
bit infutex[NW];
bit producer_done;
bit gate_waits;        /* the gate's worker is waiting for the others */

#define DRAIN_P  tail = tail + btail; btail = 0
#define DRAIN_W(j) batch[j] = batch[j] + bbatch[j]; bbatch[j] = 0
#define HEAVY  atomic { DRAIN_P; DRAIN_W(0); DRAIN_W(1) }
#define VISIBLE_BATCH (batch[0] > 0 || batch[1] > 0)

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

/* ws_wake_once(p, 1, mark) once k holds the value read of waking: seq_cst
 * CASes, each a locked instruction that drains the caller's buffer (who:
 * a worker's index, or PRODUCER). As in ring_asym.pml. */
#define PRODUCER 255
inline wake_once_from(mark, who) {
    do
    :: k == PASS -> break
    :: else ->
        atomic {
            if :: who == PRODUCER -> DRAIN_P :: else -> DRAIN_W(who) fi;
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

/* ws_notify_light(p, 1): two relaxed loads, the second only under a
 * control dependency, which does not order loads (ARM64): waking may be
 * read before sleepers. */
inline notify_light(who) {
    if
    :: sleepers > 0 -> k = waking; wake_once_from(SENT, who)
    :: else -> skip
    :: k = waking;
       if
       :: sleepers > 0 -> wake_once_from(SENT, who)
       :: else -> k = 0
       fi
    fi
}

/* ws_notify / ws_notify_after_rmw after a seq_cst RMW: a seq_cst load of
 * sleepers, then the token. */
inline notify_rmw(who) {
    if
    :: sleepers > 0 -> k = waking; wake_once_from(SENT, who)
    :: else -> skip
    fi
}

/* ws_pass_wake, by a worker that owes a pass and found work: a seq_cst
 * RMW read of sleepers, then the token step with PASS as the mark. */
inline pass_wake(who) {
    if
    :: pass ->
        pass = 0;
        if
        :: sleepers > 0 -> k = waking; wake_once_from(PASS, who)
        :: else -> skip
        fi
    :: else -> skip
    fi
}

active proctype producer()
{
    byte i, k;
    bit ok;
    leased = 1;                    /* the CAS, then the fence */
    do
    :: i < N ->
#ifdef SEQ_CST
        tail++;                    /* a seq_cst RMW of tail */
        notify_rmw(PRODUCER);
#else
        btail++;
        notify_light(PRODUCER);
#endif
        i++
    :: else -> break
    od;
    producer_done = 1
}

active proctype store_buffers()
{
    /* Each buffered store drains at any moment; tail's in order. */
    do
    :: atomic { btail > 0 -> tail++; btail-- }
    :: atomic { bbatch[0] > 0 -> DRAIN_W(0) }
    :: atomic { bbatch[1] > 0 -> DRAIN_W(1) }
#ifdef MUTANT_EARLY_RETURN
    :: atomic { producer_done && btail == 0 && head == tail && leased -> leased = 0 }
#endif
    :: atomic { ran == N && btail == 0 && bbatch[0] == 0 && bbatch[1] == 0 } -> break
    od
}

inline exchange_token() {
    atomic { if :: waking == PASS -> pass = 1 :: else -> skip fi; waking = 0 }
}

/* me: the worker's index (_pid 0 and 1 are the producer and the buffers). */
active [NW] proctype worker()
{
    byte me = _pid - 2, e, k, n, first;
    bit ok, pass, seen;
    do
    :: ran == N -> break
    :: atomic { head < tail -> DRAIN_W(me); first = head; n = tail - head; head = tail } ->
        /* Claimed n items (a CAS of head), the first to run now, the rest
         * into the batch (ws_batch_keep), then the notify. */
        if
        :: n > 1 ->
#ifdef SEQ_CST
            batch[me] = n - 1;
            notify_rmw(me);              /* ws_notify */
#else
            bbatch[me] = n - 1;
#ifndef MUTANT_NO_FILL_NOTIFY
            notify_light(me);
#endif
#endif
            skip
        :: else -> skip
        fi;
        pass_wake(me);
        if
        :: first == 0 ->                        /* the gate */
            gate_waits = 1;
            (ran == N - 1);
            gate_waits = 0
        :: else -> skip
        fi;
        ran++;
        n = 0; first = 0
    :: atomic { (batch[me] > 0 || bbatch[me] > 0) -> DRAIN_W(me); batch[me]--; n = 1 } ->
        pass_wake(me);                          /* our own batch */
        ran++;
        n = 0
    :: atomic { batch[1 - me] > 0 -> n = batch[1 - me]; batch[1 - me] = 0 } ->
#ifdef REACH_RESCUE
        assert(!gate_waits);                    /* must fail: the case is reached */
#endif
        pass_wake(me);                          /* a rescue */
        ran = ran + n;
        n = 0
    :: atomic { ran < N && head == tail && batch[me] == 0 && bbatch[me] == 0 &&
                batch[1 - me] == 0 } ->         /* nothing: park */
        e = epoch;
        atomic { DRAIN_W(me); sleepers++ }      /* the announce: an RMW */
        exchange_token();
#if !defined(SEQ_CST) && !defined(MUTANT_NO_HEAVY)
        if
        :: leased -> HEAVY                      /* a ring is leased */
        :: else -> skip
        fi;
#endif
        seen = (head < tail || VISIBLE_BATCH);  /* the recheck */
        if
        :: seen -> skip
        :: else ->
            atomic {                            /* futex_wait(&epoch, e) */
                if
                :: epoch == e -> infutex[me] = 1
                :: else -> skip
                fi
            }
            (!infutex[me] || ran == N);
            infutex[me] = 0;
            pass = 0
        fi;
        seen = 0;
        e = 0;
        sleepers--;
        exchange_token()
    od
}
