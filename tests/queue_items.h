/*
 * tests/queue_items.h — the checked items the queue stress tests pass
 * through a deque or the injection queue.
 *
 * Item id carries its id three ways and points to a plain (non-atomic)
 * payload that the pusher writes before the push and the taker reads after
 * the pop: under ThreadSanitizer a too-weak ordering shows up as a data race
 * on the payload, and a torn or stale slot as a failed check.
 */
#ifndef WEFT_TESTS_QUEUE_ITEMS_H
#define WEFT_TESTS_QUEUE_ITEMS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "queue/wq_deque.h"
#include "tests/check.h"

#define CHECK_MUL 0x2545f4914f6cdd1dULL

typedef struct payload {
    uint64_t id;
    uint64_t check;
} payload;

/* Fills pl[id] (plain stores: published by the queue's release) and the item
 * that points to it. */
static inline void item_make(payload *pl, uint64_t id, wq_item *it)
{
    payload *p = &pl[id];
    p->id = id;
    p->check = id * CHECK_MUL;
    it->w[0] = (uintptr_t)p;
    it->w[1] = (uintptr_t)id;
    it->w[2] = (uintptr_t)~id;
    it->w[3] = (uintptr_t)(id * CHECK_MUL);
}

/* Checks an item taken from a queue of ids 0..n-1 and counts it in seen[id]
 * (it must be the first time); returns its id. */
static inline uint64_t item_check(const payload *pl, _Atomic(uint32_t) *seen, uint64_t n,
                                  const wq_item *it)
{
    uint64_t id = it->w[1];
    CHECK(id < n);
    CHECK_EQ(it->w[2], (uintptr_t)~id);
    CHECK_EQ(it->w[3], (uintptr_t)(id * CHECK_MUL));
    const payload *p = (const payload *)it->w[0];
    CHECK(p == &pl[id]);
    CHECK_EQ(p->id, id); /* plain loads: need the queue's acquire */
    CHECK_EQ(p->check, id * CHECK_MUL);
    uint32_t before = atomic_fetch_add_explicit(&seen[id], 1, memory_order_relaxed);
    if (before != 0) {
        fprintf(stderr, "item %llu taken twice\n", (unsigned long long)id);
        CHECK_EQ(before, 0);
    }
    return id;
}

#endif /* WEFT_TESTS_QUEUE_ITEMS_H */
