/*
 * sched/join.c — binary fork-join. On a worker, a's frame lives on the
 * joiner's stack and only a four-word item is pushed: no allocation, and no
 * atomic at all when nobody steals a.
 */
#include "sched/ws.h"

typedef struct ws_join_half {
    weft_fn fn;
    void   *arg;
    int     result;
} ws_join_half;

static int ws_join_half_run(void *p)
{
    ws_join_half *h = p;
    h->result = h->fn(h->arg);
    return 0; /* the result is reported by weft_join, not by the flow */
}

/* Not on a worker: run both on the default pool and sleep until done. */
__attribute__((noinline)) static int ws_join_elsewhere(weft_fn a, void *arg_a, weft_fn b, void *arg_b)
{
    ws_join_half ha = {a, arg_a, 0}, hb = {b, arg_b, 0};
    weft_flow flow;
    int err = weft_flow_open(&flow, NULL);
    if (err)
        return err;
    err = weft_spawn(&flow, ws_join_half_run, &ha);
    if (!err)
        err = weft_spawn(&flow, ws_join_half_run, &hb);
    int cerr = weft_flow_close(&flow);
    if (err)
        return err;
    if (cerr)
        return cerr;
    return ha.result ? ha.result : hb.result;
}

/* Leaves the halves' scope: ours is left; the joiner's is reset. */
static inline void ws_join_scope_end(wctx_scope *s, wctx_scope *own, struct weft_ctx *ctx)
{
    if (s == own)
        wctx_leave(own);
    else
        wctx_reset(s, ctx);
}

int weft_join(weft_fn a, void *arg_a, weft_fn b, void *arg_b)
{
    if (!a || !b)
        return EINVAL;
    ws_worker *w = ws_self;
    if (!w)
        return ws_join_elsewhere(a, arg_a, b, arg_b);

    /* Both halves run in one scope with the joiner's context (borrowed: we
     * do not return before a is done). A set made by b is dropped before a
     * runs, so each half starts from the joiner's context, as a spawned
     * task would. If the joiner's own scope is clean (it owns nothing, so
     * its context is the one it started with) that scope serves, reset
     * after each half, as the owner's drain in flow.c does; else a scope of
     * our own does. */
    bool with_ctx = w->with_ctx;
    struct weft_ctx *ctx = NULL;
    wctx_scope own, *s = NULL;
    if (with_ctx) {
        s = wctx_top;
        if (WS_LIKELY(s && !s->owned)) {
            ctx = s->cur;
        } else {
            ctx = wctx_current();
            wctx_enter(&own, ctx);
            s = &own;
        }
    }
    ws_join_frame jf;
    atomic_init(&jf.done, 0);
    jf.with_ctx = with_ctx; /* jf.result is written by a thief, if any */
    jf.flow = ws_cur_flow;
    wq_item it = {{(uintptr_t)a, (uintptr_t)arg_a, (uintptr_t)&jf | WS_JOIN, (uintptr_t)ctx}};
    int64_t mark = wq_deque_bottom(&w->deque);
    int ra, rb;
    if (wq_deque_push(&w->deque, &it) != 0) {
        /* No memory to offer a: run both here, in order. */
        ra = a(arg_a);
        if (with_ctx)
            wctx_reset(s, ctx);
        rb = b(arg_b);
        goto done;
    }
    ws_after_push(w);

    rb = b(arg_b);
    if (with_ctx)
        wctx_reset(s, ctx);

    /* Take a back: at once if it is still our newest, private item (the
     * common case: nothing was stolen and b left nothing). Index mark holds
     * our item unless a helper nested in b already ran it (done is then
     * set, by this thread) and something else was pushed there since; a
     * stolen item leaves no private item at mark (top is past it). */
    if (wq_deque_bottom(&w->deque) == mark + 1 &&
        !atomic_load_explicit(&jf.done, memory_order_relaxed) &&
        wq_deque_drop_private(&w->deque)) {
        ra = a(arg_a);
        goto done;
    }
    /* Else run whatever b left above it on the way down. */
    wq_item got;
    while (wq_deque_bottom(&w->deque) > mark && wq_deque_take(&w->deque, &got)) {
        if (got.w[2] == it.w[2]) {
            ra = a(arg_a);
            goto done;
        }
        ws_run(w, &got, true);
    }
    if (with_ctx)
        ws_join_scope_end(s, &own, ctx);

    /* Stolen: help until the thief is done. */
    long nap = 50000;
    for (unsigned spins = 0;;) {
        /* Acquire pairs with the release fetch_or in ws_run_join. */
        uint32_t d = atomic_load_explicit(&jf.done, memory_order_acquire);
        if (d & 1)
            break;
        if (ws_help(w)) {
            spins = 0;
            continue;
        }
        if (++spins < 200) {
            ws_cpu_relax();
            continue;
        }
        if (!(d & 2)) {
            /* Ask for a wake-up; the futex compares the word in the kernel. */
            atomic_compare_exchange_strong_explicit(&jf.done, &d, d | 2, memory_order_relaxed,
                                                    memory_order_relaxed);
            continue;
        }
        ws_futex_wait(&jf.done, d, nap);
        if (nap < 1000000)
            nap *= 2;
    }
    return jf.result ? jf.result : rb;

done:
    if (with_ctx)
        ws_join_scope_end(s, &own, ctx);
    return ra ? ra : rb;
}
