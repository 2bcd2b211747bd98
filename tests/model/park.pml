/*
 * tests/model/park.pml: a Promela model of weft's idle-parking protocol
 * (sched/park.c), checked by spin for lost wake-ups by check_park.sh.
 * docs/park-model.md describes what is modeled, what is left out, and how
 * each statement maps to the C code.
 *
 * Processes:
 *   Owner     one worker with a deque: pushes NPUSH items, takes some back,
 *             publishes all before a close's wait, and at any point between
 *             deque operations starts a long inline task that never
 *             touches its deque again (the process ends);
 *   Producer  an external thread that pushes NINJ items onto the injection
 *             queue, back to back;
 *   Thief(i)  NT idle workers: steal, pop, and park when they find nothing;
 *             one that took a PASS token passes a wake-up on when it next
 *             takes an item; after a take, up to NLONG of them start a long
 *             task instead of looking for more (they stop for good, at a
 *             valid end state);
 *   Flusher   drains the owner's one-entry store buffer, and the producer's
 *             slot store, at any time;
 *   monitor   fires on `timeout` (nothing else can move: the producer is
 *             done, the owner is in its long task, every thief is asleep in
 *             futex_wait or in its long task) and asserts that, if a thief
 *             is asleep, no work is visible: a visible item while a worker
 *             sleeps for good and every other one is in a task that may
 *             wait for it is a lost wake-up.
 *
 * Variants (at most one MUTANT_ per run; none: the protocol as fixed in
 * f3b9045, "every publish notifies", with 5d17f12's waking token):
 *   MUTANT_NO_NOTIFY_AFTER_PUBLISH   a push's publish notifies only when it
 *       then also offers private items (79c4bb9's ws_after_push_slow: no
 *       wake when the publish left nothing private).
 *   MUTANT_NO_NOTIFY_ON_TAKE_PUBLISH the publish a take makes for a thief's
 *       want_split notifies nobody (79c4bb9's wq_deque_before_take).
 *   MUTANT_RELAXED_SLEEPERS_LOAD     a push's publish (a release store of
 *       split, buffered) is followed by a relaxed load of sleepers that
 *       decides the wake (79c4bb9's read after its publish), instead of
 *       ws_notify's seq_cst RMW, which drains the store buffer first.
 *   MUTANT_NO_NOTIFY_AFTER_INJECT    a sanity mutant (not a defect the code
 *       had): an injection push that notifies nobody.
 * The waking token (5d17f12, sched/park.c ws_wake_once, ws_pass_wake), each
 * a rule of it left out:
 *   MUTANT_NO_ENTRY_EXCHANGE  a parker does not take the token after its
 *       announce.
 *   MUTANT_NO_EXIT_EXCHANGE   nor on its way out.
 *   MUTANT_NO_PASS            a worker that took a PASS never calls
 *       ws_pass_wake.
 *   MUTANT_SKIP_UNMARKED      a notifier that finds SENT sends nothing and
 *       leaves SENT (does not mark PASS).
 *   MUTANT_PASS_AS_SENT       ws_pass_wake marks SENT, not PASS.
 * Knobs: -DNT=, -DNPUSH=, -DNINJ=, -DNLONG= (sizes, below); -DSC_MEMORY: no
 * store buffer for the owner's split (MUTANT_RELAXED_SLEEPERS_LOAD then has
 * no error: its bug is store buffering and nothing else); the producer's
 * slot store is late in both.
 */

#ifndef NT
#define NT 2        /* thieves (idle workers besides the owner), 1..3 */
#endif
#ifndef NPUSH
#define NPUSH 3     /* items the owner pushes (path (2) needs 3) */
#endif
#ifndef NINJ
#define NINJ 1      /* items the external thread injects */
#endif
#ifndef NLONG
#define NLONG NT    /* thieves that may start a long task (0..NT) */
#endif

/* ---- the owner's deque (queue/wq_deque.h, queue/deque.c) --------------- */
byte top;           /* d->top: thieves' CAS, owner's CAS on the last item */
byte split;         /* d->split in memory, as other threads read it */
byte want_split;    /* d->hint's WQ_HINT_SPLIT bit */
bool drained = true; /* d->hint's WQ_HINT_DRAINED bit (set at start: others exist) */
bool sleep_mark;    /* d->hint's WS_HINT_SLEEP bit */
byte bottom;        /* d->bottom, the owner's */
byte split_own;     /* d->split_own, the owner's */

/* The owner's store buffer (x86-TSO, one entry): its release / relaxed
 * stores of split wait here until the Flusher or one of the owner's locked
 * instructions (RMW, CAS, seq_cst store) drains them. Other threads read
 * split, never the buffer. */
bool sb_full;
byte sb_val;

/* ---- the injection queue (queue/inject.c), as counters ----------------- */
byte inj_tail;      /* q->tail: the producer's seq_cst fetch_add */
byte inj_ready;     /* slots whose state WRITTEN is visible: poppable */
byte inj_head;      /* q->head */
/* The producer's exchange of the slot's state to WRITTEN (acq_rel) may be
 * seen late, as if buffered: it waits here until the Flusher or the
 * producer's next seq_cst RMW (a CAS of waking, the next push's fetch_add
 * of tail) moves it to inj_ready. */
bool inj_sb;

/* ---- parking (sched/park.c) -------------------------------------------- */
byte sleepers;      /* p->park.sleepers */
bool waiting[NT];   /* the kernel's futex wait queue on &p->park.epoch */
/* p->park.epoch, the futex word, is kept only as what a sleeper can tell
 * of it: whether it changed since the sleeper read it (exact unless epoch
 * wraps, 2^32 increments, between one worker's read and its futex_wait). */
bool reading[NT];   /* thief i has read epoch, not yet back from futex_wait */
bool changed[NT];   /* ... and epoch has changed since */
byte nwake;         /* scratch of futex_wake (always 0 between steps) */
/* p->park.waking, the token (sched/ws.h): 0, no wake-up on its way; SENT,
 * a notifier sent one and no worker has taken the token since; PASS, a
 * notifier found SENT and skipped its own, or ws_pass_wake sent one: the
 * worker that takes it passes a wake-up on. */
#define SENT 1      /* WS_WAKE_SENT */
#define PASS 3      /* WS_WAKE_PASS */
byte waking;

/* ---- bookkeeping (not in the code) ------------------------------------- */
byte pushed;        /* items the owner has pushed */
byte injected;      /* items the producer has pushed */
byte done;          /* items taken (and run) by anyone */
byte nlong;         /* thieves that started a long task */

/* Drain the owner's store buffer (part of each of its locked instructions). */
inline sb_drain()
{
    atomic { if :: sb_full -> split = sb_val; sb_full = false :: else -> skip fi }
}

/* The CAS of ws_wake_once (a seq_cst RMW, a locked instruction) drains
 * the store buffer of the process that runs it: the owner's split, the
 * producer's slot state. The thieves have nothing buffered. */
inline lock_drain()
{
    if
    :: _pid == 0 -> sb_drain()
    :: _pid == 1 && inj_sb -> inj_ready++; inj_sb = false
    :: else -> skip
    fi
}

/* A release or relaxed store of split by the owner: into the buffer (an
 * older entry drains first: the buffer is FIFO). -DSC_MEMORY: to memory. */
inline sb_store_split(v)
{
#ifdef SC_MEMORY
    split = v
#else
    atomic {
        if :: sb_full -> split = sb_val :: else -> skip fi;
        sb_full = true; sb_val = v
    }
#endif
}

/* futex_wake(&epoch, n): wakes up to n threads of the kernel's wait queue
 * (which ones: any). */
inline futex_wake(n)
{
    atomic {
        nwake = n;
        do
        :: nwake > 0 && waiting[0] -> waiting[0] = false; nwake--
#if NT > 1
        :: nwake > 0 && waiting[1] -> waiting[1] = false; nwake--
#endif
#if NT > 2
        :: nwake > 0 && waiting[2] -> waiting[2] = false; nwake--
#endif
        :: else -> break
        od;
        nwake = 0; snd = false    /* the caller's "send" is done */
    }
}

/* ws_wake: epoch += 1 (an RMW), then futex_wake(n). */
inline ws_wake(n)
{
    atomic {
        changed[0] = changed[0] || reading[0];
#if NT > 1
        changed[1] = changed[1] || reading[1];
#endif
#if NT > 2
        changed[2] = changed[2] || reading[2];
#endif
    }
    futex_wake(n)
}

/* ws_wake_once(p, n, mark), the part before ws_wake: a seq_cst load of
 * waking, then a seq_cst CAS loop. Its effect is decided at one point, the
 * successful CAS or the load (or a failed CAS's reload) that finds PASS;
 * the steps before it write nothing, so under SC it is one atomic step
 * (the caller's): 0 -> mark, and send (snd); SENT -> PASS, no send; PASS
 * -> no write, no send. The caller then runs ws_wake(n) if snd. r_sl, the
 * caller's read of sleepers, is done with. */
inline wake_once(mark)
{
    if
    :: waking == 0 -> lock_drain(); waking = mark; snd = true
#ifdef MUTANT_SKIP_UNMARKED
    :: waking == SENT -> skip                      /* no mark */
#else
    :: waking == SENT -> lock_drain(); waking = PASS
#endif
    :: else -> skip
    fi;
    r_sl = false
}

/* ws_notify(p, n): fetch_add(sleepers, 0), seq_cst. As a locked
 * instruction it drains the owner's store buffer first; the drain and the
 * read are one step. Then, if anyone sleeps, ws_wake_once(n, SENT). */
inline ws_notify(n)
{
    atomic { sb_drain(); r_sl = (sleepers > 0) }
    if
    :: atomic { r_sl -> wake_once(SENT) }
        if :: snd -> ws_wake(n) :: else -> skip fi
    :: else -> skip
    fi
}

/* wq_deque_publish(d, all): clears want_split, then moves half (rounded
 * up) or all private items into the shared part with a release store of
 * split (buffered). One step: the clear is a store, and the buffered store
 * is seen by nobody yet. n: how many items it moved (its return value). */
inline publish(all, n)
{
    atomic {
        want_split = 0;
        if
        :: bottom > split_own ->
            if
            :: all -> n = bottom - split_own
            :: else -> n = (bottom - split_own + 1) / 2
            fi;
            split_own = split_own + n;
            sb_store_split(split_own)
        :: else -> n = 0
        fi
    }
}

/* ws_publish(w, all): publish, and notify as many as were published. */
inline ws_publish(all)
{
    publish(all, n);
    if :: n > 0 -> ws_notify(n) :: else -> skip fi
}

/* ---- the owner --------------------------------------------------------- */
/* Each step reads or writes at most one shared variable (bottom, split_own
 * and pushed are the owner's own; done is bookkeeping). */
active proctype Owner()
{
    bool slow, r_sl, snd;
    byte t, s, n;

    do
    :: pushed < NPUSH ->
        /* wq_deque_put: a private push (sched/flow.c ws_spawn_slow, the
         * spawn fast path, sched/join.c weft_join), then ws_after_push's
         * ws_push_needs_more: one relaxed load of the hint word. */
        atomic {
            r_sl = false; t = 0; s = 0; n = 0;
            bottom++; pushed++;
            slow = (want_split != 0 || drained || sleep_mark)
        }
        if
        :: slow ->
#if defined(MUTANT_NO_NOTIFY_AFTER_PUBLISH)
            /* 79c4bb9's ws_after_push_slow: publish half if a thief asked or
             * the shared part is empty; then, if a relaxed load of sleepers
             * is nonzero, ws_offer_private, which publishes and notifies
             * only if private items were left. */
            slow = (want_split != 0);
            if :: !slow -> slow = (top >= split_own) :: else -> skip fi;
            if :: slow -> publish(false, n) :: else -> skip fi;
            r_sl = (sleepers > 0);
            if
            :: r_sl && bottom > split_own -> publish(true, n); ws_notify(1)
            :: else -> skip
            fi
#else
            /* ws_after_push_slow: clear the drained and sleep marks (an RMW
             * only when one is set: no drain of the store buffer assumed),
             * a relaxed load of sleepers (a
             * hint for how much; nonzero sets the sleep mark again), then
             * ws_publish. */
            atomic { drained = false; sleep_mark = false }
            r_sl = (sleepers > 0);
            if :: r_sl -> sleep_mark = true :: else -> skip fi;
#if defined(MUTANT_RELAXED_SLEEPERS_LOAD)
            /* The publish's store, then a relaxed load of sleepers decides
             * the wake: no RMW, so the buffered store of split may still be
             * unseen by a sleeper that announced itself after the load. */
            if
            :: slow ->
                publish(r_sl, n);
                r_sl = (sleepers > 0);
                if
                :: atomic { n > 0 && r_sl -> wake_once(SENT) }
                    if :: snd -> ws_wake(n) :: else -> skip fi
                :: else -> r_sl = false
                fi
            :: else -> skip
            fi
#else
            if :: slow -> ws_publish(r_sl) :: else -> skip fi
#endif
#endif
        :: else -> skip
        fi

    :: bottom > 0 ->
        /* ws_take (worker loop, ws_help, a close's drain, a join's take
         * back): first a thief's request. */
        atomic {
            r_sl = false; t = 0; s = 0; n = 0;
            slow = (want_split != 0)
        }
        if
        :: slow ->
#ifdef MUTANT_NO_NOTIFY_ON_TAKE_PUBLISH
            publish(false, n)
#else
            ws_publish(false)
#endif
        :: else -> skip
        fi;
        /* wq_deque_take_no_publish */
        if
        :: bottom > split_own ->
            /* wq_deque_take_private */
            bottom--; done++
        :: else ->
            /* wq_deque_take_shared_ */
            t = top;                                 /* acquire load */
            if
            :: t + 1 == split_own ->
                /* one shared item: race the thieves with a CAS on top (a
                 * locked instruction: drains the store buffer) */
                atomic {
                    sb_drain();
                    if :: top == t -> top++; done++ :: else -> skip fi
                }
            :: t >= split_own -> skip                /* nothing shared */
            :: else ->
                s = split_own - 1;
                atomic { sb_drain(); split = s }     /* seq_cst store */
                t = top;                             /* seq_cst load */
                if
                :: t > s -> sb_store_split(s + 1)    /* empty: restore */
                :: t < s -> split_own = s; bottom = s; done++
                :: else ->
                    /* the last item: CAS race on top */
                    atomic {
                        sb_drain();
                        if :: top == t -> top++; done++ :: else -> skip fi
                    }
                    atomic { sb_store_split(s + 1); split_own = s + 1; bottom = s + 1 }
                fi
            fi;
            /* ws_take_shared: the shared part is empty (a relaxed load of
             * top): the next push must publish. */
            atomic { if :: top >= split_own -> drained = true :: else -> skip fi }
        fi
        /* the taken item runs inline (briefly), then the loop goes on */

    :: bottom > split_own ->
        /* ws_close_owner_slow: before waiting, publish all private items. */
        atomic { r_sl = false; t = 0; s = 0; n = 0 }
        ws_publish(true)

    :: break    /* a long inline task: the deque is never touched again */
    od
}

/* ---- the external producer (wq_inject_push + ws_notify_after_rmw) ------ */
active proctype Producer()
{
    bool r_sl, snd;

    do
#ifdef MUTANT_NO_NOTIFY_AFTER_INJECT
    :: atomic { injected < NINJ -> injected++; inj_tail++; inj_ready++ }
#else
    :: atomic {
        injected < NINJ ->
        /* the seq_cst fetch_add of tail, visible to wq_inject_nonempty (a
         * locked instruction: the last push's slot store drains first) */
        if :: inj_sb -> inj_ready++; inj_sb = false :: else -> skip fi;
        injected++; inj_tail++;
        /* the slot's exchange to WRITTEN (acq_rel): it may be seen after
         * the seq_cst loads of sleepers and waking below, not after a CAS
         * of waking. Into the buffer: nobody sees it yet. */
        inj_sb = true
       }
        r_sl = (sleepers > 0);             /* ws_notify_after_rmw */
        if
        :: atomic { r_sl -> wake_once(SENT) }
            if :: snd -> ws_wake(1) :: else -> skip fi
        :: else -> skip
        fi
#endif
    :: else -> break
    od
}

/* ws_run, inside a thief's take: the item runs briefly and the loop goes
 * on; or, for up to NLONG thieves, it is a long task: the thief never
 * looks for work again (as the owner's long task; a valid end state). */
inline run_item()
{
    if
    :: goto loop
    :: nlong < NLONG -> nlong++; goto end_long_task
    fi
}

/* ---- idle workers (sched/pool.c ws_worker_loop, ws_find_work; ---------- */
/* ---- sched/park.c ws_park_wait, ws_pass_wake) -------------------------- */
active [NT] proctype Thief()
{
    byte me = _pid - 2;    /* Owner is 0, Producer 1 */
    bool found, pass, r_sl, snd;

loop:
    /* ws_find_work: wq_deque_steal on the owner's deque, then
     * wq_inject_pop, each one atomic step (docs/park-model.md: both queues
     * are linearizable). A steal may also fail for a lost race (WQ_RETRY);
     * then the search goes on to the injection queue. A take runs the item
     * (run_item), or first passes a wake-up on if the thief owes one. */
    atomic {
        if
        :: top < split -> top++; done++;                /* stolen */
           if :: top >= split -> drained = true :: else -> skip fi;
           if :: pass -> goto owe :: else -> run_item() fi
        :: top < split -> skip                          /* WQ_RETRY */
        :: else -> want_split = 1                       /* WQ_EMPTY: ask */
        fi
    }
    atomic {
        if
        :: inj_head < inj_ready -> inj_head++; done++;  /* popped */
           if :: pass -> goto owe :: else -> run_item() fi
        :: else -> skip
        fi
    }
    /* A spin or yield round looks again; or park (pass is kept). */
    if
    :: goto loop
    :: atomic { reading[me] = true; changed[me] = false }  /* ws_park_wait: e = epoch */
    fi;
    sleepers++;                                         /* seq_cst RMW */
#ifndef MUTANT_NO_ENTRY_EXCHANGE
    /* exchange(waking, 0), seq_cst: a PASS is owed on */
    atomic { if :: waking == PASS -> pass = true :: else -> skip fi; waking = 0 }
#endif
    sleep_mark = true;             /* on the other workers' hint words */
    /* ws_work_visible: wq_inject_nonempty (loads of head, then tail), then
     * wq_deque_stealable (loads of top, then split). Each queue's check is
     * one atomic step: head and top only grow, and head <= tail, so an
     * "empty" answer from the two loads (h == tail, top >= split) is exact
     * at the second load; only spurious "non-empty" answers are left out,
     * and those just keep a worker awake. */
    found = (inj_head != inj_tail);
    if
    :: atomic { !found -> found = (top < split) }
    :: else -> skip
    fi;
    if
    :: atomic {
        !found ->
        /* futex_wait(&epoch, e): the kernel compares and queues atomically.
         * The code clears pass when futex_wait returns; pass is local and
         * read only later, so it is cleared here. */
        if :: !changed[me] -> waiting[me] = true :: else -> skip fi;
        pass = false
       }
        /* Back from futex_wait (a return only its own thread can see, so
         * it is taken in the same step as the decrement). */
end_asleep:
        atomic { !waiting[me] -> sleepers--; reading[me] = false; changed[me] = false }
    :: atomic { found -> sleepers--; reading[me] = false; changed[me] = false; found = false }
    fi;
#ifndef MUTANT_NO_EXIT_EXCHANGE
    /* exchange(waking, 0) on the way out */
    atomic { if :: waking == PASS -> pass = true :: else -> skip fi; waking = 0; goto loop }
#else
    goto loop;
#endif

owe:
    /* ws_worker_loop, on finding work with pass set: pass = false, then
     * ws_pass_wake: fetch_add(sleepers, 0), seq_cst; if anyone sleeps,
     * ws_wake_once(1, PASS). */
#ifdef MUTANT_NO_PASS
    atomic { pass = false; run_item() }
#else
    atomic { pass = false; r_sl = (sleepers > 0) }
    if
#ifdef MUTANT_PASS_AS_SENT
    :: atomic { r_sl -> wake_once(SENT) }
#else
    :: atomic { r_sl -> wake_once(PASS) }
#endif
        if :: snd -> ws_wake(1) :: else -> skip fi
    :: else -> skip
    fi;
    atomic { run_item() }
#endif

end_long_task:
    false    /* in a long task (run_item): never looks for work again */
}

/* ---- the store buffer drains at any time ------------------------------- */
active proctype Flusher()
{
end_idle:
    do
    :: atomic { sb_full -> split = sb_val; sb_full = false }
    :: atomic { inj_sb -> inj_ready++; inj_sb = false }
    od
}

/* ---- the property ------------------------------------------------------ */
#if NT == 1
#define ANY_ASLEEP (waiting[0])
#elif NT == 2
#define ANY_ASLEEP (waiting[0] || waiting[1])
#else
#define ANY_ASLEEP (waiting[0] || waiting[1] || waiting[2])
#endif
active proctype monitor()
{
    timeout ->
    /* Every thief is asleep or in its long task, the producer is done, the
     * owner is in its long task. If a thief is asleep, nothing may be
     * visible (stealable, or in the injection queue): it waits for a task
     * that could run. (With every thief in a long task a visible item waits
     * for the first one to finish: no wake-up is owed.) */
    assert(!ANY_ASLEEP || (!(top < split) && inj_head == inj_tail));
    /* The model's own bookkeeping: every item was run or is still queued. */
    assert(done + (bottom - top) + (inj_tail - inj_head) == pushed + injected)
}
