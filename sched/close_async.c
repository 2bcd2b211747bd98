/*
 * sched/close_async.c — weft_flow_close_async: a close that does not wait.
 *
 * The call hands the flow's count over as a close would (the opener's
 * local_pending moves into state) and adds WS_ASYNC to state in the same
 * release RMW. From then on a spawn into the flow is refused unless it
 * comes from inside it (then it counts in state), or it raced the call from
 * outside and finds the count above zero (ws_flow_count_in refuses
 * state == WS_ASYNC), so a zero count is final: exactly one RMW leaves
 * state == WS_ASYNC, and its maker runs done. When
 * the call's own RMW finds the count at zero already, done must not run
 * inside the call, so the call hands the flow to a worker instead.
 *
 * While done is pending the flow holds:
 *   - its pool: ext_open, as an external flow does from its open (an owned
 *     flow takes one at the call), so weft_pool_destroy says EBUSY;
 *   - its parent, the flow of the task that opened it: two counts in the
 *     parent's state, as a spawned task would, so the parent's close waits
 *     for done and the parent chain that cancellation walks stays valid;
 *   - the caller's context, retained, for done to run in, and the flow's
 *     pin if it was borrowed and is another (the opener's task may end
 *     before the flow's tasks run in it).
 * done runs on a worker of the flow's pool, inside the parent (as the
 * flow's last act); then the pool is let go, then the parent (its uncount
 * may complete the parent).
 * docs/scheduler.md ("Closing without waiting") has the argument.
 */
#include "sched/observe.h"

/* Runs f's done on this worker of f's pool. The caller took f's state to
 * WS_ASYNC, or took f from the async_done stack. */
static void ws_flow_async_done(ws_flow *f)
{
    /* Acquire: reads the value of the RMW that made the count zero, which
     * continues the release sequences of every earlier decrement and of the
     * close_async RMW, so we see what each task did and done's fields. */
    (void)atomic_load_explicit(&f->state, memory_order_acquire);
    struct weft_pool *pool = f->pool;
    ws_flow *parent = f->parent;
    weft_done_fn done = f->done;
    void *arg = f->done_arg;
    struct weft_ctx *ctx = f->done_ctx;
    int err = ws_flow_result(f); /* walks the parents: still held */
    /* An external opener's ring: its items all ran (the count is zero, and
     * the acquire load above saw the opener's close_async RMW, after its
     * last push). Before done: from then on f is the caller's. */
    ws_flow_ring_return(f);
    /* Owned, or borrowed and retained by the call (see there). */
    if ((f->flags & WS_FLOW_PIN_OWNED) || f->ctx_pin != ctx)
        wctx_release(f->ctx_pin);
    atomic_store_explicit(&f->magic, WS_FLOW_CLOSED, memory_order_relaxed);
    /* Worker -1, as for an external close: done's worker is no owner. */
    WS_PROBE4(flow_close, pool, WS_PROBE_REG(-1), f, err);

    /* done runs as the last act of f, inside f's parent (held until done
     * returns): a flow it opens is the parent's child, and closing the
     * parent from done is refused as a close from inside. */
    ws_flow *prev = ws_cur_flow;
    ws_cur_flow = parent;
    wctx_scope s;
    wctx_enter(&s, ctx);
    atomic_fetch_add_explicit(&pool->dones_running, 1, memory_order_relaxed);
    done(arg, err); /* from here on f is the caller's */
    wctx_leave(&s);
    ws_cur_flow = prev;
    wctx_release(ctx);

    /* Release pairs with weft_pool_destroy's seq_cst load of ext_open. With
     * a parent, the pool stays: the parent's chain holds it (an external
     * flow above, or the one that ran the opener's task). Then the count
     * of running dones, which a destroy only waits on (relaxed): we are a
     * worker of the pool, which a destroy joins before it frees it. */
    atomic_fetch_sub_explicit(&pool->ext_open, 1, memory_order_release);
    atomic_fetch_sub_explicit(&pool->dones_running, 1, memory_order_relaxed);
    if (parent)
        ws_flow_uncount(parent, 2);
}

void ws_flow_async_complete(ws_flow *f)
{
    ws_worker *w = ws_self;
    if (w && w->pool == f->pool)
        ws_flow_async_done(f);
    else
        ws_flow_async_defer(f);
}

/* Pushes the chain first..last (linked by done_next) onto pool's
 * async_done stack and wakes a worker for it. Any thread; the pool must
 * stay valid through the notify. */
static void ws_async_done_push(struct weft_pool *pool, ws_flow *first, ws_flow *last)
{
    ws_flow *head = atomic_load_explicit(&pool->async_done, memory_order_relaxed);
    do
        last->done_next = head;
    /* seq_cst: the publishing RMW for ws_notify_after_rmw (pairs with the
     * seq_cst announce in ws_park_wait, whose recheck loads async_done);
     * as a release it pairs with the taker's acquire exchange, which then
     * sees each done_next. After it, the chain is the taker's. */
    while (!atomic_compare_exchange_weak_explicit(&pool->async_done, &head, first,
                                                  memory_order_seq_cst, memory_order_relaxed));
    ws_notify_after_rmw(pool, 1);
}

void ws_flow_async_defer(ws_flow *f)
{
    struct weft_pool *pool = f->pool;
    /* Relaxed: f's own hold keeps ext_open above zero until a worker has
     * run done, which cannot start before our push below. The hold counts
     * as a running done, so that a destroy waits for it as for one. */
    atomic_fetch_add_explicit(&pool->dones_running, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->ext_open, 1, memory_order_relaxed);
    ws_async_done_push(pool, f, f); /* our last access to f */
    /* We may be no worker of the pool (another pool's, or no worker at
     * all): nothing keeps the pool after ext_open drops, so that must be
     * our last touch. The count a destroy waits on goes first (a destroy
     * in between says EBUSY: two adjacent instructions' window). Release
     * pairs with weft_pool_destroy's seq_cst load of ext_open. */
    atomic_fetch_sub_explicit(&pool->dones_running, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&pool->ext_open, 1, memory_order_release);
}

void ws_flow_async_run_list(ws_flow *list)
{
    /* One done per take: the rest goes back on the stack first, for other
     * workers (a done that takes long must not hold up those behind it). */
    ws_flow *rest = list->done_next; /* before done may free list */
    if (rest) {
        struct weft_pool *pool = list->pool;
        ws_flow *last = rest;
        while (last->done_next)
            last = last->done_next;
        ws_async_done_push(pool, rest, last); /* ours to touch: we are its worker */
    }
    ws_flow_async_done(list);
}

int weft_flow_close_async(weft_flow *flow, weft_done_fn done, void *arg)
{
    ws_flow *f = (ws_flow *)flow;
    if (!f || !done || ws_flow_encloses_caller(f))
        return EINVAL;
    ws_worker *w = ws_self;
    uint32_t open = WS_FLOW_OPEN;
    if (f->owner) {
        /* Only the owner closes a flow it owns, so nothing races this. A
         * pool whose workers stop (a flow of on_worker_stop) would never
         * run done: acquire pairs with ws_pool_stop's store of stopping. */
        if (f->owner != w || atomic_load_explicit(&f->magic, memory_order_relaxed) != open ||
            ws_cur_flow != f->parent || /* closed by the task that opened it */
            atomic_load_explicit(&f->pool->stopping, memory_order_acquire))
            return EINVAL;
        atomic_store_explicit(&f->magic, WS_FLOW_ASYNC, memory_order_relaxed);
        /* Relaxed: the task we run counts in a flow that holds ext_open
         * (an external one up the chain), so it cannot drop to zero under
         * us and a destroy cannot be deciding on zero. */
        atomic_fetch_add_explicit(&f->pool->ext_open, 1, memory_order_relaxed);
        ws_count_open(w, -1); /* the pool's hold is ext_open from now on */
        /* The flow's span on the owner's timeline ends here; its result
         * goes with the flow_close probe when done runs. */
        ws_trace(w, WS_EV_FLOW_CLOSE, (uintptr_t)f, 0);
    } else {
        /* As weft_flow_close: one of two racing closes wins the CAS. The
         * magic first: a flow never opened (or closed, its pool gone) has
         * no pool to look at. */
        if (atomic_load_explicit(&f->magic, memory_order_relaxed) != open ||
            !ws_pool_usable(f->pool) ||
            !atomic_compare_exchange_strong_explicit(&f->magic, &open, WS_FLOW_ASYNC,
                                                     memory_order_relaxed, memory_order_relaxed))
            return EINVAL;
    }
    struct weft_ctx *ctx = wctx_current();
    wctx_retain(ctx); /* a borrowed snapshot may end with the caller's task */
    /* So may a borrowed pin, which f's tasks still run in: unless done's
     * context (released after done, after every task) is the pin, hold it. */
    if (!(f->flags & WS_FLOW_PIN_OWNED) && f->ctx_pin != ctx)
        wctx_retain(f->ctx_pin);
    f->done = done;
    f->done_arg = arg;
    f->done_ctx = ctx;
    /* Relaxed, as a spawn's count: the parent's closer cannot see it undone
     * before done has run, which follows our release RMW below. */
    if (f->parent)
        atomic_fetch_add_explicit(&f->parent->state, 2, memory_order_relaxed);
    ws_flow_ring_count(f); /* an external opener's ring pushes */
    int64_t handed = 2 * f->local_pending;
    f->local_pending = 0;
    /* Release pairs with the acquire load in ws_flow_async_done: done's
     * fields and our hand-over are seen by whoever runs it. After this, f
     * may be done and freed at any moment, unless the count was zero. */
    int64_t old = atomic_fetch_add_explicit(&f->state, handed + WS_ASYNC, memory_order_release);
    if (old + handed == 0)
        ws_flow_async_defer(f); /* all done already: never inside this call */
    return 0;
}
