/*
 * queue/wq_batch.h — a worker's batch: items it took from a submission ring
 * or the injection queue in one claim and runs one by one, with no atomic
 * read-modify-write and no fence per item, yet which an idle peer can
 * still take over ("rescue") when the owner is stuck in a long task
 * (docs/inject.md, "A worker's batch", has the argument;
 * tests/model/batch_rescue.pml checks it).
 *
 * next and end are monotonic counters; items[i % WQ_BATCH_CAP] holds item
 * i for next <= i < end. Only the owner fills (when next == end) and takes
 * (next += 1). A rescuer lowers end to the owner's next and takes the
 * items in between, under lock, after raising rescue.
 *
 * The pairing is Dekker's, two ways:
 *   owner:   store next = i + 1;  load rescue   (then item i is its own,
 *            unless rescue was set: then the lock and end decide)
 *   rescuer: store rescue = 1;    load next     (items from next on are
 *            its own, unless the owner's claim is in flight: that claim
 *            then sees rescue)
 * Either with seq_cst on both sides, or (light, where membarrier works:
 * sched/asym.c) with a plain store and load in the owner and a membarrier
 * between the rescuer's store and load, which runs a full barrier in the
 * owner at some point of its program: the same asymmetric fence as the
 * light rings'. rescue stays raised until the owner's slow path lowers it
 * under lock, so an owner never misses a rescue that began after its
 * claim became visible.
 */
#ifndef WEFT_QUEUE_WQ_BATCH_H
#define WEFT_QUEUE_WQ_BATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "queue/wq_deque.h"

enum { WQ_BATCH_CAP = 32 };

typedef struct wq_batch {
    /* The owner's line: next (read by rescuers), end, rescue. */
    _Alignas(WQ_CACHELINE) _Atomic(uint64_t) next;
    _Atomic(uint64_t) end;
    _Atomic(uint32_t) rescue; /* a rescuer came: the owner must look */
    _Atomic(uint32_t) lock;   /* rescuers and the owner's slow path */
    bool light;               /* the owner's: plain claims (set while empty) */
    wq_item items[WQ_BATCH_CAP];
} wq_batch;

/* The owner, while the batch is empty and before it is shared (zeroed
 * memory is an empty, seq_cst batch). */
static inline void wq_batch_init(wq_batch *b, bool light)
{
    b->light = light;
}

/* The owner: whether it holds no item. Acquire pairs with a rescuer's
 * release store of end: the rescuer's reads of the items it took come
 * before the owner's refill overwrites them. */
static inline bool wq_batch_empty(wq_batch *b)
{
    return atomic_load_explicit(&b->next, memory_order_relaxed) >=
           atomic_load_explicit(&b->end, memory_order_acquire);
}

/* The owner, when wq_batch_empty: puts items[0..n) (n <= WQ_BATCH_CAP), to
 * be taken in that order. Release store of end pairs with a rescuer's
 * acquire load (it reads the items). Wakes nobody: the caller makes the
 * pairing with parked workers (sched/: ws_notify). */
void wq_batch_fill(wq_batch *b, const wq_item *items, size_t n);

bool wq_batch_take_slow_(wq_batch *b, uint64_t i, wq_item *out);

/* The owner: takes the oldest item into out; false when none is left.
 * Light: a relaxed store and load; else a seq_cst store and load. Either
 * way no RMW; after a rescue, the lock. Wakes nobody. */
static inline bool wq_batch_take(wq_batch *b, wq_item *out)
{
    uint64_t i = atomic_load_explicit(&b->next, memory_order_relaxed);
    if (i >= atomic_load_explicit(&b->end, memory_order_acquire))
        return false;
    uint32_t r;
    if (__builtin_expect(b->light, 1)) {
        atomic_store_explicit(&b->next, i + 1, memory_order_relaxed);
        /* The store before the load, in the compiler's order at least: a
         * rescuer's membarrier orders them in the hardware's. */
        atomic_signal_fence(memory_order_seq_cst);
        r = atomic_load_explicit(&b->rescue, memory_order_relaxed);
    } else {
        /* seq_cst pair with the rescuer's seq_cst store of rescue and load
         * of next (wq_batch_rescue). */
        atomic_store_explicit(&b->next, i + 1, memory_order_seq_cst);
        r = atomic_load_explicit(&b->rescue, memory_order_seq_cst);
    }
    if (__builtin_expect(r != 0, 0))
        return wq_batch_take_slow_(b, i, out);
    *out = b->items[i % WQ_BATCH_CAP];
    return true;
}

/* Any thread (a hint, relaxed): the owner's next, and whether items are
 * left; a rescuer watches next stand still before it rescues. */
static inline bool wq_batch_peek(wq_batch *b, uint64_t *next)
{
    uint64_t n = atomic_load_explicit(&b->next, memory_order_relaxed);
    *next = n;
    return n < atomic_load_explicit(&b->end, memory_order_relaxed);
}

/* Any thread: whether items are left, with seq_cst loads (a parking
 * worker's recheck, after its announce: see sched/park.c). */
static inline bool wq_batch_nonempty(wq_batch *b)
{
    uint64_t n = atomic_load_explicit(&b->next, memory_order_seq_cst);
    return n < atomic_load_explicit(&b->end, memory_order_seq_cst);
}

/* Any thread but the owner: takes every item the owner has not claimed
 * into out (up to WQ_BATCH_CAP) and returns how many; 0 when none was
 * left, or when barrier (for a light batch: the membarrier, called between
 * the store of rescue and the load of next) returned false. Takes the
 * lock (rescuers wait for each other and for the owner's slow path).
 * Wakes nobody: the caller notifies for what it keeps (sched/pool.c). */
size_t wq_batch_rescue(wq_batch *b, wq_item *out, bool (*barrier)(void));

#endif /* WEFT_QUEUE_WQ_BATCH_H */
