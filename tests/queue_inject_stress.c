/*
 * tests/queue_inject_stress.c — the injection queue (queue/wq_inject.h):
 * many producers, a few consumers, every item popped exactly once.
 *
 *  1. sequential: FIFO through the ring, the overflow list when the ring is
 *     full, empty pops, init arguments; FIFO also when pushes and pops
 *     alternate while the list is in use (an overflowed item cannot be
 *     overtaken for ever by pushes into cells that pops free).
 *  2. concurrent: four producers and two consumers at once, with a tiny ring
 *     (capacity 2 and 16, so pushes keep spilling into the overflow list
 *     while consumers drain both) and a roomy one (1024).
 *  3. late consumers: four producers push everything (most of it into the
 *     overflow list of a 16-cell ring) and finish; only then two consumers
 *     start, and they must find every item before the queue reports empty.
 *
 * Items point to plain payloads written by the producer before the push and
 * read by the consumer after the pop: under ThreadSanitizer a too-weak
 * ordering shows up as a data race. The counts shrink under ThreadSanitizer,
 * follow $WEFT_TEST_SCALE if set, and grow tenfold with WEFT_SOAK=1.
 */
#include "queue/wq_inject.h"
#include "tests/check.h"
#include "tests/queue_items.h"
#include "tests/test_common.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { PRODUCERS = 4, CONSUMERS = 2 };

/* The scale factor: $WEFT_TEST_SCALE, else 1, or 0.3 under ThreadSanitizer
 * (every atomic access is a call there); times 10 with WEFT_SOAK=1. */
static double scale(void)
{
    return test_scale_with(0.3, 1.0);
}

typedef struct shared {
    wq_inject          q;
    payload           *pl;
    _Atomic(uint32_t) *seen;
    uint64_t           per_producer, total;
    atomic_ullong      consumed;
    atomic_int         spilled; /* a producer saw the overflow list in use */
} shared;

typedef struct worker {
    pthread_t th;
    shared   *sh;
    int       index;
    uint64_t  count, sum;
} worker;

static void make_item(shared *sh, uint64_t id, wq_item *it)
{
    item_make(sh->pl, id, it);
}

static void record(shared *sh, worker *w, const wq_item *it)
{
    uint64_t id = item_check(sh->pl, sh->seen, sh->total, it);
    w->count++;
    w->sum += id;
}

static void *producer_main(void *arg)
{
    worker  *w = arg;
    shared  *sh = w->sh;
    uint64_t base = (uint64_t)w->index * sh->per_producer;
    for (uint64_t i = 0; i < sh->per_producer; i++) {
        wq_item it;
        make_item(sh, base + i, &it);
        CHECK_EQ(wq_inject_push(&sh->q, &it), 0);
        if (atomic_load_explicit(&sh->q.overflow_len, memory_order_relaxed))
            atomic_store_explicit(&sh->spilled, 1, memory_order_relaxed);
    }
    return NULL;
}

/* Pops until every item has been consumed (by anyone). */
static void *consumer_main(void *arg)
{
    worker  *w = arg;
    shared  *sh = w->sh;
    unsigned idle = 0;
    for (;;) {
        wq_item it;
        if (wq_inject_pop(&sh->q, &it)) {
            record(sh, w, &it);
            atomic_fetch_add_explicit(&sh->consumed, 1, memory_order_relaxed);
            idle = 0;
        } else if (atomic_load_explicit(&sh->consumed, memory_order_relaxed) == sh->total) {
            return NULL;
        } else if (++idle % 16 == 0) {
            sched_yield();
        }
    }
}

/* Pops until the queue says it is empty (the producers are all done). */
static void *late_consumer_main(void *arg)
{
    worker *w = arg;
    wq_item it;
    while (wq_inject_pop(&w->sh->q, &it))
        record(w->sh, w, &it);
    return NULL;
}

static void setup(shared *sh, unsigned log2, uint64_t per_producer)
{
    memset(sh, 0, sizeof *sh);
    CHECK_EQ(wq_inject_init(&sh->q, log2), 0);
    sh->per_producer = per_producer;
    sh->total = per_producer * PRODUCERS;
    sh->pl = calloc(sh->total, sizeof *sh->pl);
    sh->seen = calloc(sh->total, sizeof *sh->seen);
    CHECK(sh->pl && sh->seen);
    atomic_init(&sh->consumed, 0);
    atomic_init(&sh->spilled, 0);
}

/* Every id popped exactly once, by these consumers. */
static void verify(shared *sh, worker *cons)
{
    uint64_t count = 0, sum = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        count += cons[i].count;
        sum += cons[i].sum;
    }
    CHECK_EQ(count, sh->total);
    CHECK_EQ(sum, sh->total * (sh->total - 1) / 2);
    for (uint64_t id = 0; id < sh->total; id++) {
        uint32_t c = atomic_load_explicit(&sh->seen[id], memory_order_relaxed);
        if (c != 1) {
            fprintf(stderr, "item %llu popped %u times\n", (unsigned long long)id, c);
            CHECK_EQ(c, 1);
        }
    }
    wq_item it;
    CHECK(!wq_inject_pop(&sh->q, &it));
    CHECK(!wq_inject_nonempty(&sh->q));
    CHECK_EQ(atomic_load(&sh->q.overflow_len), 0);
    wq_inject_destroy(&sh->q);
    free(sh->pl);
    free(sh->seen);
}

static void start(worker *w, int n, shared *sh, void *(*fn)(void *))
{
    for (int i = 0; i < n; i++) {
        w[i].sh = sh;
        w[i].index = i;
        w[i].count = w[i].sum = 0;
        CHECK_EQ(pthread_create(&w[i].th, NULL, fn, &w[i]), 0);
    }
}

static void join(worker *w, int n)
{
    for (int i = 0; i < n; i++)
        CHECK_EQ(pthread_join(w[i].th, NULL), 0);
}

/* ---- 1. sequential ------------------------------------------------------ */

static void push_id(wq_inject *q, uint64_t id)
{
    wq_item it = {{(uintptr_t)id, (uintptr_t)~id, 0, 0}};
    CHECK_EQ(wq_inject_push(q, &it), 0);
}

static uint64_t pop_id(wq_inject *q)
{
    wq_item it;
    CHECK(wq_inject_pop(q, &it));
    CHECK_EQ(it.w[1], (uintptr_t)~it.w[0]);
    return it.w[0];
}

static void test_sequential(void)
{
    wq_inject q;
    CHECK_EQ(wq_inject_init(&q, 0), EINVAL);
    CHECK_EQ(wq_inject_init(&q, 25), EINVAL);
    CHECK_EQ(wq_inject_init(&q, 3), 0);
    wq_item it;
    CHECK(!wq_inject_pop(&q, &it));
    CHECK(!wq_inject_nonempty(&q));

    /* FIFO through the ring, many laps. */
    for (uint64_t lap = 0; lap < 100; lap++) {
        for (uint64_t i = 0; i < 5; i++)
            push_id(&q, lap * 5 + i);
        CHECK(wq_inject_nonempty(&q));
        for (uint64_t i = 0; i < 5; i++)
            CHECK_EQ(pop_id(&q), lap * 5 + i);
        CHECK(!wq_inject_pop(&q, &it));
    }
    CHECK(!wq_inject_nonempty(&q));

    /* Full ring: the rest spills into the overflow list, in order. */
    for (uint64_t i = 0; i < 20; i++)
        push_id(&q, i);
    CHECK_EQ(atomic_load(&q.overflow_len), 12);
    CHECK(wq_inject_nonempty(&q));
    for (uint64_t i = 0; i < 20; i++)
        CHECK_EQ(pop_id(&q), i);
    CHECK(!wq_inject_pop(&q, &it));
    CHECK(!wq_inject_nonempty(&q));

    /* Sustained overload: the ring is full and the list in use, and each
     * pop is followed by a push. A push must not take the cell the pop
     * freed (that would let ring items overtake the list for ever): the
     * order stays FIFO, and the list empties once pushes stop. */
    for (uint64_t i = 0; i < 10; i++)
        push_id(&q, i);
    for (uint64_t i = 0; i < 1000; i++) {
        CHECK_EQ(pop_id(&q), i);
        push_id(&q, i + 10);
    }
    for (uint64_t i = 1000; i < 1010; i++)
        CHECK_EQ(pop_id(&q), i);
    CHECK(!wq_inject_pop(&q, &it));
    CHECK_EQ(atomic_load(&q.overflow_len), 0);
    /* ... and then the ring is used again. */
    push_id(&q, 7);
    CHECK_EQ(atomic_load(&q.overflow_len), 0);
    CHECK_EQ(pop_id(&q), 7);

    /* Destroy drops queued items, also overflowed ones (ASan: no leak). */
    for (uint64_t i = 0; i < 30; i++)
        push_id(&q, i);
    wq_inject_destroy(&q);
}

static void test_tiny_rings(void)
{
    for (unsigned log2 = 1; log2 <= 3; log2++) {
        wq_inject q;
        CHECK_EQ(wq_inject_init(&q, log2), 0);
        uint64_t cap = (uint64_t)1 << log2;
        for (uint64_t i = 0; i < cap + 3; i++)
            push_id(&q, i);
        CHECK_EQ(atomic_load(&q.overflow_len), 3);
        for (uint64_t i = 0; i < cap + 3; i++)
            CHECK_EQ(pop_id(&q), i);
        wq_item it;
        CHECK(!wq_inject_pop(&q, &it));
        wq_inject_destroy(&q);
    }
}

/* ---- 2. concurrent ------------------------------------------------------ */

static void test_concurrent(unsigned log2, uint64_t per_producer)
{
    shared sh;
    worker prod[PRODUCERS], cons[CONSUMERS];
    setup(&sh, log2, per_producer);
    start(cons, CONSUMERS, &sh, consumer_main);
    start(prod, PRODUCERS, &sh, producer_main);
    join(prod, PRODUCERS);
    join(cons, CONSUMERS);
    int spilled = atomic_load(&sh.spilled);
    printf("    ring %u: %llu items, overflow list %s\n", 1u << log2,
           (unsigned long long)sh.total, spilled ? "used" : "unused");
    verify(&sh, cons);
}

/* ---- 3. consumers start after the producers finish --------------------- */

static void test_late_consumers(uint64_t per_producer)
{
    shared sh;
    worker prod[PRODUCERS], cons[CONSUMERS];
    setup(&sh, 4, per_producer);
    start(prod, PRODUCERS, &sh, producer_main);
    join(prod, PRODUCERS);
    /* 16 cells: everything else is on the overflow list. */
    CHECK_EQ(atomic_load(&sh.q.overflow_len), sh.total - 16);
    CHECK(wq_inject_nonempty(&sh.q));
    start(cons, CONSUMERS, &sh, late_consumer_main);
    join(cons, CONSUMERS);
    verify(&sh, cons);
}

int main(void)
{
    double f = scale(), t0 = now_s(), t;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("queue_inject_stress: scale %.2f\n", f);

    test_sequential();

    t = now_s();
    test_concurrent(4, (uint64_t)(250000 * f));
    test_concurrent(10, (uint64_t)(250000 * f));
    printf("  concurrent: %.2f s\n", now_s() - t);

    t = now_s();
    test_late_consumers((uint64_t)(50000 * f));
    printf("  late consumers: %.2f s\n", now_s() - t);

    /* Last, so that the rest has run if it fails: the smallest rings
     * (2 and 4 cells of 40 bytes: their size is not a multiple of the
     * 64-byte alignment asked of aligned_alloc). */
    t = now_s();
    test_tiny_rings();
    test_concurrent(1, (uint64_t)(100000 * f));
    printf("  ring of 2: %.2f s\n", now_s() - t);

    printf("queue_inject_stress: ok in %.2f s\n", now_s() - t0);
    return 0;
}
