/*
 * sched/flow.c — flows (structured task groups with a join barrier), spawn,
 * running a task, cancellation.
 *
 * Counting without shared read-modify-writes. A flow's opener, when it is a
 * worker of the flow's pool (the owner), counts the tasks it spawns in a
 * plain field, local_pending, and pushes them onto its own deque as WS_LOCAL.
 * If it takes one back itself, it decrements local_pending: no atomic at all.
 * If a thief runs one, the thief decrements the atomic state instead, which
 * can go negative. At close the owner drains its deque down to where it was
 * when the flow opened, then moves what is left of local_pending (exactly
 * the stolen ones) into state. A non-worker thread that opened a flow does
 * the same for its own spawns (they go to the injection queue, so all of
 * them count down state). Every other spawn is WS_REMOTE: counted into
 * state at spawn and out at completion. So state + local_pending never
 * undercounts, and when the opener has moved local_pending in, state
 * reaches zero exactly when the last task is done. docs/scheduler.md has the argument.
 *
 * A task's last access to its flow is the decrement; the closer sleeps on
 * the same word, so waking it needs no further access (ws_futex_wake only
 * passes the address).
 */
#include "sched/observe.h"

#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

_Atomic(uint64_t) ws_cancel_epoch = 1;
void (*ws_test_hook)(int point, ws_flow *f);

static inline ws_flow *ws_flow_of(weft_flow *f)
{
    return (ws_flow *)f;
}

static _Atomic(uint32_t) *ws_state_word(ws_flow *f)
{
    /* The low 32 bits of state (little-endian on x86-64 and ARM64 Linux):
     * they change whenever the count does, which is all futex_wait needs. */
    return (_Atomic(uint32_t) *)(void *)&f->state;
}

/* ---- cancellation ------------------------------------------------------ */

bool ws_flow_is_canceled(ws_flow *f)
{
    /* Acquire pairs with the release increments in ws_flow_cancel: whoever
     * sees the new epoch sees the canceled flag stored before it. */
    _Atomic(uint64_t) *ep = f->epoch;
    uint64_t e = atomic_load_explicit(ep, memory_order_acquire);
    uint64_t c = atomic_load_explicit(&f->cancel_cache, memory_order_relaxed);
    if (WS_LIKELY((c >> 1) == e))
        return c & 1;
    /* Some flow was canceled since f's answer was cached: walk up until a
     * flow that is canceled or whose cached answer (against the same epoch
     * word) is current. */
    bool canceled = false;
    ws_flow *stop = NULL;
    for (ws_flow *g = f; g; g = g->parent) {
        if (atomic_load_explicit(&g->canceled, memory_order_relaxed)) {
            canceled = true;
            stop = g->parent;
            break;
        }
        if (g != f && g->epoch == ep) {
            uint64_t gc = atomic_load_explicit(&g->cancel_cache, memory_order_relaxed);
            if ((gc >> 1) == e) {
                canceled = gc & 1;
                stop = g;
                break;
            }
        }
    }
    /* Every flow walked has the same answer (none of them is canceled below
     * the one that decided): cache it in all that follow the same epoch, so
     * that the next check from any of them, or a flow opened below one, is
     * O(1) again. They are all open: f is, and a flow stays open while
     * flows below it are. */
    for (ws_flow *g = f; g != stop; g = g->parent)
        if (g->epoch == ep)
            atomic_store_explicit(&g->cancel_cache, e << 1 | canceled, memory_order_relaxed);
    return canceled;
}

/* Any thread. When it returns, f is canceled for every thread that
 * synchronizes with the caller, also when another thread set the flag
 * first and has not advanced the epochs yet: then we advance them too. */
static void ws_flow_cancel(ws_flow *f)
{
    /* Acquire pairs with the release store of DONE below: we then see the
     * epoch increments made before it, and so does whoever syncs with us. */
    if (atomic_load_explicit(&f->canceled, memory_order_acquire) == WS_CANCEL_DONE)
        return;
    atomic_store_explicit(&f->canceled, WS_CANCEL_SET, memory_order_relaxed);
    ws_hook(WS_HOOK_CANCEL_SET, f);
    /* Release pairs with the acquire load of the epoch in ws_flow_is_canceled
     * and ws_flow_maybe_canceled: it invalidates the cached answers of the
     * flows that follow it. The pool's epoch covers the flows below f on
     * its pool; the process-wide one those whose chain crosses pools (f's
     * own is that one when f's chain crosses: then it is the only one). */
    if (f->epoch != &ws_cancel_epoch)
        atomic_fetch_add_explicit(f->epoch, 1, memory_order_release);
    atomic_fetch_add_explicit(&ws_cancel_epoch, 1, memory_order_release);
    /* Release pairs with the acquire load above in a later cancel. */
    atomic_store_explicit(&f->canceled, WS_CANCEL_DONE, memory_order_release);
}

static bool ws_flow_is_open(ws_flow *f)
{
    uint32_t m = atomic_load_explicit(&f->magic, memory_order_relaxed);
    return m == WS_FLOW_OPEN || m == WS_FLOW_CLOSING || m == WS_FLOW_ASYNC;
}

void weft_flow_cancel(weft_flow *flow)
{
    ws_flow *f = ws_flow_of(flow);
    if (f && ws_flow_is_open(f))
        ws_flow_cancel(f);
}

bool weft_flow_canceled(const weft_flow *flow)
{
    /* The walk reads and writes the parents' caches: only for an open flow,
     * whose parents are open too. */
    ws_flow *f = (ws_flow *)flow;
    return f && ws_flow_is_open(f) && ws_flow_is_canceled(f);
}

weft_flow *weft_current_flow(void)
{
    return (weft_flow *)ws_cur_flow;
}

/* ---- running a task ---------------------------------------------------- */

/* Takes n counts (n/2 tasks) out of f's state and wakes a sleeping closer
 * when that was the last: a task's completion, a spawn undoing or ending
 * its own count, an async-closed child flow letting its parent go. When f
 * was async-closed and this was the last, f's done runs (here, on a worker
 * of f's pool, or queued for one). */
void ws_flow_uncount(ws_flow *f, int64_t n)
{
    /* Release: the caller's effects happen before the closer's acquire load
     * of state that reads zero, or the async completer's (every decrement
     * continues the release sequence). Unless we took an async-closed f to
     * zero, this is our last access to *f. */
    int64_t now = atomic_fetch_sub_explicit(&f->state, n, memory_order_release) - n;
    if (WS_UNLIKELY((now & ~WS_SEALED) == WS_WAITER))
        ws_futex_wake(ws_state_word(f), INT_MAX);
    else if (WS_UNLIKELY(now == WS_ASYNC))
        ws_flow_async_complete(f);
}

/* A spawner's count of n (ws_spawn_slow's REMOTE paths). From inside f (one
 * of its tasks, or below one: that task's own count keeps the count above
 * zero, so no close can have seen zero), a plain fetch_add. From outside,
 * a CAS that refuses, writing nothing, a sealed count (a sync close saw it
 * at zero) or an async-closed flow's zero count (its done may be running:
 * a zero there is final): false. Relaxed: the seal and the decrement to
 * zero are RMWs of the same word, so of each pair one sees the other; the
 * task's effects are ordered by its completion's release. */
static bool ws_flow_count_in(ws_flow *f, int64_t n, bool inside)
{
    if (inside) {
        atomic_fetch_add_explicit(&f->state, n, memory_order_relaxed);
        return true;
    }
    ws_hook(WS_HOOK_SPAWN_OUTSIDE, f);
    int64_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    do
        if (ws_state_sealed(s) || s == WS_ASYNC)
            return false;
    while (!atomic_compare_exchange_weak_explicit(&f->state, &s, s + n, memory_order_relaxed,
                                                  memory_order_relaxed));
    return true;
}

/* Calls a task body in the context it should see: its snapshot in a scope
 * of its own, or, on a NO_CTX pool, the worker thread's own (base) context,
 * also when it is helped from inside a weft_ctx_run on this thread. */
__attribute__((always_inline)) static inline int ws_call(weft_fn fn, void *arg, struct weft_ctx *ctx,
                                                       bool with_ctx)
{
    int r;
    if (with_ctx) {
        wctx_scope s;
        wctx_enter(&s, ctx);
        r = fn(arg);
        wctx_leave(&s);
    } else {
        wctx_scope *outer = wctx_top;
        wctx_top = NULL;
        r = fn(arg);
        wctx_top = outer;
    }
    return r;
}

/* A task of f returned r != 0. */
__attribute__((noinline, cold)) static void ws_flow_fail(ws_flow *f, int r)
{
    int zero = 0;
    /* First error wins; the closer reads it after its acquire load of state,
     * which the task's completion (a release decrement, or the owner's own
     * program order) precedes. */
    atomic_compare_exchange_strong_explicit(&f->error, &zero, r, memory_order_relaxed,
                                            memory_order_relaxed);
    ws_flow_cancel(f);
}

__attribute__((noinline)) static void ws_run_join(ws_worker *w, const wq_item *it)
{
    ws_join_frame *jf = (ws_join_frame *)(it->w[2] & ~(uintptr_t)WS_KIND_MASK);
    weft_fn fn = (weft_fn)it->w[0];
    ws_flow *prev = ws_cur_flow;
    ws_cur_flow = jf->flow;
    ws_task_begin(w, fn, jf);
    int r = ws_call(fn, (void *)it->w[1], (struct weft_ctx *)it->w[3], w->with_ctx);
    ws_task_end(w, fn, jf, r);
    ws_cur_flow = prev;
    jf->result = r;
    /* Release pairs with the joiner's acquire load of done: it sees result
     * and everything the task did. Our last access to the frame. */
    uint32_t old = atomic_fetch_or_explicit(&jf->done, 1, memory_order_release);
    if (old & 2)
        ws_futex_wake(&jf->done, 1);
}

void ws_run(ws_worker *w, const wq_item *it, bool popped)
{
    unsigned kind = it->w[2] & WS_KIND_MASK;
    if (kind >= WS_JOIN) {
        if (kind == WS_JOIN)
            ws_run_join(w, it);
        else
            ws_flow_async_run_list((ws_flow *)(it->w[2] & ~(uintptr_t)WS_ITEM_BITS));
        return;
    }
    ws_flow *f = (ws_flow *)(it->w[2] & ~(uintptr_t)WS_ITEM_BITS);
    uintptr_t cw = (it->w[2] & WS_PINNED) ? (uintptr_t)f->ctx_pin : it->w[3];
    struct weft_ctx *ctx = (struct weft_ctx *)(cw & ~WS_CTX_REF);
    if (WS_LIKELY(!ws_flow_canceled_fast(f))) {
        ws_flow *prev = ws_cur_flow;
        ws_cur_flow = f;
        weft_fn fn = (weft_fn)it->w[0];
        ws_task_begin(w, fn, f);
        int r = ws_call(fn, (void *)it->w[1], ctx, !(f->flags & WS_FLOW_NO_CTX));
        ws_task_end(w, fn, f, r);
        ws_cur_flow = prev;
        if (WS_UNLIKELY(r != 0))
            ws_flow_fail(f, r);
    } else {
        WS_STAT(w, tasks_skipped, 1);
    }
    if (cw & WS_CTX_REF)
        wctx_release(ctx);
    /* A LOCAL item off our own deque: we are the owner, so plain, unless
     * the owner async-closed f (it handed local_pending over to state;
     * only we store magic while f is open, so a relaxed load is exact). */
    if (kind == WS_LOCAL && popped &&
        atomic_load_explicit(&f->magic, memory_order_relaxed) != WS_FLOW_ASYNC)
        f->local_pending--;
    else
        ws_task_done(w, f); /* ws_flow_uncount, or batched: sched/done.c */
}

/* Whether the worker loop may run it in a streak (ws_run_streak): a task
 * of a flow counted in its state (REMOTE, or LOCAL handed over by a take
 * from the injection path, which ws_run counts in state too), with a
 * context it borrows. */
static inline bool ws_streak_item(const wq_item *it, bool popped)
{
    unsigned kind = it->w[2] & WS_KIND_MASK;
    return (kind == WS_REMOTE || (kind == WS_LOCAL && !popped)) &&
           ((it->w[2] & WS_PINNED) || !(it->w[3] & WS_CTX_REF));
}

/* The context an item of f borrows (ws_streak_item said it borrows). */
static inline struct weft_ctx *ws_streak_ctx(const ws_flow *f, const wq_item *it)
{
    return (it->w[2] & WS_PINNED) ? f->ctx_pin : (struct weft_ctx *)it->w[3];
}

bool ws_run_streak(ws_worker *w, wq_item *it, bool *popped)
{
    if (!ws_streak_item(it, *popped)) {
        ws_run(w, it, *popped);
        return false;
    }
    ws_flow *f = (ws_flow *)(it->w[2] & ~(uintptr_t)WS_ITEM_BITS);
    struct weft_ctx *ctx = ws_streak_ctx(f, it);
    const bool with_ctx = !(f->flags & WS_FLOW_NO_CTX);
    ws_flow *prev = ws_cur_flow;
    ws_cur_flow = f;
    wctx_scope s, *outer = wctx_top;
    if (with_ctx)
        wctx_enter(&s, ctx);
    bool more = false;
    for (unsigned k = 1;; k++) {
        weft_fn fn = (weft_fn)it->w[0];
        if (!with_ctx)
            wctx_top = NULL; /* the worker's base context (ws_call) */
        if (WS_LIKELY(!ws_flow_canceled_fast(f))) {
            ws_task_begin(w, fn, f);
            int r = fn((void *)it->w[1]);
            /* What ws_call's leave and a new enter would do: drop a set
             * the task made, back to the snapshot. */
            if (with_ctx)
                wctx_reset(&s, ctx);
            ws_task_end(w, fn, f, r);
            if (WS_UNLIKELY(r != 0))
                ws_flow_fail(f, r);
        } else {
            WS_STAT(w, tasks_skipped, 1);
        }
        ws_task_done(w, f);
        ws_check_forked(w);
        /* A tracer attaching to a probe that inline paths skip sends the
         * tasks' inline paths to the library within 32 tasks (the task
         * probes themselves fire at once). */
        if (k % 32 == 0)
            ws_probes_poll(w);
        /* The next item, from where the worker loop would take it. */
        if (ws_take(w, it))
            *popped = true;
        else if (wq_batch_take(&w->batch, it))
            *popped = false;
        else
            break;
        /* Of f, and borrowing ctx, pinned or not: go on. Else the loop
         * runs it (after handing over a count batched for f). */
        if (WS_UNLIKELY((it->w[2] & ~(uintptr_t)WS_ITEM_BITS) != (uintptr_t)f ||
                        !ws_streak_item(it, *popped) || ws_streak_ctx(f, it) != ctx)) {
            more = true;
            break;
        }
    }
    if (with_ctx)
        wctx_leave(&s);
    wctx_top = outer;
    ws_cur_flow = prev;
    return more;
}

/* ---- open / spawn / close ---------------------------------------------- */

/* Initializes what every flow has; the opener sets the rest. */
__attribute__((always_inline)) static inline void ws_flow_init(ws_flow *f, struct weft_pool *pool,
                                                             ws_worker *owner, ws_flow *parent)
{
    f->pool = pool;
    f->owner = owner;
    f->parent = parent;
    f->local_pending = 0;
    /* state, error and canceled start at zero: one wide store where three
     * atomic_init would be three (nothing else sees f yet). */
    memset((void *)&f->state, 0, offsetof(ws_flow, cancel_cache) - offsetof(ws_flow, state));
    /* Follow the pool's epoch, unless the chain above crosses pools (then
     * a cancel on another pool must reach us: the process-wide epoch), and
     * start from the parent's cached answer (our own flag is clear), so
     * checks cost O(1) until a cancel; a stale copy only makes the first
     * check walk up to the nearest current cache. An owner's open (owner
     * != NULL) takes both from its parent: a worker's current flow is of
     * its own pool, except in an async close's done, where it is the
     * closed flow's parent, maybe of another pool; following that parent's
     * epoch is still exact (every cancel above advances it), it only sees
     * that pool's other cancels too. A parent on another pool has no answer for
     * us: 0 is never current (epochs start at 1), so the first check
     * walks. Acquire pairs with the release increments in ws_flow_cancel. */
    _Atomic(uint64_t) *ep;
    uint64_t cache;
    if (parent && (owner || parent->pool == pool)) {
        ep = parent->epoch;
        cache = atomic_load_explicit(&parent->cancel_cache, memory_order_relaxed);
    } else if (parent) {
        ep = &ws_cancel_epoch;
        cache = 0;
    } else {
        ep = &pool->cancel_epoch;
        cache = atomic_load_explicit(ep, memory_order_acquire) << 1;
    }
    f->epoch = ep;
    atomic_init(&f->cancel_cache, cache);
    /* Published to other threads only through spawned tasks (release/acquire
     * in the queues), so relaxed is enough. */
    atomic_store_explicit(&f->magic, WS_FLOW_OPEN, memory_order_relaxed);
}

/* A task's spawn-time snapshot outlives every flow the task opens; a
 * context the current scope owns could be dropped by a later weft_ctx_set,
 * so pin it (a task-private line, not a shared one). */
static void ws_flow_pin(ws_flow *f, bool with_ctx)
{
    f->flags = 0;
    f->ctx_pin = NULL;
    if (!with_ctx) {
        f->flags = WS_FLOW_NO_CTX;
        return;
    }
    wctx_scope *s = wctx_scope_current();
    f->ctx_pin = s->cur;
    if (s->cur && s->owned) {
        wctx_retain(s->cur);
        f->flags = WS_FLOW_PIN_OWNED;
    }
}

/* Every open but the common one (see weft_flow_open). */
__attribute__((noinline)) static int ws_flow_open_slow(ws_flow *f, weft_pool *pool)
{
    if (!f)
        return EINVAL;
    ws_worker *w = ws_self;
    if (w && (!pool || pool == w->pool)) {
        f->base = wq_deque_bottom(&w->deque);
        ws_flow_pin(f, w->with_ctx);
        ws_flow_init(f, w->pool, w, ws_cur_flow);
        ws_count_open(w, 1);
        ws_flow_opened(w, f);
        return 0;
    }
    int err = 0;
    if (!pool)
        pool = ws_default_pool(&err);
    if (!pool)
        return err;
    if (!ws_pool_usable(pool))
        return EINVAL;
    /* seq_cst pairs with weft_pool_destroy's CAS of closing and load of
     * ext_open: a destroy either sees this flow or we see it closing. */
    atomic_fetch_add_explicit(&pool->ext_open, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&pool->closing, memory_order_seq_cst)) {
        /* A destroy has claimed the pool. If it saw no open flow it stops
         * the workers (stopping) and we fail; if it saw one it backs off
         * (closing clears) and we go on. Opening while destroying a pool
         * without any flow open is the caller's race. */
        /* Acquire pairs with ws_pool_stop's seq_cst store of stopping. */
        if (atomic_load_explicit(&pool->stopping, memory_order_acquire)) {
            atomic_fetch_sub_explicit(&pool->ext_open, 1, memory_order_relaxed);
            return EINVAL;
        }
        sched_yield();
    }
    /* An opener that is no worker at all pushes its own spawns: a ring of
     * its own for them, while one is free (a worker of another pool spawns
     * as any other thread does, into the injection queue). */
    f->ring = w ? NULL : ws_ring_lease(pool);
    f->opener = ws_thread_token();
    ws_flow_pin(f, !(pool->flags & WEFT_POOL_NO_CTX));
    ws_flow_init(f, pool, NULL, ws_cur_flow);
    /* The ring carries the item words every ring push shares: the flow,
     * and the pin (a spawn under another context goes to the injection
     * queue, weft_spawn). The ring is empty: its last lessee finished. */
    if (f->ring)
        wq_ring_set_common(f->ring, (uintptr_t)f | WS_LOCAL,
                           f->flags & WS_FLOW_NO_CTX ? 0 : (uintptr_t)f->ctx_pin);
    WS_PROBE3(flow_open, pool, WS_PROBE_REG(-1), f);
    return 0;
}

int weft_flow_open(weft_flow *flow, weft_pool *pool)
{
    /* The common open: a task opening a flow on its own pool, in a scope
     * that owns nothing (its context is its snapshot, which outlives the
     * flow, so the flow borrows it). Nothing shared to count; only an
     * external opener counts its spawns by thread (an owner by worker), so
     * only it needs its token. */
    ws_flow *f = ws_flow_of(flow);
    ws_worker *w = ws_self;
    wctx_scope *top = wctx_top;
    if (WS_LIKELY(f && w && !pool && w->with_ctx && top && !top->owned)) {
        f->base = wq_deque_bottom(&w->deque);
        f->flags = 0;
        f->ctx_pin = top->cur;
        ws_flow_init(f, w->pool, w, ws_cur_flow);
        ws_count_open(w, 1);
        ws_flow_opened(w, f);
        return 0;
    }
    return ws_flow_open_slow(f, pool);
}

/* A full ring: the workers are behind by WQ_RING_CAP items, and on a busy
 * machine the submitter's CPU is what they lack. So a spawn that finds the
 * ring full gives its CPU up once (sched_yield) and tries again, and
 * spills into the injection queue if it is still full; it never waits for
 * a consumer. After WS_RING_FULL_YIELDS such yields with no spawn between
 * them whose first push found room (the workers are stuck, or the yields
 * found nobody to run), it spills at once, until a spawn's first push
 * finds room again. 4 threads on 2 workers spent 2-3x their CPU per item
 * in contended spills without a yield; with 1 worker, one yield per full
 * ring left the producers spilling while the yields ran another producer,
 * not the worker: 16 took 4 submitters on 1 worker from 31 to 43 M/s,
 * median (docs/benchmarks.md, "Yields on a full ring"). true: pushed.
 *
 * A yield can also run another program: on a loaded machine it then cost
 * a time slice per full ring, and 200,000 spawns from one thread took
 * 30-210 ms instead of 7-16 with no yield (docs/benchmarks.md, "Yields on
 * a loaded machine"). So a yield that kept us off the CPU for longer than
 * WS_YIELD_SLOW_NS (a ring's worth of our own spawns or tasks is tens of
 * microseconds), during which this process's threads used less than half
 * of one CPU, pauses the yields: the ring spills without yielding for
 * WS_YIELD_PAUSE times that yield's length (up to 1 s), so that load that
 * stays costs at most one slow yield in 64. A slow yield that ran our own
 * threads (a worker, or other submitters: 4 of them on 2 CPUs) is what
 * the yields are for, and does not pause them. */
enum { WS_RING_FULL_YIELDS = 16, WS_YIELD_PAUSE = 64 };
#define WS_YIELD_SLOW_NS 200000u
#define WS_YIELD_PAUSE_MAX_NS 1000000000u

__attribute__((noinline)) static bool ws_ring_full(wq_ring *r, weft_fn fn, void *arg)
{
    if (r->yields >= WS_RING_FULL_YIELDS)
        return false;
    uint64_t t0 = ws_now_ns();
    if (t0 < r->yield_at) {
        r->yields = WS_RING_FULL_YIELDS; /* spill until room again */
        return false;
    }
    r->yields++;
    uint64_t c0 = ws_process_cpu_ns();
    sched_yield();
    uint64_t took = ws_now_ns() - t0;
    if (took > WS_YIELD_SLOW_NS && 2 * (ws_process_cpu_ns() - c0) < took) {
        uint64_t pause = took * WS_YIELD_PAUSE;
        r->yield_at = t0 + took + (pause < WS_YIELD_PAUSE_MAX_NS ? pause : WS_YIELD_PAUSE_MAX_NS);
        r->yields = WS_RING_FULL_YIELDS;
    }
    return wq_ring_push(r, (uintptr_t)fn, (uintptr_t)arg);
}

/* The external thread that opened f (open, no owner), spawning into its
 * leased ring with the flow's pin: true when it did. The item is LOCAL,
 * counted by the ring's tail (ws_flow_ring_count); the push publishes it
 * with a seq_cst RMW, or on a light ring a release store (sched/asym.c),
 * and the notify that follows is the publisher's half of the parking
 * pairing. Only the opener (or a thread it synchronized with) closes f,
 * so f and its pool stay while we notify. false: no ring, another thread,
 * a pool inherited across fork, a context of the task's own, or the ring
 * is full (weft_spawn's slow path then uses the injection queue). */
static inline bool ws_spawn_ring(ws_flow *f, weft_fn fn, void *arg)
{
    wq_ring *r = f->ring;
    struct weft_pool *pool = f->pool;
    if (WS_UNLIKELY(r == NULL) || WS_UNLIKELY(f->opener != ws_thread_token()) ||
        WS_UNLIKELY(pool->fork_gen != ws_fork_gen) ||
        WS_UNLIKELY(!(f->flags & WS_FLOW_NO_CTX) && wctx_current() != f->ctx_pin))
        return false;
    if (WS_UNLIKELY(!wq_ring_push(r, (uintptr_t)fn, (uintptr_t)arg))) {
        if (!ws_ring_full(r, fn, arg))
            return false;
    } else if (WS_UNLIKELY(r->yields)) {
        r->yields = 0; /* room again: a full ring may yield again */
    }
    WS_PROBE3(inject, pool, f, fn);
    if (WS_LIKELY(r->light))
        ws_notify_light(pool, 1);
    else
        ws_notify_after_rmw(pool, 1);
    return true;
}

/* Every spawn but the owner's common one and the opener's ring push (see
 * weft_spawn). */
__attribute__((noinline)) static int ws_spawn_slow(ws_flow *f, weft_fn fn, void *arg)
{
    if (!f || !fn || !ws_flow_is_open(f) || !ws_pool_usable(f->pool))
        return EINVAL;
    /* After weft_flow_close_async only the flow's own tasks (and what runs
     * below them) spawn into it, and they count in state (REMOTE): the
     * opener's local count was handed over. A spawn from outside that read
     * the flow open races its close: ws_flow_count_in lets the close's
     * seal, or an async-closed flow's final zero, decide. */
    bool inside = ws_flow_encloses_caller(f);
    bool async = atomic_load_explicit(&f->magic, memory_order_relaxed) == WS_FLOW_ASYNC;
    if (async && !inside)
        return EINVAL;
    wq_item it;
    it.w[0] = (uintptr_t)fn;
    it.w[1] = (uintptr_t)arg;
    it.w[3] = 0;
    if (!(f->flags & WS_FLOW_NO_CTX)) {
        struct weft_ctx *c = wctx_current();
        it.w[3] = (uintptr_t)c;
        if (c != f->ctx_pin) {
            /* Not covered by the flow's pin: the task keeps its own ref. */
            wctx_retain(c);
            if (c)
                it.w[3] |= WS_CTX_REF;
        }
    }
    /* Everything we need from f before its task is visible: after that a
     * worker may run it and f's closer return, and f and its pool be gone,
     * unless our own count (below) still holds f open. */
    struct weft_pool *pool = f->pool;
    ws_worker *w = ws_self;
    int err;
    if (w && w == f->owner && !async) {
        it.w[2] = (uintptr_t)f | WS_LOCAL;
        f->local_pending++;
        err = wq_deque_put(&w->deque, &it);
        if (!err) {
            ws_spawned(w, f, fn);
            ws_stat_depth(w); /* the slow path: the array may have grown */
            ws_after_push(w);
            return 0;
        }
        f->local_pending--;
    } else if (!w && !f->owner && f->opener == ws_thread_token()) {
        /* The external thread that opened f: count in local_pending like an
         * owner (no RMW on the line the workers decrement); the close hands
         * the count over. Workers take it from the injection queue, never
         * "popped", so its completion always decrements state. Only this
         * thread (or one it synchronized with) closes f, so f and the pool
         * stay while we notify. */
        it.w[2] = (uintptr_t)f | WS_LOCAL;
        /* weft_spawn tried our leased ring (ws_spawn_ring). It was full,
         * or the task has a context of its own (ring items share the pin),
         * or we have none, or f is closing: the injection queue, whose
         * push ends in a seq_cst RMW that makes the item visible. We never
         * wait for a consumer. Counted before the push (a worker may run
         * it at once). */
        f->local_pending++;
        err = wq_inject_push(&pool->inject, &it);
        if (!err) {
            WS_PROBE3(inject, pool, f, fn);
            ws_notify_after_rmw(pool, 1);
            return 0;
        }
        f->local_pending--;
    } else if (w && w->pool == pool) {
        /* A worker of f's pool that is not its owner: onto our own deque.
         * After the push we touch only our own worker (its pool outlives
         * the task we run). The count may be relaxed: the matching
         * decrement comes after the task is handed over through a
         * release/acquire pair, so it cannot precede it. */
        it.w[2] = (uintptr_t)f | WS_REMOTE;
        err = EINVAL;
        if (ws_flow_count_in(f, 2, inside)) {
            err = wq_deque_put(&w->deque, &it);
            if (!err) {
                ws_spawned(w, f, fn);
                ws_after_push(w);
                return 0;
            }
            ws_flow_uncount(f, 2); /* a closer may sleep on the count it saw */
        }
    } else if (!ws_flow_count_in(f, 4, inside)) {
        err = EINVAL;
    } else {
        /* Any other thread, into the injection queue. We must notify after
         * the push, so we counted ourselves as well as the task (4): f
         * cannot finish, nor its pool be destroyed, before we take our
         * count out, our last access to f. */
        it.w[2] = (uintptr_t)f | WS_REMOTE;
        err = wq_inject_push(&pool->inject, &it);
        if (!err) {
            WS_PROBE3(inject, pool, f, fn);
            ws_hook(WS_HOOK_REMOTE_PUSHED, f);
            ws_notify_after_rmw(pool, 1);
        }
        ws_flow_uncount(f, err ? 4 : 2);
        if (!err)
            return 0;
    }
    if (it.w[3] & WS_CTX_REF)
        wctx_release((struct weft_ctx *)(it.w[3] & ~WS_CTX_REF));
    return err;
}

/* The end of a fast spawn that found more to do (a tail call: the fast
 * path keeps nothing live across it, so it saves no registers). */
__attribute__((noinline)) static int ws_spawn_after_push(ws_worker *w)
{
    ws_after_push_slow(w);
    return 0;
}

int weft_spawn(weft_flow *flow, weft_fn fn, void *arg)
{
    /* The fork-join fast path: the owner spawns with the flow's pinned
     * context into its deque's private part, which has room. No atomic
     * read-modify-write, no fence; everything else goes slow. An owner's
     * flow is on a with-ctx pool exactly when the owner runs in a scope,
     * and a NO_CTX flow's pin is NULL, so one compare checks the context. */
    ws_flow *f = ws_flow_of(flow);
    ws_worker *w = ws_self;
    if (WS_LIKELY(w && f && fn && f->owner == w &&
                  atomic_load_explicit(&f->magic, memory_order_relaxed) == WS_FLOW_OPEN)) {
        wctx_scope *s = wctx_top;
        struct weft_ctx *c = s ? s->cur : NULL;
        wq_item it = {{(uintptr_t)fn, (uintptr_t)arg, (uintptr_t)f | WS_LOCAL | WS_PINNED}};
        if (WS_LIKELY(c == f->ctx_pin && wq_deque_try_put3(&w->deque, &it))) {
            f->local_pending++;
            ws_spawned(w, f, fn);
            if (WS_UNLIKELY(ws_push_needs_more(w)))
                return ws_spawn_after_push(w);
            return 0;
        }
    } else if (!w && f && fn && !f->owner &&
               atomic_load_explicit(&f->magic, memory_order_relaxed) == WS_FLOW_OPEN) {
        /* The submission fast path (ws_spawn_ring). */
        if (WS_LIKELY(ws_spawn_ring(f, fn, arg)))
            return 0;
    }
    return ws_spawn_slow(f, fn, arg);
}

/* Sleeps until state changes (or timeout_ns passes, if > 0). */
static void ws_flow_sleep(ws_flow *f, int64_t s, long timeout_ns)
{
    if (!(s & WS_WAITER)) {
        /* Relaxed: the flag only asks for a wake-up (the completer sees it
         * in its own RMW's result); the futex compares the word in the
         * kernel, and our next acquire load of state does the ordering. */
        if (!atomic_compare_exchange_strong_explicit(&f->state, &s, s | WS_WAITER,
                                                     memory_order_relaxed, memory_order_relaxed))
            return; /* changed: look again */
        s |= WS_WAITER;
    }
    ws_futex_wait(ws_state_word(f), (uint32_t)s, timeout_ns);
}

/* Waits until every task counted in state is done. A worker helps its own
 * pool meanwhile; any other thread spins briefly, then sleeps. One that has
 * woken a parked worker since its last wait here (a spawn of it did: the
 * common case is this flow's) spins with sched_yield, not
 * pause, and for fewer rounds: the kernel often queues the woken worker on
 * the waker's CPU, where a pause-spin would keep it waiting for the whole
 * spin (an idle pool's one external task, 1 worker: start 11.9 to 8.4 us,
 * round trip 15.1 to 10.1, medians; docs/benchmarks.md "A closer that
 * woke a worker yields"). */
static void ws_flow_wait(ws_flow *f, ws_worker *w)
{
    long nap = 50000; /* a worker's nap grows to 1 ms: see docs/scheduler.md */
    bool yield = !w && ws_woke;
    unsigned spin_rounds = yield ? 64 : 200;
    if (!w)
        ws_woke = false;
    for (unsigned spins = 0;;) {
        /* Acquire pairs with the release decrements in ws_flow_uncount. */
        int64_t s = atomic_load_explicit(&f->state, memory_order_acquire);
        if (((s & ~WS_SEALED) >> 1) == 0)
            return;
        if (w) {
            if (w == f->owner && f->local_pending)
                return; /* a helped task spawned into f locally: drain first */
            if (ws_help(w)) {
                spins = 0;
                continue;
            }
        }
        if (++spins < spin_rounds) {
            if (yield)
                sched_yield();
            else
                ws_cpu_relax();
            continue;
        }
        ws_flow_sleep(f, s, w ? nap : 0);
        if (w && nap < 1000000)
            nap *= 2;
    }
}

/* The closer of a flow without owner, after ws_flow_wait saw the count at
 * zero: seals it, so that a spawn from outside that races the close is
 * refused from now on (ws_flow_count_in). true: the count was still zero,
 * f is done. false: such a spawn counted in between; it cannot be followed
 * by another, so the next zero is final. Acquire: that spawn's task may
 * have come and gone meanwhile (pairs with its completion's release). */
static bool ws_flow_seal(ws_flow *f)
{
    int64_t old = atomic_fetch_or_explicit(&f->state, WS_SEALED, memory_order_acquire);
    return (old >> 1) == 0;
}

/* The owner's close in fork-join: f's own tasks, newest first, run right
 * in the opener's scope when that scope is clean (it has the flow's pin and
 * owns nothing); a set a task made is dropped after it (wctx_reset), which
 * is what a scope of its own would give it, as in weft_join. On a NO_CTX
 * pool the opener runs with no scope, as its tasks do. The current flow is
 * set once for the batch. The caller saw f's cached cancellation answer
 * "not canceled" at the current epoch; an unchanged epoch after each task
 * keeps it so. Returns true when the deque is back at f's base, no task
 * failed and the epoch is unchanged; false when it stopped at anything else
 * (another item, a shared one, a publish request, a new epoch), for
 * ws_flow_drain. What the loop needs after a task's call it reads again
 * (the scope from wctx_top, which a task leaves as it found it; the pin and
 * the cache from f): fewer registers to save and spill per close. */
__attribute__((always_inline)) static inline bool ws_flow_drain_lean(ws_flow *f, ws_worker *w)
{
    wq_deque *d = &w->deque;
    wctx_scope *top = wctx_top;
    if (WS_UNLIKELY((f->flags & WS_FLOW_NO_CTX) ? top != NULL
                                                : !top || top->cur != f->ctx_pin || top->owned))
        return false;
    bool done = true;
    ws_flow *prev = ws_cur_flow;
    ws_cur_flow = f;
    while (wq_deque_bottom(d) > f->base) {
        wq_slot *sl = wq_deque_peek_private(d);
        if (WS_UNLIKELY(!sl || wq_deque_split_wanted(d) ||
                        atomic_load_explicit(&sl->w[2], memory_order_relaxed) !=
                            ((uintptr_t)f | WS_LOCAL | WS_PINNED))) {
            done = false;
            break;
        }
        weft_fn fn = (weft_fn)atomic_load_explicit(&sl->w[0], memory_order_relaxed);
        void *arg = (void *)atomic_load_explicit(&sl->w[1], memory_order_relaxed);
        wq_deque_drop_private(d);
        f->local_pending--;
        ws_task_begin(w, fn, f);
        int r = fn(arg);
        ws_task_end(w, fn, f, r);
        ws_check_forked(w); /* fn forked: the child must not run f's others */
        if (wctx_top)
            wctx_reset(wctx_top, f->ctx_pin);
        /* Acquire pairs with the release increments in ws_flow_cancel. */
        uint64_t e = atomic_load_explicit(f->epoch, memory_order_acquire);
        if (WS_UNLIKELY(r != 0 ||
                        atomic_load_explicit(&f->cancel_cache, memory_order_relaxed) != e << 1)) {
            if (r != 0)
                ws_flow_fail(f, r);
            done = false;
            break;
        }
    }
    ws_cur_flow = prev;
    return done;
}

/* The owner runs what it pushed since f opened and has not taken back (f's
 * tasks, and whatever they left above f's base), newest first: the general
 * case, each item through ws_run. */
static void ws_flow_drain(ws_flow *f, ws_worker *w)
{
    wq_deque *d = &w->deque;
    wq_item it;
    /* A fork child of w (a task forked) exits before it takes anything. */
    while ((ws_check_forked(w), wq_deque_bottom(d) > f->base) && ws_take(w, &it))
        ws_run(w, &it, true);
}

/* The opener's count of tasks it did not run itself (stolen, or injected)
 * moves into state, where their runners count them down. */
static inline void ws_flow_hand_over(ws_flow *f)
{
    ws_flow_ring_count(f);
    if (f->local_pending) {
        atomic_fetch_add_explicit(&f->state, 2 * f->local_pending, memory_order_relaxed);
        f->local_pending = 0;
    }
}

/* The caller saw f's count at zero with an acquire load of state. */
int ws_flow_result(ws_flow *f)
{
    int err = atomic_load_explicit(&f->error, memory_order_relaxed);
    if (!err && ws_flow_is_canceled(f)) /* reads the pool's epoch */
        err = ECANCELED;
    return err;
}

static int ws_flow_finish(ws_flow *f)
{
    struct weft_pool *pool = f->pool;
    if (f->flags & WS_FLOW_PIN_OWNED)
        wctx_release(f->ctx_pin);
    int err = ws_flow_result(f);
    atomic_store_explicit(&f->magic, WS_FLOW_CLOSED, memory_order_relaxed);
    if (f->owner) {
        ws_flow_closed(f->owner, f, err);
        ws_count_open(f->owner, -1); /* we are the owner */
    } else {
        WS_PROBE4(flow_close, pool, WS_PROBE_REG(-1), f, err);
        /* The count read zero (acquire): every item of f's ring was taken
         * and ran, and the opener's pushes came before (see ws.h). */
        ws_flow_ring_return(f);
        /* Release pairs with weft_pool_destroy's seq_cst load of ext_open.
         * Our last touch of the pool: a destroy that sees the count drop
         * may free it at once. */
        atomic_fetch_sub_explicit(&pool->ext_open, 1, memory_order_release);
    }
    return err;
}

/* Whether f is the flow of a task this thread is running, or a flow above
 * it: closing f from here would wait for that task, which waits for us.
 * (Every flow on the chain is open: a flow stays open while a flow below it
 * is, and the innermost is the flow of the task we run.) */
bool ws_flow_encloses_caller(const ws_flow *f)
{
    const ws_flow *g = ws_cur_flow;
    if (g == f->parent)
        return false; /* the opener itself, as in every valid close: no walk */
    for (; g; g = g->parent)
        if (g == f)
            return true;
    return false;
}

/* The owner's close, from where the lean drain stopped: drain the rest,
 * hand the stolen tasks' count over, wait (helping), and again if helped
 * tasks spawned into f locally. */
__attribute__((noinline)) static int ws_close_owner_slow(ws_flow *f, ws_worker *w)
{
    /* A task of f that this worker runs while f is open (it helped, and
     * took it from its own deque) closing f, or one below it: refuse, and
     * leave f open for its opener's close. (The fast close always comes
     * here then: that task counts in local_pending until it returns. The
     * lean drain can only have run f's own tasks, which is no harm.) */
    if (WS_UNLIKELY(ws_flow_encloses_caller(f))) {
        atomic_store_explicit(&f->magic, WS_FLOW_OPEN, memory_order_relaxed);
        return EINVAL;
    }
    for (;;) {
        ws_flow_drain(f, w);
        ws_flow_hand_over(f); /* what is left after draining was stolen */
        /* Acquire pairs with the release decrements in ws_flow_uncount. */
        if ((atomic_load_explicit(&f->state, memory_order_acquire) >> 1) == 0)
            break;
        /* Let idle workers have what we hold below our base meanwhile. */
        ws_publish(w, true);
        ws_flow_wait(f, w);
    }
    return ws_flow_finish(f);
}

/* Every close but the owner's of its open flow. */
__attribute__((noinline)) static int ws_close_other(ws_flow *f, ws_worker *w)
{
    if (!f || (w && f->owner == w))
        return EINVAL; /* the owner's flow is not open, or not its task's */
    if (ws_flow_encloses_caller(f))
        return EINVAL; /* closed from inside: it would wait for itself */
    if (f->owner || atomic_load_explicit(&f->magic, memory_order_relaxed) != WS_FLOW_OPEN ||
        !ws_pool_usable(f->pool))
        return EINVAL; /* a task's flow is closed by that task; a pool
                        * inherited across fork() has no workers here */
    /* Any thread may close a flow without owner: the CAS lets exactly one
     * of two racing closes through. */
    uint32_t open = WS_FLOW_OPEN;
    if (!atomic_compare_exchange_strong_explicit(&f->magic, &open, WS_FLOW_CLOSING,
                                                 memory_order_relaxed, memory_order_relaxed))
        return EINVAL;
    /* The opening thread's injected spawns (its own, or read by us after the
     * caller synchronized with it before closing). */
    ws_flow_hand_over(f);
    ws_flow_wait(f, w);
    if (!ws_flow_seal(f))
        ws_flow_wait(f, w); /* the racing spawn's task, which is the last */
    return ws_flow_finish(f);
}

int weft_flow_close(weft_flow *flow)
{
    ws_flow *f = ws_flow_of(flow);
    ws_worker *w = ws_self;
    /* Only the owner may close a flow it owns, so no other thread can race
     * the magic check: no locked instruction needed. And a task's flow is
     * closed by that task: the current flow must be f's parent, as at the
     * open. That refuses a task of another flow that this worker runs
     * inside the opener's wait, and a task of f; a sibling of the opener,
     * a task of the same flow, is not told apart by it. */
    if (WS_UNLIKELY(!f || !w || f->owner != w ||
                    atomic_load_explicit(&f->magic, memory_order_relaxed) != WS_FLOW_OPEN ||
                    ws_cur_flow != f->parent))
        return ws_close_other(f, w);
    atomic_store_explicit(&f->magic, WS_FLOW_CLOSING, memory_order_relaxed);
    ws_stat_depth(w); /* the deque is deepest when its spawner closes */
    /* Nothing canceled, all run here, nothing outstanding from a thief or
     * another thread, nothing pinned: done. The state load is acquire
     * (pairs with the release decrements in ws_flow_uncount): REMOTE
     * tasks may have come and gone, leaving zero, and we must see what they
     * did, which includes any failure: a failing task cancels f, and its
     * ws_flow_cancel has advanced f's epoch before its decrement. */
    if (WS_LIKELY(!ws_flow_canceled_fast(f) && ws_flow_drain_lean(f, w) &&
                  f->local_pending == 0 && !(f->flags & WS_FLOW_PIN_OWNED) &&
                  atomic_load_explicit(&f->state, memory_order_acquire) == 0 &&
                  !ws_flow_maybe_canceled(f))) {
        ws_flow_closed(w, f, 0);
        atomic_store_explicit(&f->magic, WS_FLOW_CLOSED, memory_order_relaxed);
        ws_count_open(w, -1);
        return 0;
    }
    return ws_close_owner_slow(f, w);
}

/* ---- the library's end of the inline close (include/weft_inline.h) ----- */

/* The owner's inline close set f CLOSING, ran f's own items back from the
 * top of its deque and stopped short of done: a task failed (r), or it met
 * something else (another item, a shared one, a publish request, a cancel,
 * stolen or remote tasks, a pin the flow owns). Goes on as the library's
 * own close does from where its lean drain stops. A fork child of the
 * worker that got here exits, as ws_check_forked. */
int weft_flow_close_rest_(weft_flow *flow, int r)
{
    ws_flow *f = ws_flow_of(flow);
    ws_worker *w = ws_self;
    if (!w || w != f->owner)
        _exit(0);
    if (WS_UNLIKELY(r != 0))
        ws_flow_fail(f, r);
    return ws_close_owner_slow(f, w);
}
