/*
 * tests/model/flow_seal.pml: spawns from outside a flow racing its close,
 * and the seal in the flow's count (sched/flow.c ws_flow_count_in,
 * ws_flow_seal, ws_close_other; sched/close_async.c ws_flow_async_seal;
 * docs/scheduler.md, "A spawn racing the close").
 * Checked by tests/model/check_flow_seal.sh.
 *
 * A flow without owner, opened by an external thread that spawned K tasks
 * (counted in its local_pending, so their completions take state below
 * zero until the close hands the count over). Two outsiders each try S
 * spawns: the open check (magic OPEN or CLOSING; ASYNC refuses), then the
 * count (+4: the task and the spawner itself) unless the state is sealed,
 * the push, and the spawner's own uncount (-2). One worker runs the queued
 * tasks (-2 each). The closer closes once, in one of two modes:
 *   sync:  magic = CLOSING; hand-over (+2K); wait for a zero count; seal
 *          (fetch_or); if the fetch_or found a count, wait again; return;
 *   async: magic = ASYNC; hand-over with ASYNC in one RMW; if that found
 *          the count at zero, done.
 * An outsider's count refuses a sealed state and an async-closed flow's
 * zero count (state == ASYNC); whoever's RMW leaves exactly ASYNC runs
 * done, after which the flow may be freed: no write of state may follow.
 * Each RMW is one atomic step (an RMW of one word: its modification order
 * is the order of the steps); the CAS loop
 * is one step too, its successful iteration being an atomic read, check
 * and write. A wait is a blocking guard: the sleep and its wake-up (the
 * WAITER bit) are not modeled here, only the counts.
 *
 * Checked: no task runs after the close returned or done ran; when the
 * close returns or done runs, every accepted spawn's task has run; done
 * runs at most once (and, async, exactly once in the end), and nothing
 * writes the flow's state after it; a spawn is
 * refused by the count only once a closer sealed it, and no spawn of an
 * outsider is accepted after one of its own was refused; nobody is stuck
 * (an invalid end state).
 *
 *   -DASYNC                  the async close (default: sync)
 *   -DMUTANT_NO_SEAL         the sync close neither seals nor waits again
 *   -DMUTANT_NO_REWAIT       the sync close seals, but returns even when
 *                            the fetch_or found a count
 *   -DMUTANT_ASYNC_ACCEPT_ZERO  an outsider counts into an async-closed
 *                            flow's zero count
 *   -DMUTANT_BARE_BIT        sealed is the bit alone (a negative count
 *                            has it set too)
 */
#ifndef K
#define K 1
#endif
#ifndef S
#define S 2
#endif

#define SEALED 524288   /* 2^19 stands for 2^61 */
#define FASYNC 1048576  /* 2^20 stands for 2^62 */

#ifdef MUTANT_BARE_BIT
#define sealed(s) (((s) & SEALED) != 0)
#else
#define sealed(s) ((s) > 0 && ((s) & SEALED) != 0)
#endif

mtype = { OPEN, CLOSING, ASYNCED, CLOSED };
mtype magic = OPEN;
int state = 0;
bool closed = false;       /* the close returned, or done ran */
bool seal_set = false;     /* a closer's fetch_or of SEALED ran */
byte queued = K;           /* tasks in the queues */
byte accepted = K;         /* spawns that returned 0 */
byte ran = 0;
byte dones = 0;
byte spawners_done = 0;
byte finished = 0;

/* done: the flow may be freed from here on (no write of state after). */
inline async_done()
{
    d_step { assert(ran == accepted); dones++; assert(dones == 1); closed = true }
}

/* ws_flow_uncount(n); the caller declares int left. */
inline uncount(n)
{
    d_step { assert(dones == 0); state = state - n; left = state };
    if
    :: left == FASYNC -> async_done()
    :: else -> skip
    fi
}

proctype Outsider()
{
    byte tries = 0;
    bool refused = false, counted;
    int left;
    do
    :: tries < S ->
        tries++;
        if
        :: magic == OPEN || magic == CLOSING ->
            d_step {
                if
                :: sealed(state) -> counted = false; assert(seal_set)
#ifndef MUTANT_ASYNC_ACCEPT_ZERO
                :: state == FASYNC -> counted = false
#endif
                :: else -> assert(dones == 0); counted = true; state = state + 4; accepted++;
                    assert(!refused)
                fi
            };
            if
            :: counted ->
                queued++;
                uncount(2)
            :: else -> refused = true
            fi
        :: else -> refused = true /* the flow is async-closed or closed */
        fi
    :: else -> break
    od;
    atomic { spawners_done++; finished++ }
}

proctype Worker()
{
    int left;
    do
    :: atomic { queued > 0 -> queued--; assert(!closed); ran++ };
        uncount(2)
    :: spawners_done == 2 && queued == 0 -> break
    od;
    finished++
}

proctype Closer()
{
    int old;
#ifdef ASYNC
    magic = ASYNCED;
    d_step { assert(dones == 0); old = state; state = state + 2 * K + FASYNC };
    if
    :: old + 2 * K == 0 -> async_done()
    :: else -> skip
    fi;
#else
    magic = CLOSING;
    d_step { state = state + 2 * K };
    (state & ~SEALED) == 0;
#ifndef MUTANT_NO_SEAL
    d_step { old = state; state = state | SEALED; seal_set = true };
    if
    :: old != 0 ->
#ifndef MUTANT_NO_REWAIT
        (state & ~SEALED) == 0
#else
        skip
#endif
    :: else -> skip
    fi;
#endif
    d_step { assert(ran == accepted); magic = CLOSED; closed = true };
#endif
    finished++
}

init {
    atomic {
        run Outsider();
        run Outsider();
        run Worker();
        run Closer()
    };
    finished == 4;
    assert(ran == accepted);
#ifdef ASYNC
    assert(dones == 1)
#endif
}
