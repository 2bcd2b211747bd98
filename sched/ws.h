/*
 * sched/ws.h — the scheduler's private interface: pools, workers, flows,
 * task items, parking. docs/scheduler.md explains the design.
 */
#ifndef WEFT_SCHED_WS_H
#define WEFT_SCHED_WS_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "weft.h"
#include "ctx/wctx.h"
#include "queue/wq_batch.h"
#include "queue/wq_deque.h"
#include "queue/wq_inject.h"
#include "queue/wq_ring.h"

#define WS_TLS __attribute__((tls_model("initial-exec")))
#define WS_LIKELY(x) __builtin_expect(!!(x), 1)
#define WS_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Worker stacks are large by default (committed lazily); a waiting worker
 * steals only while less than half is in use, so nested stolen work cannot
 * overflow it. weft_pool_config.stack_size may ask for another size. */
#define WS_WORKER_STACK ((size_t)16 << 20)

/* A worker looks at the injection queue before its deque peers once in this
 * many searches for work (Go and Tokio use 61), so external submissions
 * start while every worker finds work to steal. */
#define WS_INJECT_TICK 61

/* The injection queue's blocks hold 2^8 items (about 9 KiB a block). */
#define WS_INJECT_LOG2_BLOCK 8

/* Submission rings a pool may lease to external openers (one bit each in
 * rings_leased): each WQ_RING_CAP items, allocated on first lease, freed
 * with the pool. */
#define WS_RINGS 64

/* ---- task items (four words in the deque and the injection queue) ------ */
/* w[0] fn, w[1] arg, w[2] flow or join frame | kind | WS_PINNED,
 * w[3] ctx | WS_CTX_REF (not written when WS_PINNED) */
enum {
    WS_LOCAL = 0,  /* counted in the flow owner's plain local_pending */
    WS_REMOTE = 1, /* counted in the flow's atomic state at spawn */
    WS_JOIN = 2,   /* the offered half of weft_join; w[2] is a ws_join_frame */
    WS_DONE = 3,   /* not queued: ws_find_work's answer "run the dones of the
                    * async-closed flows listed from w[2]" (close_async.c) */
    WS_KIND_MASK = 3,
    WS_PINNED = 4, /* a flow's task whose context is the flow's ctx_pin */
    WS_ITEM_BITS = 7,
};
#define WS_CTX_REF ((uintptr_t)1) /* the task holds a reference on its ctx */

/* ---- parking ----------------------------------------------------------- */
typedef struct ws_park {
    _Alignas(WQ_CACHELINE) _Atomic(uint32_t) epoch; /* futex word */
    _Atomic(uint32_t) sleepers;
    /* A wake-up on its way (WS_WAKE_*): a notifier that finds one sent
     * does not send another (sched/park.c, docs/scheduler.md). */
    _Atomic(uint32_t) waking;
} ws_park;
/* waking: 0, none; SENT, a notifier woke and no worker has entered or
 * left ws_park_wait since; PASS, as SENT, but the worker that takes the
 * token passes a wake-up on when it finds work (ws_pass_wake): a notifier
 * skipped its own wake-up meanwhile, or the wake-up was itself a pass. */
enum { WS_WAKE_SENT = 1, WS_WAKE_PASS = 3 };

/* ---- per-worker counters (weft_stats; sched/stats.c) --------------------
 * Written by the worker alone with relaxed loads and stores (no RMW), on
 * lines of its own; read by weft_pool_stats from any thread. */
typedef struct ws_stats {
    _Alignas(WQ_CACHELINE) _Atomic(uint64_t) tasks_run;
    _Atomic(uint64_t) tasks_spawned;
    _Atomic(uint64_t) tasks_skipped;
    _Atomic(uint64_t) steals;
    _Atomic(uint64_t) steal_attempts;
    _Atomic(uint64_t) injected;
    _Atomic(uint64_t) publishes;
    _Atomic(uint64_t) parks;
    _Atomic(uint64_t) wakeups;
    _Atomic(uint64_t) parked_ns;
    _Atomic(uint64_t) spin_ns;
    _Atomic(uint64_t) max_deque; /* the owner's copy: deque.user_depth */
    _Atomic(uint64_t) rescued;
} ws_stats;

struct ws_trace_buf;

/* ---- workers and pools ------------------------------------------------- */
typedef struct ws_worker {
    wq_deque          deque;
    struct weft_pool *pool;
    unsigned          index;
    uint64_t          rng;
    uintptr_t         nest_limit; /* stealing while waiting stops below this sp */
    _Atomic(uint32_t) *sleepers;  /* &pool->park.sleepers, one load closer */
    unsigned          inject_tick; /* searches left until the injection queue goes first */
    unsigned          ring_next;   /* the leased ring its next search looks at first */
    unsigned          ring_streak; /* batches in a row taken from ring_next */
    /* Leaving a ring to fill (sched/pool.c ws_rings_take): each ring's tail
     * at our last look (0: none since a sleep), when the deferring began,
     * and when to look again (ws_now_ns; 0: at once). */
    uint64_t          ring_seen[WS_RINGS];
    uint64_t          ring_defer_since;
    uint64_t          ring_look_at;
    /* A batch taken from a ring or the injection queue, with other workers
     * around (sched/pool.c ws_inject_take): run from here one by one,
     * rescued by a peer when we are stuck in a long task (queue/wq_batch.h).
     * The rescuer's watch: the peer whose batch it saw (index + 1; 0: none),
     * that batch's next then, and since when. */
    wq_batch          batch;
    unsigned          rescue_peer;
    uint64_t          rescue_next;
    uint64_t          rescue_since;
    /* Batched completions (sched/done.c), the worker's alone: done_n counts
     * (2 a task) of done_flow's tasks not yet taken out of its state. */
    struct weft_flow_rec_ *done_flow; /* a ws_flow */
    int64_t           done_n;
    bool              others;     /* the pool has other workers (thieves) */
    bool              with_ctx;   /* the pool carries context snapshots */
    bool              probed;     /* inline paths sent to the library (observe.h) */
    pthread_t         thread;
    /* The trace buffer this worker records into, or NULL (sched/trace.c):
     * set by weft_trace_start/stop (release/relaxed), read by the worker. */
    _Atomic(struct ws_trace_buf *) trace;
    ws_stats          stats;
} ws_worker;

struct weft_pool {
    unsigned    nworkers;
    unsigned    flags;
    size_t      stack_size; /* of each worker */
    uint64_t    fork_gen; /* ws_fork_gen at creation; differs in a fork child */
    ws_worker **workers;
    bool        is_default;
    char        name[16];
    unsigned    seq;        /* creation order in the process, from 0 */
    void (*on_worker_start)(weft_pool *pool, unsigned worker, void *arg);
    void (*on_worker_stop)(weft_pool *pool, unsigned worker, void *arg);
    void       *worker_arg;
    struct ws_trace_session *tracing; /* the trace session, or NULL (sched/trace.c) */
    struct ws_trace_buf *trace_retired; /* ended sessions' buffers, freed at destroy */
    _Atomic(int) trace_busy;  /* a start or stop is running */

    ws_park park;

    /* Advanced by every cancel of a flow of this pool (and of no other);
     * flows of this pool cache their cancellation answer against it. */
    _Alignas(WQ_CACHELINE) _Atomic(uint64_t) cancel_epoch;

    /* Flows opened by threads that are not this pool's workers. Flows opened
     * by its workers live inside those, so this alone says "busy". */
    _Alignas(WQ_CACHELINE) _Atomic(int64_t) ext_open;
    _Atomic(int) closing;  /* a destroy has claimed the pool (may back off) */
    _Atomic(int) stopping; /* workers: exit when idle (final) */

    wq_inject inject;

    /* Submission rings (docs/inject.md, "Submission rings"). Bit i of
     * rings_leased: ring i is leased to an external flow, which may have
     * items in it; a clear bit's ring is empty. Set with a seq_cst CAS at
     * flow open (ws_ring_lease), cleared with a release RMW at its finish
     * (ws_flow_ring_return),
     * read by every search that finds nothing on the deques. rings[i]:
     * allocated by the first lessee of bit i, never freed before the pool. */
    _Alignas(WQ_CACHELINE) _Atomic(uint64_t) rings_leased;
    _Atomic(wq_ring *) rings[WS_RINGS];

    /* Async-closed flows whose count reached zero where their done could
     * not run (off the pool's workers, or in the weft_flow_close_async call
     * itself): a stack linked through done_next, pushed by any thread,
     * taken whole by a worker (sched/close_async.c). */
    _Alignas(WQ_CACHELINE) _Atomic(struct weft_flow_rec_ *) async_done;
    /* dones running now, and defers between their push and their last
     * touch (each still holds ext_open): a destroy that finds only those
     * waits for them a little, so that the thread a done signalled can
     * destroy the pool (sched/pool.c). Its own line: written twice per
     * done, while every search loads async_done. */
    _Alignas(WQ_CACHELINE) _Atomic(unsigned) dones_running;
};

/* ---- flows ------------------------------------------------------------- */
/* magic: OPEN; CLOSING (weft_flow_close waits); ASYNC (weft_flow_close_async
 * was called: open until its done has run); CLOSED. */
enum {
    WS_FLOW_OPEN = 0x464c4f57u,
    WS_FLOW_CLOSING = 0x434c4f53u,
    WS_FLOW_ASYNC = 0x4153594eu,
    WS_FLOW_CLOSED = 0x44454144u,
};
enum { WS_FLOW_PIN_OWNED = 1u, WS_FLOW_NO_CTX = 2u };

/* The layout keeps what other threads touch per task off the lines the
 * flow may share with its neighbours, and off the line of what its opener
 * writes per spawn: a weft_flow is 16-byte aligned and 192 bytes, so at
 * any of the four 16-byte offsets in a line,
 *   - bytes 48..127 lie on lines that hold nothing outside the flow
 *     (perf: a worker's load of flags missed on every task, 63% of its run
 *     time, when the flow's first line held the opener's stack too);
 *   - bytes 176..191 never share a line with bytes 48..127 (they may share
 *     one with what follows the flow: its opener's own frame).
 * Bytes 48..127: what the workers read for every task, and the count they
 * decrement. 176..191: the opening thread's per-spawn count and its base or
 * ring. 0..47: touched at open and close only (docs/scheduler.md, "Where
 * the flow's fields sit"). */
typedef struct weft_flow_rec_ {
    /* Bytes 0..47: open and close. */
    const void       *opener;  /* ws_thread_token() of the opening thread;
                                * set only when owner is NULL */
    /* weft_flow_close_async: written by its caller before the release RMW
     * that adds WS_ASYNC to state, read by whoever takes the count to zero
     * after an acquire load of state (sched/close_async.c). */
    weft_done_fn      done;
    void             *done_arg;
    struct weft_ctx  *done_ctx;  /* the caller's context, retained */
    struct weft_flow_rec_ *done_next; /* in the pool's async_done stack */
    uint64_t          unused0_;

    /* Bytes 48..127: written at open, then read by every thread that runs
     * or spawns a task of the flow; the count; the cancel state. */
    _Atomic(uint32_t) magic;
    uint32_t          flags;
    struct weft_pool *pool;
    ws_worker        *owner;  /* the pool's worker that opened it, or NULL */
    struct weft_ctx  *ctx_pin; /* lives until close: spawns with it borrow */
    /* (outstanding tasks << 1) | WS_WAITER, plus WS_ASYNC or WS_SEALED
     * (below). The closer sleeps on its low 32 bits; a task's last touch
     * of the flow is its decrement. */
    _Atomic(int64_t) state;
    _Atomic(int)      error;
    _Atomic(int)      canceled;     /* WS_CANCEL_*; state..canceled are zeroed at open as one */
    _Atomic(uint64_t) cancel_cache; /* (*epoch << 1) | canceled-up-the-chain */
    /* The epoch that cancel_cache follows: the pool's, or, when the chain
     * of parents crosses pools, the process-wide ws_cancel_epoch. */
    _Atomic(uint64_t) *epoch;
    struct weft_flow_rec_ *parent; /* flow of the task that opened it */
    uint64_t          unused1_[7];

    /* Bytes 176..191: the opening thread's. */
    int64_t           local_pending; /* written by the opening thread only */
    union {
        int64_t       base;    /* owner's deque bottom at open (owner set) */
        wq_ring      *ring;    /* the ring leased at open, or NULL (owner NULL) */
    };
} ws_flow;
_Static_assert(offsetof(ws_flow, magic) == 48 && offsetof(ws_flow, parent) + 8 <= 128 &&
                   offsetof(ws_flow, local_pending) == 176 && sizeof(ws_flow) == 192,
               "the flow's three regions (see above)");

/* canceled: set (its epochs may not have advanced yet), then done (they
 * have: every thread that synchronizes with the canceler sees it). */
enum { WS_CANCEL_SET = 1, WS_CANCEL_DONE = 2 };

#define WS_WAITER ((int64_t)1)
/* In state once weft_flow_close_async has handed the count over: no count
 * reaches this bit, nobody sleeps on such a flow, and no spawn adds to a
 * zero count (ws_flow_count_in), so state == WS_ASYNC says "all done, run
 * done" to the one whose RMW made it so. */
#define WS_ASYNC ((int64_t)1 << 62)
/* In state once the synchronous close of a flow without owner saw the
 * count at zero (ws_flow_seal, a fetch_or, after the hand-over: the count
 * never goes below zero after it); a spawn from outside the flow's tasks
 * that finds it is refused and writes nothing (ws_flow_count_in), so the
 * close's "all done" stays true. Never set with WS_ASYNC. Only the next
 * open clears it. docs/scheduler.md, "A spawn racing the close". */
#define WS_SEALED ((int64_t)1 << 61)

/* Whether state s is sealed. An open flow's count may be negative (its
 * opener's tasks counted down before the close hands its count over), and
 * a negative count has every high bit set; a sealed count never is. */
static inline bool ws_state_sealed(int64_t s)
{
    return s > 0 && (s & WS_SEALED);
}

_Static_assert(sizeof(ws_flow) <= sizeof(weft_flow), "weft_flow too small");
_Static_assert(_Alignof(ws_flow) <= _Alignof(weft_flow), "weft_flow underaligned");

_Static_assert(_Alignof(weft_flow) > WS_ITEM_BITS, "no room for the item bits");

/* The library's view of include/weft_inline.h's struct weft_frame_ (the
 * inline join builds it; done is atomic here). */
typedef struct ws_join_frame {
    _Atomic(uint32_t) done; /* bit 0 done, bit 1 a waiter sleeps */
    int               result;
    ws_flow          *flow;     /* the joiner's current flow */
} ws_join_frame;

/* The layouts include/weft_inline.h compiles into programs. */
#define WS_SAME_OFFSET(a, fa, b, fb) \
    _Static_assert(offsetof(a, fa) == offsetof(b, fb), #fa " moved")
#define WS_OWNER_OFF(f) (offsetof(wq_deque, f) - offsetof(wq_deque, bottom))
_Static_assert(WS_OWNER_OFF(split_own) == offsetof(struct weft_owner_, split_own), "owner line");
_Static_assert(WS_OWNER_OFF(top_seen) == offsetof(struct weft_owner_, top_seen), "owner line");
_Static_assert(WS_OWNER_OFF(arr) == offsetof(struct weft_owner_, arr), "owner line");
_Static_assert(WS_OWNER_OFF(hint) == offsetof(struct weft_owner_, hint), "owner line");
_Static_assert(WS_OWNER_OFF(user_mode) == offsetof(struct weft_owner_, mode), "owner line");
_Static_assert(WS_OWNER_OFF(user_count) == offsetof(struct weft_owner_, joins), "owner line");
_Static_assert(WS_OWNER_OFF(user_spawns) == offsetof(struct weft_owner_, spawns), "owner line");
_Static_assert(WS_OWNER_OFF(user_runs) == offsetof(struct weft_owner_, runs), "owner line");
_Static_assert(WS_OWNER_OFF(user_open) == offsetof(struct weft_owner_, open), "owner line");
_Static_assert(WS_OWNER_OFF(user_depth) == offsetof(struct weft_owner_, depth), "owner line");
_Static_assert(sizeof(struct weft_flowv_) == sizeof(ws_flow), "the inline view's size");
WS_SAME_OFFSET(ws_flow, magic, struct weft_flowv_, magic);
WS_SAME_OFFSET(ws_flow, flags, struct weft_flowv_, flags);
WS_SAME_OFFSET(ws_flow, owner, struct weft_flowv_, owner);
WS_SAME_OFFSET(ws_flow, pool, struct weft_flowv_, pool);
WS_SAME_OFFSET(ws_flow, parent, struct weft_flowv_, parent);
WS_SAME_OFFSET(ws_flow, error, struct weft_flowv_, error);
WS_SAME_OFFSET(ws_flow, canceled, struct weft_flowv_, canceled);
WS_SAME_OFFSET(ws_flow, ctx_pin, struct weft_flowv_, pin);
WS_SAME_OFFSET(ws_flow, base, struct weft_flowv_, base);
WS_SAME_OFFSET(ws_flow, local_pending, struct weft_flowv_, local_pending);
WS_SAME_OFFSET(ws_flow, state, struct weft_flowv_, state);
WS_SAME_OFFSET(ws_flow, cancel_cache, struct weft_flowv_, cancel_cache);
WS_SAME_OFFSET(ws_flow, epoch, struct weft_flowv_, epoch);
/* The inline open stores these in pairs of words (weft_pair_). */
#define WS_PAIR(a, b) \
    _Static_assert(offsetof(ws_flow, a) % 16 == 0 && offsetof(ws_flow, b) == offsetof(ws_flow, a) + 8, \
                   #a " and " #b " are no pair")
WS_PAIR(magic, pool);
WS_PAIR(owner, ctx_pin);
WS_PAIR(state, error);
WS_PAIR(cancel_cache, epoch);
WS_PAIR(local_pending, base);
_Static_assert(offsetof(ws_flow, flags) == offsetof(ws_flow, magic) + 4 &&
                   offsetof(ws_flow, canceled) == offsetof(ws_flow, error) + 4 &&
                   offsetof(ws_flow, error) + 8 == offsetof(ws_flow, cancel_cache),
               "flags and canceled fill their pair's word");
_Static_assert(WS_FLOW_OPEN == WEFT_FLOW_OPEN_ && WS_FLOW_CLOSING == WEFT_FLOW_CLOSING_ &&
                   WS_FLOW_CLOSED == WEFT_FLOW_CLOSED_, "flow magic");
_Static_assert(WS_FLOW_NO_CTX == WEFT_FLOW_NO_CTX_ && WS_FLOW_PIN_OWNED == WEFT_FLOW_PIN_OWNED_,
               "flow flags");
_Static_assert(WS_LOCAL == 0 && WS_PINNED == WEFT_ITEM_PINNED_, "item tag");
_Static_assert(WQ_HINT_SPLIT == WEFT_HINT_SPLIT_, "hint bit");
_Static_assert(offsetof(wq_array, slots) == sizeof(struct weft_arr_), "slots");
_Static_assert(sizeof(wq_slot) == 4 * sizeof(uintptr_t), "slot");
WS_SAME_OFFSET(ws_join_frame, done, struct weft_frame_, done);
WS_SAME_OFFSET(ws_join_frame, result, struct weft_frame_, result);
WS_SAME_OFFSET(ws_join_frame, flow, struct weft_frame_, flow);
WS_SAME_OFFSET(wctx_scope, owned, struct weft_scope_, owned);
_Static_assert(WS_JOIN == 2, "the inline join tags its frame with 2");

/* The inline join's mode word (deque.user_mode): set bits send joins to
 * the library. */
_Static_assert(WEFT_MODE_NO_CTX_ != WEFT_MODE_SLOW_ && WEFT_MODE_PROBED_ != WEFT_MODE_SLOW_ &&
                   WEFT_MODE_PROBED_ != WEFT_MODE_NO_CTX_,
               "mode bits");

/* ---- thread state ------------------------------------------------------ */
extern _Thread_local ws_worker *ws_self WS_TLS;
/* The current flow: a field of the public per-thread struct, which the
 * inline join reads (include/weft_inline.h). */
#define ws_cur_flow (weft_thread_.flow)
extern _Atomic(uint64_t) ws_cancel_epoch; /* for flows whose chain crosses pools */
extern uint64_t ws_fork_gen;
extern _Thread_local char ws_token WS_TLS;
/* Set by this thread's futex wake of a parked worker (sched/park.c
 * ws_wake); read and cleared by this thread's wait in a close when it is no
 * worker (sched/flow.c ws_flow_wait), which then yields instead of pausing
 * while it spins. The thread's own: no ordering. */
extern _Thread_local bool ws_woke WS_TLS;

/* A unique address per live thread. */
static inline const void *ws_thread_token(void)
{
    return &ws_token;
}

/* ---- test hooks -------------------------------------------------------
 * Tests that must force an interleaving set ws_test_hook before creating
 * any pool (it is a plain pointer: thread creation orders the write before
 * every worker's reads); it is then called at the points below, on the
 * thread that reaches them, with the flow concerned. NULL otherwise: one
 * load and an untaken branch, on cold paths only. */
enum {
    WS_HOOK_CANCEL_SET,    /* ws_flow_cancel: flag set, epochs not yet advanced */
    WS_HOOK_REMOTE_PUSHED, /* a REMOTE spawn's item is in the injection queue,
                            * before its notify */
    WS_HOOK_SPAWN_OUTSIDE, /* a spawn from outside the flow's tasks read it
                            * open, before it counts (ws_flow_count_in) */
};
extern void (*ws_test_hook)(int point, ws_flow *f);

static inline void ws_hook(int point, ws_flow *f)
{
    void (*h)(int, ws_flow *) = ws_test_hook;
    if (WS_UNLIKELY(h != NULL))
        h(point, f);
}

/* ---- functions shared between sched/ files ----------------------------- */
/* Any thread that holds n counts of f (n/2 tasks): gives them back with a
 * release RMW, wakes a sleeping closer if that was the last, and completes
 * an async-closed f (ws_flow_async_complete). The caller's last access to
 * f. */
void ws_flow_uncount(ws_flow *f, int64_t n);

/* ---- batched completion counts (sched/done.c) ---------------------------
 * The worker w only. ws_done_follow: before its loop runs item it at top
 * level (the item holds its flow open). ws_done_flush: when a search found
 * nothing, and before the loop ends. ws_task_done: ws_run's (or a
 * streak's) completion of a task of f that is not the owner's own. */
void ws_done_flush(ws_worker *w);
void ws_done_follow_slow(ws_worker *w, ws_flow *f);

/* See sched/done.c. */
static inline void ws_task_done(ws_worker *w, ws_flow *f)
{
    if (f == w->done_flow)
        w->done_n += 2;
    else
        ws_flow_uncount(f, 2);
}

static inline void ws_done_follow(ws_worker *w, const wq_item *it)
{
    /* A join half, or a list of async dones (whose flows are finished and
     * may be freed by their done: never one to batch for), follows none. */
    ws_flow *f = (it->w[2] & WS_KIND_MASK) >= WS_JOIN
                     ? NULL
                     : (ws_flow *)(it->w[2] & ~(uintptr_t)WS_ITEM_BITS);
    if (f != w->done_flow)
        ws_done_follow_slow(w, f);
}
void ws_run(ws_worker *w, const wq_item *it, bool popped);
/* The worker loop of w only, at its top level (no task of w running), for
 * an item it just took (*popped: off its own deque), after ws_done_follow
 * and ws_probes_poll. Runs it as ws_run would, and, if it is a task
 * counted in its flow's state with a borrowed context, goes on with the
 * items the loop would take next (own deque, then its batch) while they
 * are tasks of the same flow and context: one scope, one current-flow
 * switch and no loop round per task. Each task still gets its own cancel
 * check, probes, trace events, counts and fork check. Returns true when
 * it took an item of another flow or context, left in *it (with *popped)
 * for the loop to run the same way; false when it ran all it took. Orders
 * and wakes as ws_run. */
bool ws_run_streak(ws_worker *w, wq_item *it, bool *popped);
bool ws_find_work(ws_worker *w, wq_item *out);     /* steal or inject pop */
bool ws_help(ws_worker *w);                        /* run one found task */
/* Worker w of p (its worker loop): sleeps if nothing is visible. pass:
 * the worker still owes a ws_pass_wake from its last call. Returns whether
 * it owes one now: it took a PASS token (sched/park.c) that its recheck
 * did not answer by sleeping, so it calls ws_pass_wake when it next finds
 * work. Wakes nobody itself. */
bool ws_park_wait(struct weft_pool *p, ws_worker *w, bool pass);
/* Any thread; no ordering. CLOCK_MONOTONIC (vDSO), and the process's CPU
 * time (a system call: for the rare caller); 0 where the clock fails. */
uint64_t ws_now_ns(void);
uint64_t ws_process_cpu_ns(void);
bool ws_pool_usable(const struct weft_pool *p);
/* Called where a worker returns into the scheduler from a task: exits a
 * fork child that got here (sched/pool.c, ws_forked_exit). */
__attribute__((noreturn, cold)) void ws_forked_exit(void);
static inline void ws_check_forked(const ws_worker *w)
{
    if (WS_UNLIKELY(ws_self != w))
        ws_forked_exit();
}
bool ws_flow_is_canceled(ws_flow *f);
bool ws_flow_encloses_caller(const ws_flow *f);    /* closing f here waits for itself */
int  ws_flow_result(ws_flow *f); /* what its close returns: error, ECANCELED or 0 */

/* ---- weft_flow_close_async (sched/close_async.c) ----------------------- */

/* Whoever took an async-closed flow's state to exactly WS_ASYNC (its last
 * task's completion, a spawner's own count), with no access to f before:
 * runs f's done here if this thread is a worker of f's pool, else hands f
 * to one (ws_flow_async_defer). A zero count of such a flow is final: no
 * spawn adds to it (ws_flow_count_in). */
void ws_flow_async_complete(ws_flow *f);

/* Any thread, for an async-closed flow whose count is zero and that nobody
 * else touches: pushes f on its pool's async_done stack (seq_cst CAS) and
 * notifies a sleeper; holds the pool (ext_open) across the notify, since
 * a worker may run done at once, after which the pool may be destroyed. */
void ws_flow_async_defer(ws_flow *f);

/* A worker of the pool, for the stack taken from async_done (ws_find_work's
 * WS_DONE answer): runs each flow's done. */
void ws_flow_async_run_list(ws_flow *list);
int  ws_futex_wait(_Atomic(uint32_t) *addr, uint32_t expected, long timeout_ns);
void ws_futex_wake(void *addr, int n);
unsigned ws_default_workers(void);
struct weft_pool *ws_default_pool(int *err); /* NULL: *err says why */
unsigned ws_cpu_quota(const char *cpu_max_path);   /* 0: no quota */

/* ---- submission rings (sched/pool.c) -----------------------------------
 * ws_ring_lease: the external thread opening a flow on p (ws_flow_open_slow),
 * once per open: a ring of p for it alone to push into, or NULL (all 64
 * leased, or no memory: the flow uses the injection queue). The bit is set
 * with a seq_cst CAS (acquire: the previous lessee's pushes and the
 * consumers' head CASes it saw come before ours; seq_cst: a parking
 * worker's recheck that follows our first push's notify sees the bit).
 * Wakes nobody.
 * ws_flow_ring_return: whoever finishes a flow without owner, after its
 * count read zero with acquire (every task ran, so every item of the ring
 * was taken, and the opener's pushes happened before): if f leased a ring,
 * clears its bit with a release RMW, which the next lessee's CAS pairs
 * with. Wakes nobody.
 * ws_rings_nonempty: a worker of p in ws_park_wait's recheck, after its
 * seq_cst announce: seq_cst loads of the mask, the ring pointers, head and
 * tail (pairs with the pushes' seq_cst fetch-add and the lease's CAS; on
 * light rings the parker's membarrier does: sched/asym.c).
 * Wakes nobody. (The workers' takes are sched/pool.c's ws_rings_take.) */
wq_ring *ws_ring_lease(struct weft_pool *p);

/* Any thread that may read f's fields: the ring f leased at open, or NULL
 * (an owner's flow keeps its base in that word instead). */
static inline wq_ring *ws_flow_ring(const ws_flow *f)
{
    return f->owner ? NULL : f->ring;
}

/* The closer of f (its opener, or a thread that synchronized with it after
 * its last spawn), as it hands f's local count over: the opener counts its
 * ring pushes not in local_pending (a write per spawn there, when it shared
 * a line with what every worker reads per task, made each task's reads
 * miss) but as the ring's tail moving on; this adds them to local_pending
 * (tail - mark: the pushes since the last count; a spill into the
 * injection queue is counted in local_pending itself). A relaxed load:
 * tail's only writer is the opener. For an
 * external flow only (owner NULL: ring is valid). Wakes nobody. */
static inline void ws_flow_ring_count(ws_flow *f)
{
    wq_ring *r = ws_flow_ring(f);
    if (r) {
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        f->local_pending += (int64_t)(t - r->mark);
        r->mark = t;
    }
}
void ws_flow_ring_return(ws_flow *f);
bool ws_rings_nonempty(struct weft_pool *p);

/* ---- publishing and waking (sched/park.c) ------------------------------
 * The rule that keeps "no idle core while work is stealable": every store
 * that makes work stealable is followed by a seq_cst read of sleepers (a
 * light ring's push: a plain one, the parker paying for both), and
 * a wake-up if it is nonzero. docs/scheduler.md pairs each path. */

/* Any thread, after a store that made n items visible to p's workers: reads
 * sleepers with a seq_cst RMW (pairs with ws_park_wait's announce) and, if
 * anyone sleeps, wakes up to n of them. */
void ws_notify(struct weft_pool *p, int n);

/* ws_notify for a caller whose publishing store was itself a seq_cst RMW
 * (the injection queue's push): a seq_cst load is enough. */
void ws_notify_after_rmw(struct weft_pool *p, int n);

/* ws_notify for a ring's producer whose push was light (a release store of
 * tail; the ring's light flag, set only while ws_asym_on): a compiler
 * barrier and a relaxed load of sleepers, inline (it follows every ring
 * push), and the wake-up out of line (sched/park.c). The parker's
 * ws_asym_heavy is both halves' full barrier (sched/asym.c): see
 * ws_notify_light_wake for the pairing. */
void ws_notify_light_wake(struct weft_pool *p, int n);
static inline void ws_notify_light(struct weft_pool *p, int n)
{
    atomic_signal_fence(memory_order_seq_cst);
    if (WS_UNLIKELY(atomic_load_explicit(&p->park.sleepers, memory_order_relaxed)))
        ws_notify_light_wake(p, n);
}

/* A worker that left ws_park_wait with a PASS token (it returned true),
 * once it has found work: if anyone sleeps (a seq_cst RMW of sleepers, as
 * ws_notify), sends one wake-up marked PASS, so that its receiver passes
 * one on in turn; the chain ends at a worker that finds nothing and parks
 * (its recheck answers for every skipped notifier) or when nobody sleeps. */
void ws_pass_wake(struct weft_pool *p);

/* ---- the asymmetric fence (sched/asym.c) -------------------------------
 * ws_asym_init: weft_pool_create, before the pool's workers start:
 * registers the process for expedited membarrier, once (again after a
 * fork: ws_asym_forget, from the atfork child handler). Release store of
 * the answer. Wakes nobody.
 * ws_asym_on: any thread of a created pool: whether ring pushes are light
 * (acquire load of the answer; it does not change while the pool lives).
 * ws_asym_heavy: when ws_asym_on, a parking worker between its announce
 * and its recheck, or a rescuer between its store of a batch's rescue and
 * its load of next (wq_batch_rescue): membarrier(PRIVATE_EXPEDITED), a full
 * barrier in every running thread of the process. false if the kernel
 * refused it (a parker then must not sleep without a timeout; a rescuer
 * takes nothing). Wakes nobody. */
void ws_asym_init(void);
bool ws_asym_on(void);
bool ws_asym_heavy(void);
void ws_asym_forget(void);

/* The owner of w only: publishes half of its private items (all when all
 * is true), clears WQ_HINT_SPLIT, and notifies as many sleepers as it
 * published items. No effect but the clear when nothing is private. */
void ws_publish(ws_worker *w, bool all);

static inline void ws_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* The owner of w, after a push onto its own deque: whether there is more to
 * do than the push. One relaxed load of the deque's hint word, on the
 * owner's own line: nonzero when a thief asked for a publish
 * (WQ_HINT_SPLIT), or, with other workers around, the shared part may be
 * empty (WQ_HINT_DRAINED: set by the steal that took the last shared item,
 * by the owner's own take of it, and at start), so that the deque's work
 * is made stealable right after the push (until a thief takes it): a
 * worker that pushes and then runs a long task inline (the inline half of
 * a join, say) must not hide all its work until its next deque operation.
 * This rarely fires in warm fork-join (the shared item is the oldest, deep
 * in the recursion), never on one worker. Or (WS_HINT_SLEEP) some worker
 * may sleep: set on every other worker by ws_park_wait before its recheck,
 * cleared by the owner when sleepers reads zero. ws_after_push_slow
 * publishes (all of the private part while some worker sleeps), and every
 * publish notifies. */
enum { WS_HINT_SLEEP = 4u }; /* hint bit: some worker of the pool may sleep */

static inline bool ws_push_needs_more(ws_worker *w)
{
    return wq_deque_hint(&w->deque) != 0;
}

void ws_after_push_slow(ws_worker *w);

static inline void ws_after_push(ws_worker *w)
{
    if (WS_UNLIKELY(ws_push_needs_more(w)))
        ws_after_push_slow(w);
}

/* The owner of w: its take found the private part empty (out of line). */
bool ws_take_shared(ws_worker *w, wq_item *out);

/* The owner of w: takes its newest item, after honoring a thief's publish
 * request (with a notify: the thief may have gone to sleep since). */
static inline bool ws_take(ws_worker *w, wq_item *out)
{
    if (WS_UNLIKELY(wq_deque_split_wanted(&w->deque)))
        ws_publish(w, false);
    wq_slot *s = wq_deque_take_private(&w->deque);
    if (WS_LIKELY(s != NULL)) {
        wq_slot_load_(s, out);
        return true;
    }
    return ws_take_shared(w, out);
}

/* false when f is surely not canceled: nothing that f's epoch follows was
 * canceled since its answer "not canceled" was cached (acquire pairs with
 * the release increments in ws_flow_cancel); true means "look closer". */
static inline bool ws_flow_maybe_canceled(ws_flow *f)
{
    uint64_t e = atomic_load_explicit(f->epoch, memory_order_acquire);
    return atomic_load_explicit(&f->cancel_cache, memory_order_relaxed) != e << 1;
}

/* The common answer inline, else the walk. */
static inline bool ws_flow_canceled_fast(ws_flow *f)
{
    if (WS_LIKELY(!ws_flow_maybe_canceled(f)))
        return false;
    return ws_flow_is_canceled(f);
}

/* The worker w itself: counts a flow it opened (+1) or closed (-1). */
static inline void ws_count_open(ws_worker *w, int64_t d)
{
    /* Relaxed load and store, no RMW: only w writes it. weft_pool_destroy
     * reads it after synchronizing with the close of the external flow
     * that every task of the pool ran under. */
    int64_t n = atomic_load_explicit(&w->deque.user_open, memory_order_relaxed);
    atomic_store_explicit(&w->deque.user_open, n + d, memory_order_relaxed);
}

/* The worker's owner line, as the inline join sees it. */
static inline struct weft_owner_ *ws_owner_line(ws_worker *w)
{
    return (struct weft_owner_ *)(void *)&w->deque.bottom;
}

static inline bool ws_may_nest(const ws_worker *w)
{
    char here;
    return (uintptr_t)&here > w->nest_limit;
}

#endif /* WEFT_SCHED_WS_H */
