/*
 * queue/deque.c — slow paths of the split work-stealing deque.
 * The memory-ordering argument is in docs/deque.md; each non-relaxed atomic
 * below names the operation it pairs with.
 */
#include "queue/wq_deque.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static wq_array *wq_array_new(int64_t capacity)
{
    wq_array *a = aligned_alloc(WQ_CACHELINE,
                                ((sizeof(wq_array) + capacity * sizeof(wq_slot)) + WQ_CACHELINE - 1)
                                    / WQ_CACHELINE * WQ_CACHELINE);
    if (!a)
        return NULL;
    a->mask = capacity - 1;
    a->garbage = NULL;
    return a;
}

int wq_deque_init(wq_deque *d, unsigned log2_capacity)
{
    memset(d, 0, sizeof *d);
    if (log2_capacity < 1 || log2_capacity > 40)
        return EINVAL;
    wq_array *a = wq_array_new((int64_t)1 << log2_capacity);
    if (!a)
        return ENOMEM;
    atomic_init(&d->top, 0);
    atomic_init(&d->split, 0);
    atomic_init(&d->array, a);
    atomic_init(&d->hint, 0);
    atomic_init(&d->user_mode, 0);
    atomic_init(&d->user_count, 0);
    atomic_init(&d->user_spawns, 0);
    atomic_init(&d->user_runs, 0);
    atomic_init(&d->user_open, 0);
    d->arr = a;
    return 0;
}

void wq_deque_destroy(wq_deque *d)
{
    wq_array *a = d->arr;
    while (a) {
        wq_array *older = a->garbage;
        free(a);
        a = older;
    }
    d->arr = NULL;
}

static int wq_deque_grow(wq_deque *d)
{
    /* Acquire pairs with the release half of the thieves' CAS on top: a slot
     * a thief read before its CAS is not rewritten before that read. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    d->top_seen = t;
    wq_array *old = d->arr;
    int64_t b = d->bottom;
    if (b - t <= old->mask)
        return 0; /* not full after all: thieves made room */
    int64_t cap = (old->mask + 1) * 2;
    if (cap > ((int64_t)1 << 40))
        return ENOMEM;
    wq_array *a = wq_array_new(cap);
    if (!a)
        return ENOMEM;
    for (int64_t i = t; i < b; i++) {
        wq_item it;
        wq_slot_load_(&old->slots[i & old->mask], &it);
        wq_slot_store_(&a->slots[i & a->mask], &it);
    }
    a->garbage = old;
    d->arr = a;
    /* Release pairs with the acquire load of array in wq_deque_steal: a thief
     * that sees the new array sees the copied slots. */
    atomic_store_explicit(&d->array, a, memory_order_release);
    return 0;
}

int wq_deque_push_slow_(wq_deque *d, const wq_item *it)
{
    /* Grows only if thieves have not made room meanwhile; room either way. */
    int err = wq_deque_grow(d);
    if (!err)
        wq_deque_try_put(d, it);
    return err;
}

int64_t wq_deque_publish(wq_deque *d, bool all)
{
    int64_t b = d->bottom, s = d->split_own;
    /* Clear the request first: one raised after this is not lost. */
    wq_deque_hint_clear(d, WQ_HINT_SPLIT);
    if (b <= s)
        return 0;
    int64_t ns = all ? b : s + (b - s + 1) / 2;
    d->split_own = ns;
    /* Release pairs with the seq_cst (hence acquire) load of split in
     * wq_deque_steal: a thief that sees the new split sees the slots the
     * owner wrote with relaxed stores in push. */
    atomic_store_explicit(&d->split, ns, memory_order_release);
    return ns - s;
}

bool wq_deque_take_shared_(wq_deque *d, wq_item *out)
{
    /* One shared item (the common case: sched/ publishes a push onto a
     * deque with nothing shared): race the thieves for it with the CAS on
     * top alone. A
     * thief takes index t only by the same CAS, so exactly one of us gets
     * it; split need not be lowered first. Acquire on the load and on the
     * CAS's failure pairs with the release half of the thieves' CAS, as in
     * wq_deque_grow (later pushes may reuse the slot via top_seen). */
    int64_t t1 = atomic_load_explicit(&d->top, memory_order_acquire);
    if (t1 == d->split_own - 1) {
        wq_slot_load_(&d->arr->slots[t1 & d->arr->mask], out);
        bool won = atomic_compare_exchange_strong_explicit(&d->top, &t1, t1 + 1,
                                                           memory_order_seq_cst,
                                                           memory_order_acquire);
        /* Either way top is now split: the deque is empty. */
        d->top_seen = d->split_own;
        return won;
    }
    if (t1 >= d->split_own) {
        d->top_seen = t1;
        return false; /* nothing shared either */
    }
    int64_t s = d->split_own - 1;
    /* The Chase-Lev StoreLoad: the store of split, a seq_cst fence and the
     * seq_cst load of top pair with the seq_cst load of top and load of
     * split in wq_deque_steal. In the single total order either the thief
     * sees the lowered split, or the owner sees the thief's top; both
     * cannot miss (a thief's stale split precedes the fence in S, the
     * CAS that moved top past what we read follows it). The fence rather
     * than a seq_cst store: gcc makes that an STLR followed by our LDAR,
     * which ARMv8 keeps in order but qemu-user on an x86 host does not (it
     * fences neither between them), and the ARM64 leg then saw one item
     * taken twice in about 1 run of 5 of queue_deque_stress; with the fence
     * (DMB ISH, a full fence under qemu too) 0 of 40. On x86 this is the
     * MFENCE the seq_cst store cost before. The store itself is a release
     * (free on x86, an STLR on ARM64): a thief that reads the lowered split
     * and steals below it then synchronizes with this store, not through a
     * same-thread release sequence from the publish (C++20 dropped
     * those). */
    atomic_store_explicit(&d->split, s, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    d->top_seen = t;
    if (t > s) {
        /* Empty: restore split (no thief can take anything at or above it). */
        atomic_store_explicit(&d->split, s + 1, memory_order_relaxed);
        return false;
    }
    wq_slot_load_(&d->arr->slots[s & d->arr->mask], out);
    if (t < s) {
        /* More than one shared item: thieves take from top < s, never s. */
        d->split_own = s;
        d->bottom = s;
        return true;
    }
    /* The last item: race thieves for it with a strong CAS on top (a weak
     * one could fail spuriously and lose the item). seq_cst pairs with the
     * thieves' CAS on top. */
    /* Failure order acquire: a lost race reads the thief's top, and our
     * later pushes may reuse slot s on the strength of it (top_seen), so it
     * must pair with the release half of the thief's CAS like grow's load. */
    bool won = atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                       memory_order_acquire);
    /* Either way top is now s + 1: the deque is empty. */
    atomic_store_explicit(&d->split, s + 1, memory_order_relaxed);
    d->split_own = s + 1;
    d->bottom = s + 1;
    d->top_seen = s + 1;
    return won;
}

int wq_deque_steal(wq_deque *d, wq_item *out)
{
    /* seq_cst loads of top then split pair with the owner's store of split,
     * seq_cst fence and seq_cst load of top in wq_deque_take_shared_ (the
     * StoreLoad race on the last item); the split load is also the acquire
     * that pairs with the release stores of split in wq_deque_publish and
     * wq_deque_take_shared_. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t s = atomic_load_explicit(&d->split, memory_order_seq_cst);
    if (t >= s) {
        /* Nothing shared: ask the owner to publish (read first, so that a
         * crowd of thieves does not keep the line bouncing). */
        wq_deque_hint_set(d, WQ_HINT_SPLIT);
        return WQ_EMPTY;
    }
    /* Acquire pairs with the release store of array in wq_deque_grow. Any
     * array we may see holds item t unchanged, or top has moved past t and
     * the CAS below fails. Old arrays are freed only with the deque. */
    wq_array *a = atomic_load_explicit(&d->array, memory_order_acquire);
    wq_slot_load_(&a->slots[t & a->mask], out);
    /* seq_cst CAS pairs with the owner's CAS on top for the last item and
     * with its acquire load of top in wq_deque_grow (release half). */
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return WQ_RETRY;
    /* We took the last shared item (as far as the split we read says): tell
     * the owner, whose next push then makes work stealable again. */
    if (t + 1 >= s)
        wq_deque_hint_set(d, WQ_HINT_DRAINED);
    return WQ_STOLEN;
}
