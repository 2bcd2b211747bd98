/*
 * queue/batch.c — the slow paths of a worker's batch (queue/wq_batch.h):
 * the fill, the owner's claim that met a rescue, and the rescue.
 */
#include "queue/wq_batch.h"

#include <sched.h>

/* A spin lock with a yield: held for a copy of at most WQ_BATCH_CAP items
 * (and, by a rescuer, one membarrier), and taken only when a rescue is
 * under way. Acquire and release: what one holder wrote, the next sees. */
static void wq_batch_lock(wq_batch *b)
{
    uint32_t z = 0;
    while (!atomic_compare_exchange_weak_explicit(&b->lock, &z, 1, memory_order_acquire,
                                                  memory_order_relaxed)) {
        z = 0;
        sched_yield();
    }
}

static void wq_batch_unlock(wq_batch *b)
{
    atomic_store_explicit(&b->lock, 0, memory_order_release);
}

void wq_batch_fill(wq_batch *b, const wq_item *items, size_t n)
{
    /* Empty: next == end, and no rescuer reads the items (one that came
     * since found none, and left end alone). */
    uint64_t e = atomic_load_explicit(&b->next, memory_order_relaxed);
    for (size_t k = 0; k < n; k++)
        b->items[(e + k) % WQ_BATCH_CAP] = items[k];
    /* Release pairs with a rescuer's acquire load of end. */
    atomic_store_explicit(&b->end, e + n, memory_order_release);
}

bool wq_batch_take_slow_(wq_batch *b, uint64_t i, wq_item *out)
{
    wq_batch_lock(b);
    /* Seen: a rescuer that comes after our unlock raises it again. */
    atomic_store_explicit(&b->rescue, 0, memory_order_relaxed);
    /* Relaxed: rescuers write end under the lock we hold. */
    uint64_t e = atomic_load_explicit(&b->end, memory_order_relaxed);
    bool mine = i < e;
    if (mine)
        *out = b->items[i % WQ_BATCH_CAP];
    else /* our claim came after a rescuer's look: it took item i on */
        atomic_store_explicit(&b->next, e, memory_order_relaxed);
    wq_batch_unlock(b);
    return mine;
}

size_t wq_batch_rescue(wq_batch *b, wq_item *out, bool (*barrier)(void))
{
    wq_batch_lock(b);
    /* seq_cst: the first half of the pairing with the owner's claim
     * (wq_batch_take): store rescue, then load next. */
    atomic_store_explicit(&b->rescue, 1, memory_order_seq_cst);
    /* light is set before the batch is shared and never changes. */
    if (b->light && !barrier()) {
        wq_batch_unlock(b);
        return 0; /* rescue stays raised: the owner's next claim lowers it */
    }
    uint64_t k = atomic_load_explicit(&b->next, memory_order_seq_cst);
    /* Acquire pairs with the owner's release store in wq_batch_fill. */
    uint64_t e = atomic_load_explicit(&b->end, memory_order_acquire);
    size_t n = 0;
    for (uint64_t i = k; i < e; i++)
        out[n++] = b->items[i % WQ_BATCH_CAP];
    /* Release pairs with the owner's acquire load of end: our reads of
     * the items come before its refill. */
    if (n)
        atomic_store_explicit(&b->end, k, memory_order_release);
    wq_batch_unlock(b);
    return n;
}
