/*
 * queue/wq_deque.h — the per-worker work-stealing deque.
 *
 * A Chase-Lev deque split in two (the idea of Lace's split deque, our own
 * formulation; docs/deque.md has the argument):
 *
 *      top                split                bottom
 *       |   shared: thieves  |   private: owner    |
 *       v   steal here       v   only              v
 *   ... [ a ][ b ][ c ][ d ][ e ][ f ][ g ] ...
 *
 * Items in [top, split) may be stolen; items in [split, bottom) are the
 * owner's alone, so the owner pushes and takes them with plain (relaxed)
 * accesses: no fence, no locked instruction. A thief that finds the shared
 * part empty raises WQ_HINT_SPLIT in the owner's hint word; the owner notices on its next push and
 * publishes the older half of its private items with one release store of
 * split. (sched/ also publishes when the shared part is empty and another
 * worker exists: see ws_after_push.) Only when the private part is empty
 * does the owner take from the
 * shared part, and then it runs the Chase-Lev take protocol on split
 * (Lê, Pop, Cohen, Zappa Nardelli, PPoPP 2013) with split in bottom's role.
 *
 * Items are four machine words, stored in atomic slots accessed relaxed
 * (a stale thief may read a slot the owner is rewriting; it then loses its
 * CAS on top and discards what it read). Indices are signed 64-bit and only
 * grow, so there is no underflow and no wrap in practice (2^63 steals).
 *
 * The array grows when full; old arrays stay on a garbage list until the
 * deque is destroyed, because a thief may still be reading one. Their total
 * size is below the largest one's, so memory stays bounded by 2x the peak.
 *
 * Threading: wq_deque_put/push/take/publish/bottom are for the owner
 * thread only; wq_deque_steal and wq_deque_stealable for any thread.
 */
#ifndef WEFT_QUEUE_WQ_DEQUE_H
#define WEFT_QUEUE_WQ_DEQUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WQ_CACHELINE 64

typedef struct wq_item {
    uintptr_t w[4];
} wq_item;

typedef struct wq_slot {
    _Atomic(uintptr_t) w[4];
} wq_slot;

typedef struct wq_array {
    int64_t          mask;    /* capacity - 1; capacity is a power of two */
    struct wq_array *garbage; /* older arrays, kept until the deque dies */
    wq_slot          slots[];
} wq_array;

typedef struct wq_deque {
    /* Thieves' line: read by every steal, CASed by successful ones. */
    _Alignas(WQ_CACHELINE) _Atomic(int64_t) top;
    _Atomic(int64_t) split;
    _Atomic(wq_array *) array;

    /* Owner's line: the owner's fields, and the one word its pushes read. */
    _Alignas(WQ_CACHELINE) int64_t bottom;
    int64_t   split_own; /* the owner's copy of split (it is the only writer) */
    int64_t   top_seen;  /* a lower bound of top, to detect "full" cheaply */
    wq_array *arr;       /* the owner's copy of array */
    /* Nonzero: the owner's next push has more to do than the push.
     * WQ_HINT_SPLIT: a starving thief asks for a publish (set by
     * wq_deque_steal, cleared by wq_deque_publish). WQ_HINT_DRAINED: the
     * shared part was emptied (set by wq_deque_steal when it took the last
     * shared item, and by sched/ after a shared take; sched/ clears it).
     * The bits above are the layer above's. Relaxed: a hint, set by any thread
     * with a read first (fetch_or only when the bit is clear, so a crowd of
     * thieves does not keep the owner's line bouncing) and cleared by the
     * owner. It sits on the owner's line so that a push reads one line it
     * owns anyway; a thief writes it once per request. */
    _Atomic(uint32_t) hint;
    /* The layer above's (sched/: the public fast path's mode word, its
     * counters of inline joins, spawns and drained tasks, the owner's count
     * of open flows and the depth it last recorded; include/weft_inline.h
     * freezes this layout from bottom on). The last two spill onto the
     * next line, which only the owner writes too. */
    _Atomic(uint32_t) user_mode;
    _Atomic(uint64_t) user_count;
    _Atomic(uint64_t) user_spawns;
    _Atomic(uint64_t) user_runs;
    _Atomic(int64_t)  user_open;
    int64_t           user_depth;
} wq_deque;

enum { WQ_HINT_SPLIT = 1u, WQ_HINT_DRAINED = 2u };

enum { WQ_EMPTY = 0, WQ_STOLEN = 1, WQ_RETRY = 2 };

/* log2_capacity: initial capacity (it grows). 0 or ENOMEM. */
int  wq_deque_init(wq_deque *d, unsigned log2_capacity);
void wq_deque_destroy(wq_deque *d);

/* Slow paths of the inline owner operations. */
int  wq_deque_push_slow_(wq_deque *d, const wq_item *it); /* grow, then put */
bool wq_deque_take_shared_(wq_deque *d, wq_item *out);

/* Owner: moves private items into the shared part: half of them (rounded
 * up), or all when all is true. Clears WQ_HINT_SPLIT. Returns how many it
 * made stealable (0 when the private part was empty): a caller with
 * sleepers to wake must then notify (sched/park.c, ws_publish). */
int64_t wq_deque_publish(wq_deque *d, bool all);

static inline void wq_slot_store_(wq_slot *s, const wq_item *it)
{
    atomic_store_explicit(&s->w[0], it->w[0], memory_order_relaxed);
    atomic_store_explicit(&s->w[1], it->w[1], memory_order_relaxed);
    atomic_store_explicit(&s->w[2], it->w[2], memory_order_relaxed);
    atomic_store_explicit(&s->w[3], it->w[3], memory_order_relaxed);
}

static inline void wq_slot_load_(wq_slot *s, wq_item *it)
{
    it->w[0] = atomic_load_explicit(&s->w[0], memory_order_relaxed);
    it->w[1] = atomic_load_explicit(&s->w[1], memory_order_relaxed);
    it->w[2] = atomic_load_explicit(&s->w[2], memory_order_relaxed);
    it->w[3] = atomic_load_explicit(&s->w[3], memory_order_relaxed);
}

/* Owner: whether nothing is shared (thieves would find the deque empty).
 * top is read relaxed: a stale (smaller) value only says "not empty". */
static inline bool wq_deque_shared_empty(const wq_deque *d)
{
    return atomic_load_explicit(&d->top, memory_order_relaxed) >= d->split_own;
}

/* Owner: whether a starving thief asked for a publish (honor it with
 * wq_deque_publish(d, false) soon: on the next push or take). */
static inline bool wq_deque_split_wanted(const wq_deque *d)
{
    return (atomic_load_explicit(&d->hint, memory_order_relaxed) & WQ_HINT_SPLIT) != 0;
}

/* Owner: the whole hint word; zero says a push has nothing more to do. */
static inline uint32_t wq_deque_hint(const wq_deque *d)
{
    return atomic_load_explicit(&d->hint, memory_order_relaxed);
}

/* Any thread: sets bits of the hint word (read first: no RMW when they are
 * set already). Relaxed: a hint. */
static inline void wq_deque_hint_set(wq_deque *d, uint32_t bits)
{
    if ((atomic_load_explicit(&d->hint, memory_order_relaxed) & bits) != bits)
        atomic_fetch_or_explicit(&d->hint, bits, memory_order_relaxed);
}

/* Owner: clears bits of the hint word (no RMW when they are clear). A set
 * racing with it is kept unless it is of the same bits. */
static inline void wq_deque_hint_clear(wq_deque *d, uint32_t bits)
{
    if (atomic_load_explicit(&d->hint, memory_order_relaxed) & bits)
        atomic_fetch_and_explicit(&d->hint, ~bits, memory_order_relaxed);
}

static inline bool wq_deque_try_put_(wq_deque *d, const wq_item *it, bool fourth)
{
    int64_t b = d->bottom;
    if (__builtin_expect(b - d->top_seen > d->arr->mask, 0))
        return false;
    wq_slot *s = &d->arr->slots[b & d->arr->mask];
    atomic_store_explicit(&s->w[0], it->w[0], memory_order_relaxed);
    atomic_store_explicit(&s->w[1], it->w[1], memory_order_relaxed);
    atomic_store_explicit(&s->w[2], it->w[2], memory_order_relaxed);
    if (fourth)
        atomic_store_explicit(&s->w[3], it->w[3], memory_order_relaxed);
    /* Private: no ordering needed until publish's release store of split. */
    d->bottom = b + 1;
    return true;
}

/* Owner: pushes it at the bottom, into the private part, if the array has
 * room; false when it is full (wq_deque_put grows it). Leaves the hint
 * to the caller (wq_deque_split_wanted), so that a caller's fast path can
 * do its own work first and keep any call for its end. */
static inline bool wq_deque_try_put(wq_deque *d, const wq_item *it)
{
    return wq_deque_try_put_(d, it, true);
}

/* Owner: wq_deque_try_put of the first three words only: the slot's fourth
 * keeps an old value, for a caller whose first three say it is unused. */
static inline bool wq_deque_try_put3(wq_deque *d, const wq_item *it)
{
    return wq_deque_try_put_(d, it, false);
}

/* Owner: pushes it at the bottom, into the private part, growing the array
 * when it is full. 0 or ENOMEM. Leaves the hint to the caller: sched/
 * publishes with a notify (a publish makes work visible, and a sleeper must
 * hear of it), which this layer cannot do. */
static inline int wq_deque_put(wq_deque *d, const wq_item *it)
{
    if (__builtin_expect(wq_deque_try_put(d, it), 1))
        return 0;
    return wq_deque_push_slow_(d, it);
}

/* Owner: wq_deque_put, then honors WQ_HINT_SPLIT (for users with no sleepers
 * to notify: the queue tests and benchmarks). 0 or ENOMEM. */
static inline int wq_deque_push(wq_deque *d, const wq_item *it)
{
    int err = wq_deque_put(d, it);
    if (!err && __builtin_expect(wq_deque_split_wanted(d), 0))
        wq_deque_publish(d, false);
    return err;
}

/* Owner: takes the newest item if it is private and returns its slot, to be
 * read (wq_slot_load_ or field by field) before the next push; NULL when the
 * private part is empty. */
static inline wq_slot *wq_deque_take_private(wq_deque *d)
{
    int64_t b = d->bottom;
    if (__builtin_expect(b <= d->split_own, 0))
        return NULL;
    d->bottom = --b;
    return &d->arr->slots[b & d->arr->mask];
}

/* Owner: the newest item's slot if it is private, else NULL. The item stays
 * in the deque: read it, then take it with wq_deque_drop_private. */
static inline wq_slot *wq_deque_peek_private(wq_deque *d)
{
    int64_t b = d->bottom;
    if (__builtin_expect(b <= d->split_own, 0))
        return NULL;
    return &d->arr->slots[(b - 1) & d->arr->mask];
}

/* Owner: takes the newest item (LIFO) without looking at the hint (sched/
 * honors it first, with a notify). false when the deque is empty. */
static inline bool wq_deque_take_no_publish(wq_deque *d, wq_item *out)
{
    wq_slot *s = wq_deque_take_private(d);
    if (__builtin_expect(s != NULL, 1)) {
        wq_slot_load_(s, out);
        return true;
    }
    return wq_deque_take_shared_(d, out);
}

/* Owner: honors WQ_HINT_SPLIT (an owner that only takes, working through a
 * batch, must not starve the thieves), then takes the newest item. false
 * when the deque is empty. For users with no sleepers to notify. */
static inline bool wq_deque_take(wq_deque *d, wq_item *out)
{
    if (__builtin_expect(wq_deque_split_wanted(d), 0))
        wq_deque_publish(d, false);
    return wq_deque_take_no_publish(d, out);
}

/* Owner: drops the newest item if it is private, without reading it (the
 * caller knows what it pushed). false: it is shared, or gone. */
static inline bool wq_deque_drop_private(wq_deque *d)
{
    int64_t b = d->bottom;
    if (__builtin_expect(b > d->split_own, 1)) {
        d->bottom = b - 1;
        return true;
    }
    return false;
}

/* Owner: the index one past the newest item. Items pushed later get larger
 * indices, so a caller can take back "everything pushed since" a mark. */
static inline int64_t wq_deque_bottom(const wq_deque *d)
{
    return d->bottom;
}

/* Owner: at least the number of items in the deque (top_seen is a lower
 * bound of top), with no shared access. */
static inline int64_t wq_deque_size_bound(const wq_deque *d)
{
    return d->bottom - d->top_seen;
}

/* Owner: the number of items in the deque now (a thief may take one the
 * next moment). Refreshes top_seen: acquire pairs with the release half
 * of the thieves' CAS on top, as in wq_deque_grow, since later pushes may
 * reuse slots on the strength of it. */
static inline int64_t wq_deque_size(wq_deque *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    d->top_seen = t;
    return d->bottom - t;
}

/* Owner: how many more items wq_deque_try_put takes without failing (a
 * lower bound, with no shared access: top_seen is a lower bound of top). */
static inline int64_t wq_deque_room(const wq_deque *d)
{
    return d->arr->mask + 1 - (d->bottom - d->top_seen);
}

/* Owner: whether there are private items that thieves cannot see. */
static inline bool wq_deque_has_private(const wq_deque *d)
{
    return d->bottom > d->split_own;
}

/* Any thread: steals the oldest shared item. WQ_STOLEN, WQ_EMPTY, or
 * WQ_RETRY when it lost a race (the deque may still have items). */
int wq_deque_steal(wq_deque *d, wq_item *out);

/* Any thread: whether a steal could succeed now (a hint; seq_cst loads so
 * that a sleeper's last check pairs with a publisher's, see sched/park.c). */
static inline bool wq_deque_stealable(wq_deque *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t s = atomic_load_explicit(&d->split, memory_order_seq_cst);
    return t < s;
}

#endif /* WEFT_QUEUE_WQ_DEQUE_H */
