/*
 * sched/join.c — binary fork-join. On a worker, a's frame lives on the
 * joiner's stack and only a four-word item is pushed: no allocation, and no
 * atomic at all when nobody steals a.
 */
#include "sched/observe.h"

#include <unistd.h>

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

/* Not on a worker: run both on the default pool and sleep until done. All
 * or nothing: if the flow cannot be opened, nothing ran (its error); a
 * half that cannot be spawned (no memory for the injection queue's
 * overflow) runs right here instead, so each half runs exactly once. */
__attribute__((noinline)) static int ws_join_elsewhere(weft_fn a, void *arg_a, weft_fn b, void *arg_b)
{
    ws_join_half ha = {a, arg_a, 0}, hb = {b, arg_b, 0};
    weft_flow flow;
    int err = weft_flow_open(&flow, NULL);
    if (err)
        return err;
    if (weft_spawn(&flow, ws_join_half_run, &ha) != 0)
        ws_join_half_run(&ha);
    if (weft_spawn(&flow, ws_join_half_run, &hb) != 0)
        ws_join_half_run(&hb);
    /* The halves report 0 to the flow, and nothing cancels it: only the
     * flow's own misuse codes could come back, and it is ours. */
    int cerr = weft_flow_close(&flow);
    if (cerr)
        return cerr;
    return ha.result ? ha.result : hb.result;
}

/* Leaves the halves' scope: ours is left; the joiner's is reset. */
static inline void ws_join_scope_end(wctx_scope *s, wctx_scope *own, struct weft_ctx *ctx)
{
    if (!s)
        return; /* a NO_CTX pool: no scope */
    if (s == own)
        wctx_leave(own);
    else
        wctx_reset(s, ctx);
}

/* After b, when a was not at once ours to take back: take items back until
 * a's (run it inline) or the mark (a was stolen: help until the thief is
 * done). Index mark holds our item unless a helper nested in b already ran
 * it (done is then set, by this thread) and something else was pushed there
 * since; a stolen item leaves no private item at mark (top is past it).
 * Items that b left above the mark are run on the way. */
__attribute__((noinline)) static int ws_join_rest(ws_worker *w, ws_join_frame *jf, int64_t mark,
                                                  int rb, wctx_scope *s, wctx_scope *own,
                                                  struct weft_ctx *ctx)
{
    const uintptr_t tag = (uintptr_t)jf | WS_JOIN;
    wq_item got;
    ws_check_forked(w); /* b forked: the child must not run a or b's items */
    WS_STAT(w, tasks_spawned, 1); /* a, offered: run below or by a thief */
    while (wq_deque_bottom(&w->deque) > mark && ws_take(w, &got)) {
        if (got.w[2] == tag) { /* a, as offered */
            weft_fn a = (weft_fn)got.w[0];
            ws_task_begin(w, a, jf);
            int ra = a((void *)got.w[1]);
            ws_task_end(w, a, jf, ra);
            ws_join_scope_end(s, own, ctx);
            return ra ? ra : rb;
        }
        ws_run(w, &got, true);
    }
    ws_join_scope_end(s, own, ctx);

    /* Stolen: help until the thief is done. */
    long nap = 50000;
    for (unsigned spins = 0;;) {
        /* Acquire pairs with the release fetch_or in ws_run_join. */
        uint32_t d = atomic_load_explicit(&jf->done, memory_order_acquire);
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
            atomic_compare_exchange_strong_explicit(&jf->done, &d, d | 2, memory_order_relaxed,
                                                    memory_order_relaxed);
            continue;
        }
        ws_futex_wait(&jf->done, d, nap);
        if (nap < 1000000)
            nap *= 2;
    }
    return jf->result ? jf->result : rb;
}

/* The deque is full: grow it and push. (Out of line, so that the item of
 * the fast path never needs an address and stays in registers.) */
__attribute__((noinline)) static int ws_join_push_slow(wq_deque *d, weft_fn a, void *arg_a,
                                                       ws_join_frame *jf, struct weft_ctx *ctx)
{
    wq_item it = {{(uintptr_t)a, (uintptr_t)arg_a, (uintptr_t)jf | WS_JOIN, (uintptr_t)ctx}};
    return wq_deque_push_slow_(d, &it);
}

/* Offers a (the item points to jf), runs b, takes a back and runs it, all
 * in scope s (NULL on a NO_CTX pool) holding the joiner's context ctx:
 * borrowed, as we do not return before a is done. A set made by b is
 * dropped before a runs, so each half starts from the joiner's context, as
 * a spawned task would. own is s when s is a scope of the join's own. */
__attribute__((always_inline)) static inline int ws_join_run(ws_worker *w, weft_fn a, void *arg_a,
                                                           weft_fn b, void *arg_b, wctx_scope *s,
                                                           wctx_scope *own, struct weft_ctx *ctx)
{
    wq_deque *d = &w->deque;
    ws_join_frame jf;
    atomic_init(&jf.done, 0);
    jf.flow = ws_cur_flow; /* jf.result is written by a thief, if any */
    wq_item it = {{(uintptr_t)a, (uintptr_t)arg_a, (uintptr_t)&jf | WS_JOIN, (uintptr_t)ctx}};
    int64_t mark = wq_deque_bottom(d);
    if (WS_UNLIKELY(!wq_deque_try_put(d, &it)) && ws_join_push_slow(d, a, arg_a, &jf, ctx) != 0) {
        /* No memory to offer a: run both here, in order. */
        int ra = a(arg_a);
        if (s)
            wctx_reset(s, ctx);
        int rb = b(arg_b);
        ws_join_scope_end(s, own, ctx);
        return ra ? ra : rb;
    }
    WS_PROBE4(spawn, w->pool, w->index, &jf, a);
    ws_after_push(w);

    int rb = b(arg_b);
    ws_check_forked(w); /* b forked: the child must not run a (one compare) */
    if (s)
        wctx_reset(s, ctx);
    /* The common case: a is still our newest, private item (nothing was
     * stolen and b left nothing): drop it without copying it, and run it. */
    if (WS_LIKELY(wq_deque_bottom(d) == mark + 1 &&
                  !atomic_load_explicit(&jf.done, memory_order_relaxed) &&
                  wq_deque_drop_private(d))) {
        ws_task_begin(w, a, &jf);
        int ra = a(arg_a);
        ws_join_inline_end(w, a, &jf, ra);
        ws_join_scope_end(s, own, ctx);
        return ra ? ra : rb;
    }
    return ws_join_rest(w, &jf, mark, rb, s, own, ctx);
}

/* Every join but a worker's in a clean scope (see weft_join). */
__attribute__((noinline)) static int ws_join_other(weft_fn a, void *arg_a, weft_fn b,
                                                   void *arg_b)
{
    if (!a || !b)
        return EINVAL;
    ws_worker *w = ws_self;
    if (!w)
        return ws_join_elsewhere(a, arg_a, b, arg_b);
    wctx_scope own;
    struct weft_ctx *ctx = NULL;
    if (w->with_ctx) {
        ctx = wctx_current();
        wctx_enter(&own, ctx);
        return ws_join_run(w, a, arg_a, b, arg_b, &own, &own, ctx);
    }
    /* A NO_CTX pool's worker inside a weft_ctx_run: halves see the worker's
     * base context, as its tasks do. */
    wctx_scope *outer = wctx_top;
    wctx_top = NULL;
    int r = ws_join_run(w, a, arg_a, b, arg_b, NULL, NULL, NULL);
    wctx_top = outer;
    return r;
}

int weft_join(weft_fn a, void *arg_a, weft_fn b, void *arg_b)
{
    /* The common join: a worker's, in a clean scope (it owns nothing, so its
     * context is the one it started with), which serves both halves, reset
     * after each, as the owner's drain in flow.c does; on a NO_CTX pool, in
     * no scope at all. */
    ws_worker *w = ws_self;
    wctx_scope *s = wctx_top;
    if (WS_LIKELY(a && b && w && (w->with_ctx ? s && !s->owned : !s)))
        return ws_join_run(w, a, arg_a, b, arg_b, s, NULL, s ? s->cur : NULL);
    return ws_join_other(a, arg_a, b, arg_b);
}

/* ---- the library's ends of the inline join (include/weft_inline.h) ----- */

/* The inline join pushed and the hint word was nonzero. */
void weft_join_more_(struct weft_owner_ *o)
{
    ws_worker *w = ws_self;
    if (w && ws_owner_line(w) == o)
        ws_after_push_slow(w);
}

/* The inline join's half was not at once ours to take back (or this is a
 * fork child of the worker: then it exits, as ws_check_forked). */
int weft_join_rest_(struct weft_frame_ *jf, int rb)
{
    ws_worker *w = ws_self;
    if (!w)
        _exit(0);
    return ws_join_rest(w, (ws_join_frame *)(void *)jf, jf->mark, rb, wctx_top, NULL, jf->ctx);
}
