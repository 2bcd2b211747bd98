/*
 * queue/ring.c — the single-producer submission ring's consumer side (see
 * wq_ring.h; docs/inject.md, "Submission rings", has the argument).
 */
#include "queue/wq_ring.h"

#include <stdlib.h>
#include <string.h>

/* A test may compile this file in with a hook called between a consumer's
 * reads of the slots and its CAS (to widen the window in which the producer
 * laps a stale consumer). */
#ifndef WQ_RING_TEST_HOOK
#define WQ_RING_TEST_HOOK(r) ((void)(r))
#endif

wq_ring *wq_ring_new(void)
{
    wq_ring *r = aligned_alloc(WQ_CACHELINE, sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r); /* head_seen, tag, mark, common */
    atomic_init(&r->tail, 0);
    atomic_init(&r->head, 0);
    return r;
}

void wq_ring_free(wq_ring *r)
{
    free(r);
}

size_t wq_ring_pop_batch(wq_ring *r, wq_item *out, size_t max)
{
    if (max > WQ_RING_BATCH)
        max = WQ_RING_BATCH;
    /* Acquire pairs with the release of the CAS that wrote this value of
     * head: that consumer read tail >= it before, so our tail load below
     * (coherence-after its read) cannot be smaller than h. */
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    for (;;) {
        /* Acquire pairs with the producer's publish of tail (its seq_cst
         * RMW, or a light ring's release store): the slots below t were
         * written before. */
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (t == h)
            return 0;
        uint64_t n = t - h;
        if (n > max)
            n = max;
        for (uint64_t k = 0; k < n; k++) {
            _Atomic(uintptr_t) *s = r->slots[(h + k) & (WQ_RING_CAP - 1)];
            out[k].w[0] = atomic_load_explicit(&s[0], memory_order_relaxed);
            out[k].w[1] = atomic_load_explicit(&s[1], memory_order_relaxed);
        }
        WQ_RING_TEST_HOOK(r);
        /* Release pairs with the producer's acquire load of head (when it
         * looks full): our slot loads come before its rewrites of them.
         * On failure, acquire as the load above (h is a newer head). A
         * success names exactly the slots we read: head only grows, so it
         * still being h means nobody took them and the producer, which
         * rewrites slot h + k only after seeing head > h + k, has not
         * touched them. */
        if (atomic_compare_exchange_weak_explicit(&r->head, &h, h + n, memory_order_release,
                                                  memory_order_acquire)) {
            /* Ours now: common is what their producer set before pushing
             * them (our acquire load of tail saw the pushes), and nobody
             * sets it again before they have run (wq_ring_set_common). */
            for (uint64_t k = 0; k < n; k++) {
                out[k].w[2] = r->common[0];
                out[k].w[3] = r->common[1];
            }
            return (size_t)n;
        }
    }
}
