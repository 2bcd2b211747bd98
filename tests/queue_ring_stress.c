/*
 * tests/queue_ring_stress.c — the single-producer submission ring
 * (queue/wq_ring.h): every item taken exactly once, by several consumers,
 * while the ring changes producers.
 *
 *  1. sequential: FIFO, batch pops never larger than asked (nor than
 *     WQ_RING_BATCH), full at exactly WQ_RING_CAP, empty pops, a full ring
 *     that accepts again after a pop, and every item carrying the common
 *     words (wq_ring_set_common) set while the ring was empty, a new pair
 *     each lap.
 *  2. concurrent: three producer threads take turns as the ring's producer
 *     (a lease handed over through a mutex, as sched/ hands rings from one
 *     flow's opener to the next) and push ids in order; three consumers
 *     pop batches of 1..32 and check each item (tests/queue_items.h; its
 *     last two words are the ring's common pair, set once): every
 *     id is seen exactly once, each consumer sees ids in increasing order
 *     (the ring is FIFO and every batch is a run), and the ring is empty at
 *     the end; once with tail published by a seq_cst RMW, once by a
 *     release store (a light ring: sched/asym.c). One pop in 7 yields
 *     between its slot reads and its CAS
 *     (queue/ring.c's WQ_RING_TEST_HOOK), so a producer laps stale
 *     consumers, whose CAS must fail.
 *
 * This test compiles queue/ring.c in with a ring of 16 slots, so pushes
 * find it full all the time and every slot is reused every 16 items. Items
 * point to plain payloads written by the producer before the push and read
 * by the consumer after the pop: under ThreadSanitizer a publication that
 * is not release/acquire shows up as a data race; a ring that overwrites
 * unread slots (no full check) or claims what it did not read (a CAS that
 * is not one) as a lost or doubled id in any build. The counts shrink
 * under ThreadSanitizer and follow $WEFT_TEST_SCALE.
 */
#include <stdatomic.h>
#include <sched.h>

#define WQ_RING_LOG2 4
static _Atomic(unsigned) hook_n;
#define WQ_RING_TEST_HOOK(r)                                                        \
    do {                                                                            \
        (void)(r);                                                                  \
        if (atomic_fetch_add_explicit(&hook_n, 1, memory_order_relaxed) % 7 == 0)   \
            sched_yield();                                                          \
    } while (0)
#include "queue/ring.c"

#include "tests/check.h"
#include "tests/queue_items.h"
#include "tests/test_common.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { PRODUCERS = 3, CONSUMERS = 3, TURN = 97 };

static wq_ring *ring;
static payload *pl;
static uint64_t total;
static _Atomic(uint32_t) *seen;
static atomic_ullong taken;

/* The lease: whoever holds it is the ring's one producer. next_id is the
 * producers' shared position (used only under the lease). */
static pthread_mutex_t lease = PTHREAD_MUTEX_INITIALIZER;

/* The common pair of the concurrent test: no item's own words. */
#define COMMON2 ((uintptr_t)0x5eed0002u)
#define COMMON3 ((uintptr_t)0x5eed0003u)

/* The ring carries words 0 and 1 of each item and the common pair: check
 * the pair, then the item as queue_items.h made it. */
static uint64_t ring_item_check(wq_item *it)
{
    CHECK_EQ(it->w[2], COMMON2);
    CHECK_EQ(it->w[3], COMMON3);
    uint64_t id = it->w[1];
    it->w[2] = (uintptr_t)~id;
    it->w[3] = (uintptr_t)(id * CHECK_MUL);
    return item_check(pl, seen, total, it);
}
static uint64_t next_id;
static atomic_int producers_done;

static void *producer(void *arg)
{
    (void)arg;
    for (;;) {
        /* A turn: take the lease, push up to TURN items, hand it back. */
        pthread_mutex_lock(&lease);
        uint64_t id = next_id, end = id + TURN < total ? id + TURN : total;
        if (id == total) {
            pthread_mutex_unlock(&lease);
            break;
        }
        while (id < end) {
            wq_item it;
            item_make(pl, id, &it);
            if (wq_ring_push(ring, it.w[0], it.w[1])) {
                id++;
                continue;
            }
            /* Full (sched/ would use the injection queue): a full push
             * writes nothing; give the lease up for a moment so that the
             * hand-off happens mid-stream too. */
            next_id = id;
            pthread_mutex_unlock(&lease);
            sched_yield();
            pthread_mutex_lock(&lease);
            id = next_id;
        }
        next_id = id;
        pthread_mutex_unlock(&lease);
        sched_yield(); /* let another producer have a turn */
    }
    atomic_fetch_add(&producers_done, 1);
    return NULL;
}

static void *consumer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    uint64_t last = 0;
    bool any = false;
    wq_item out[WQ_RING_BATCH];
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        size_t max = 1 + (seed >> 16) % WQ_RING_BATCH;
        size_t n = wq_ring_pop_batch(ring, out, max);
        CHECK(n <= max);
        if (!n) {
            if (atomic_load(&producers_done) == PRODUCERS && !wq_ring_nonempty(ring))
                break;
            sched_yield();
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            uint64_t id = ring_item_check(&out[k]);
            if (any)
                CHECK(id > last); /* each batch a run, batches in order */
            last = id;
            any = true;
        }
        atomic_fetch_add_explicit(&taken, n, memory_order_relaxed);
    }
    return NULL;
}

static void test_sequential(void)
{
    STAGE("sequential");
    wq_ring *r = wq_ring_new();
    CHECK(r != NULL);
    wq_item it, out[WQ_RING_BATCH];
    CHECK_EQ(wq_ring_pop_batch(r, out, 4), 0u);
    CHECK(!wq_ring_nonempty(r));
    static payload spl[WQ_RING_CAP];
    for (uint64_t lap = 0; lap < 5; lap++) {
        /* Empty: a new common pair for this lap's items. */
        uintptr_t c2 = (uintptr_t)(0xc0de0000u + lap), c3 = (uintptr_t)~lap;
        wq_ring_set_common(r, c2, c3);
        for (uint64_t k = 0; k < WQ_RING_CAP; k++) {
            uint64_t id = lap * WQ_RING_CAP + k;
            it.w[0] = (uintptr_t)&spl[k];
            it.w[1] = (uintptr_t)id;
            CHECK(wq_ring_push(r, it.w[0], it.w[1]));
        }
        CHECK(wq_ring_nonempty(r));
        CHECK(!wq_ring_push(r, it.w[0], it.w[1])); /* full at exactly WQ_RING_CAP */
        CHECK_EQ(wq_ring_size(r), WQ_RING_CAP);
        uint64_t want = lap * WQ_RING_CAP;
        size_t n = wq_ring_pop_batch(r, out, 3);
        CHECK_EQ(n, 3u);
        for (size_t k = 0; k < n; k++) {
            CHECK_EQ(out[k].w[0], (uintptr_t)&spl[want % WQ_RING_CAP]);
            CHECK_EQ(out[k].w[1], want++);
            CHECK_EQ(out[k].w[2], c2);
            CHECK_EQ(out[k].w[3], c3);
        }
        /* Room for 3 again: one more goes in, behind the rest. */
        uint64_t extra = (uint64_t)1 << 40 | lap;
        it.w[1] = (uintptr_t)extra;
        CHECK(wq_ring_push(r, it.w[0], it.w[1]));
        bool extra_seen = false;
        while ((n = wq_ring_pop_batch(r, out, WQ_RING_BATCH)) != 0) {
            CHECK(n <= WQ_RING_BATCH);
            for (size_t k = 0; k < n; k++) {
                CHECK_EQ(out[k].w[2], c2);
                CHECK_EQ(out[k].w[3], c3);
                if (want < (lap + 1) * WQ_RING_CAP) {
                    CHECK_EQ(out[k].w[1], want++);
                } else {
                    CHECK(!extra_seen);
                    CHECK_EQ(out[k].w[1], extra); /* the push after the pop, last */
                    extra_seen = true;
                }
            }
        }
        CHECK(extra_seen);
        CHECK_EQ(want, (lap + 1) * WQ_RING_CAP);
        CHECK(!wq_ring_nonempty(r));
    }
    wq_ring_free(r);
}

static void test_concurrent(uint64_t n, bool light)
{
    STAGE(light ? "concurrent, light (tail published by a release store)"
                : "concurrent: 3 producers taking turns, 3 consumers");
    ring = wq_ring_new();
    CHECK(ring != NULL);
    ring->light = light;
    wq_ring_set_common(ring, COMMON2, COMMON3);
    total = n;
    next_id = 0;
    atomic_store(&producers_done, 0);
    atomic_store(&taken, 0);
    seen = calloc(n, sizeof *seen);
    pl = calloc(n, sizeof *pl);
    CHECK(seen != NULL && pl != NULL);
    pthread_t pt[PRODUCERS], ct[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++)
        ct[i] = start_thread(consumer, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < PRODUCERS; i++)
        pt[i] = start_thread(producer, NULL);
    for (int i = 0; i < PRODUCERS; i++)
        join_thread(pt[i]);
    for (int i = 0; i < CONSUMERS; i++)
        join_thread(ct[i]);
    CHECK_EQ(atomic_load(&taken), n);
    for (uint64_t i = 0; i < n; i++) {
        if (atomic_load_explicit(&seen[i], memory_order_relaxed) != 1) {
            fprintf(stderr, "item %llu seen %u times\n", (unsigned long long)i,
                    atomic_load_explicit(&seen[i], memory_order_relaxed));
            CHECK_EQ(atomic_load_explicit(&seen[i], memory_order_relaxed), 1u);
        }
    }
    CHECK(!wq_ring_nonempty(ring));
    CHECK_EQ(atomic_load_explicit(&ring->tail, memory_order_relaxed), n);
    free(seen);
    free(pl);
    wq_ring_free(ring);
}

int main(void)
{
    watchdog_start(120);
    test_sequential();
    test_concurrent((uint64_t)SCALED(1500000), false);
    test_concurrent((uint64_t)SCALED(1500000), true);
    printf("queue_ring_stress: ok\n");
    return 0;
}
