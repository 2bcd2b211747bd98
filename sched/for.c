/*
 * sched/for.c — weft_for: recursive halving with weft_join, so thieves take
 * the larger, older halves first.
 */
#include "sched/ws.h"

typedef struct ws_range {
    size_t        begin, end, grain;
    weft_range_fn fn;
    void         *arg;
} ws_range;

static int ws_range_run(void *p)
{
    ws_range *r = p;
    /* Under a canceled flow (the caller's, or on another pool the flow
     * weft_for opened below it) pieces not yet started are skipped, on
     * every pool alike; the join hands ECANCELED up. */
    ws_flow *f = ws_cur_flow;
    if (f && ws_flow_canceled_fast(f))
        return ECANCELED;
    if (r->end - r->begin > r->grain) {
        size_t mid = r->begin + (r->end - r->begin) / 2;
        ws_range right = {mid, r->end, r->grain, r->fn, r->arg};
        ws_range left = {r->begin, mid, r->grain, r->fn, r->arg};
        /* Offer the right half, recurse into the left inline. */
        return weft_join(ws_range_run, &right, ws_range_run, &left);
    }
    r->fn(r->begin, r->end, r->arg);
    return 0;
}

int weft_for(weft_pool *pool, size_t begin, size_t end, size_t grain, weft_range_fn fn, void *arg)
{
    if (!fn || begin > end)
        return EINVAL;
    if (begin == end)
        return 0;
    ws_worker *w = ws_self;
    int err = 0;
    if (!pool)
        pool = w ? w->pool : ws_default_pool(&err);
    if (!pool)
        return err;
    if (!ws_pool_usable(pool))
        return EINVAL;
    size_t n = end - begin;
    if (grain == 0) {
        /* About eight pieces per worker: enough slack to balance. */
        grain = n / ((size_t)pool->nworkers * 8);
        if (grain == 0)
            grain = 1;
    }
    ws_range root = {begin, end, grain, fn, arg};
    if (w && w->pool == pool) {
        if (pool->flags & WEFT_POOL_NO_CTX)
            return ws_range_run(&root);
        /* Pieces are like tasks: a set inside one stays inside it. Joins
         * give the halves scopes of their own; the root needs one too. */
        wctx_scope s;
        wctx_enter(&s, wctx_current());
        int r = ws_range_run(&root);
        wctx_leave(&s);
        return r;
    }
    /* Elsewhere: run the root as a task of the pool and wait for it. */
    weft_flow flow;
    err = weft_flow_open(&flow, pool);
    if (err)
        return err;
    err = weft_spawn(&flow, ws_range_run, &root);
    int cerr = weft_flow_close(&flow);
    return err ? err : cerr;
}
