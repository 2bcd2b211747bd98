/*
 * tests/queue_inject_stress.c — the injection queue (queue/wq_inject.h):
 * many producers, a few consumers, every item popped exactly once, and the
 * blocks given back.
 *
 *  1. sequential, for blocks of 2, 4, 8 and 256 slots: FIFO across many
 *     block boundaries, batch pops (never more than asked, FIFO), empty
 *     pops, init arguments; memory: 100 blocks' worth pushed, then popped,
 *     leaves at most two blocks (the current one and the spare).
 *  2. concurrent: four producers and two consumers popping batches of 1..32,
 *     blocks of 2 (a boundary every other push), 16 and 256 slots; one push
 *     in 61 yields between its claim and its write, so consumers also find
 *     claimed slots unwritten, abandon them, and their producers push again.
 *  3. late consumers: four producers push everything and finish; only then
 *     two consumers start, and they must find every item before the queue
 *     reports empty; then the blocks are back to at most two.
 *  4. a stalled producer: one push stops between its claim and its write.
 *     Items pushed after it must still be popped, in order, and blocks they
 *     used freed; when it resumes its item is popped too, exactly once.
 *
 * The producer stalls at queue/inject.c's WQ_INJECT_TEST_HOOK: this test
 * compiles the queue in with the hook (so the library's copy is not linked).
 * Items point to plain payloads written by the producer before the push and
 * read by the consumer after the pop: under ThreadSanitizer a too-weak
 * ordering shows up as a data race. The counts shrink under
 * ThreadSanitizer, follow $WEFT_TEST_SCALE if set, and grow tenfold with
 * WEFT_SOAK=1.
 */
#include <stdatomic.h>
#include <stdbool.h>

struct wq_inject;
struct wq_item;
static void stall_hook(struct wq_inject *q, const struct wq_item *it);
#define WQ_INJECT_TEST_HOOK stall_hook
#include "queue/inject.c"

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

enum { PRODUCERS = 4, CONSUMERS = 2 };

/* The hook's orders. Test 4: the push of item stall_id stops (once) until
 * resume is set. Test 2: pushes of items with w[1] % 61 == 0 yield first
 * (the first time: a push made again after an abandon does not).
 * claims counts every claim of a slot (a push that was abandoned and
 * pushed again counts twice). */
static _Atomic(uintptr_t) stall_id = UINTPTR_MAX;
static atomic_int stalled, resume, yield_some;
static atomic_ullong claims;
static _Thread_local uintptr_t last_yield = UINTPTR_MAX;

static void stall_hook(struct wq_inject *q, const struct wq_item *it)
{
    (void)q;
    atomic_fetch_add_explicit(&claims, 1, memory_order_relaxed);
    uintptr_t id = it->w[1];
    if (id == atomic_load(&stall_id)) {
        atomic_store(&stall_id, UINTPTR_MAX); /* once */
        atomic_store(&stalled, 1);
        while (!atomic_load(&resume))
            sched_yield();
    } else if (atomic_load_explicit(&yield_some, memory_order_relaxed) && id % 61 == 0 &&
               id != last_yield) {
        last_yield = id; /* not again when it is pushed again */
        sched_yield();
    }
}

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
} shared;

typedef struct worker {
    pthread_t th;
    shared   *sh;
    int       index;
    uint64_t  count, sum;
} worker;

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
        item_make(sh->pl, base + i, &it);
        CHECK_EQ(wq_inject_push(&sh->q, &it), 0);
    }
    return NULL;
}

/* Pops batches (of 1..32, varying) until every item has been consumed. */
static void *consumer_main(void *arg)
{
    worker  *w = arg;
    shared  *sh = w->sh;
    unsigned idle = 0, round = 0;
    for (;;) {
        wq_item it[WQ_INJECT_BATCH];
        size_t max = (size_t)(round++ % WQ_INJECT_BATCH) + 1;
        size_t got = wq_inject_pop_batch(&sh->q, it, max);
        CHECK(got <= max);
        if (got) {
            for (size_t k = 0; k < got; k++)
                record(sh, w, &it[k]);
            atomic_fetch_add_explicit(&sh->consumed, got, memory_order_relaxed);
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
}

/* Every id popped exactly once, by these consumers; the queue empty, with
 * its memory given back but for the current block and the spare. */
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
    CHECK(wq_inject_blocks(&sh->q) <= 2);
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
    wq_item it = {{(uintptr_t)~id, (uintptr_t)id, 0, 0}};
    CHECK_EQ(wq_inject_push(q, &it), 0);
}

static uint64_t check_id(const wq_item *it)
{
    CHECK_EQ(it->w[0], (uintptr_t)~it->w[1]);
    return it->w[1];
}

static uint64_t pop_id(wq_inject *q)
{
    wq_item it;
    CHECK(wq_inject_pop(q, &it));
    return check_id(&it);
}

static void test_sequential(unsigned log2)
{
    wq_inject q;
    wq_item it[WQ_INJECT_BATCH];
    uint64_t n = (uint64_t)1 << log2;
    CHECK_EQ(wq_inject_init(&q, log2), 0);
    CHECK(!wq_inject_pop(&q, it));
    CHECK(!wq_inject_nonempty(&q));
    CHECK_EQ(wq_inject_pop_batch(&q, it, WQ_INJECT_BATCH), 0);

    /* FIFO across block boundaries, many laps. */
    uint64_t k = 3 * n + 1, next = 0;
    for (uint64_t lap = 0; lap < 50; lap++) {
        for (uint64_t i = 0; i < k; i++)
            push_id(&q, lap * k + i);
        CHECK(wq_inject_nonempty(&q));
        for (uint64_t i = 0; i < k; i++)
            CHECK_EQ(pop_id(&q), lap * k + i);
        CHECK(!wq_inject_pop(&q, it));
        CHECK(!wq_inject_nonempty(&q));
    }

    /* Batches: at most max, at least one while items are left, FIFO. */
    uint64_t total = 5 * n + 3;
    for (uint64_t i = 0; i < total; i++)
        push_id(&q, i);
    for (size_t max = 1; next < total; max = max % WQ_INJECT_BATCH + 1) {
        size_t got = wq_inject_pop_batch(&q, it, max);
        CHECK(got >= 1 && got <= max);
        for (size_t j = 0; j < got; j++)
            CHECK_EQ(check_id(&it[j]), next++);
    }
    CHECK_EQ(wq_inject_pop_batch(&q, it, WQ_INJECT_BATCH), 0);

    /* Memory follows the queue's length, and is given back. */
    total = 100 * n;
    for (uint64_t i = 0; i < total; i++)
        push_id(&q, i);
    CHECK(wq_inject_blocks(&q) >= 100);
    for (uint64_t i = 0; i < total; i++)
        CHECK_EQ(pop_id(&q), i);
    CHECK(!wq_inject_pop(&q, it));
    CHECK(wq_inject_blocks(&q) <= 2);

    /* Destroy drops queued items and frees their blocks (ASan: no leak). */
    for (uint64_t i = 0; i < 3 * n + 1; i++)
        push_id(&q, i);
    wq_inject_destroy(&q);
}

/* ---- 2. concurrent ------------------------------------------------------ */

static void test_concurrent(unsigned log2, uint64_t per_producer)
{
    shared sh;
    worker prod[PRODUCERS], cons[CONSUMERS];
    setup(&sh, log2, per_producer);
    atomic_store(&claims, 0);
    atomic_store(&yield_some, 1);
    start(cons, CONSUMERS, &sh, consumer_main);
    start(prod, PRODUCERS, &sh, producer_main);
    join(prod, PRODUCERS);
    join(cons, CONSUMERS);
    atomic_store(&yield_some, 0);
    printf("    blocks of %u: %llu items, %llu pushed again after a consumer gave up\n",
           1u << log2, (unsigned long long)sh.total,
           (unsigned long long)(atomic_load(&claims) - sh.total));
    verify(&sh, cons);
}

/* ---- 3. consumers start after the producers finish --------------------- */

static void test_late_consumers(unsigned log2, uint64_t per_producer)
{
    shared sh;
    worker prod[PRODUCERS], cons[CONSUMERS];
    setup(&sh, log2, per_producer);
    start(prod, PRODUCERS, &sh, producer_main);
    join(prod, PRODUCERS);
    CHECK(wq_inject_nonempty(&sh.q));
    CHECK(wq_inject_blocks(&sh.q) >= (int64_t)(sh.total >> log2));
    start(cons, CONSUMERS, &sh, late_consumer_main);
    join(cons, CONSUMERS);
    verify(&sh, cons);
}

/* ---- 4. a producer stalls between its claim and its write --------------- */

static void *stalled_push(void *arg)
{
    push_id(arg, 0);
    return NULL;
}

static void test_stalled_producer(unsigned log2, uint64_t others)
{
    wq_inject q;
    CHECK_EQ(wq_inject_init(&q, log2), 0);
    atomic_store(&stalled, 0);
    atomic_store(&resume, 0);
    atomic_store(&stall_id, 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, stalled_push, &q), 0);
    while (!atomic_load(&stalled))
        sched_yield();
    CHECK(wq_inject_nonempty(&q)); /* its slot is claimed */

    /* Items behind the stalled one: none is held up, none lost, FIFO; and
     * the blocks they fill are freed though the stalled claim keeps its own
     * block (at most that one, the current one and the spare). */
    for (uint64_t i = 1; i <= others; i++) {
        push_id(&q, i);
        if (i % 3 == 0)
            for (uint64_t j = i - 2; j <= i; j++)
                CHECK_EQ(pop_id(&q), j);
    }
    for (uint64_t j = others - others % 3 + 1; j <= others; j++)
        CHECK_EQ(pop_id(&q), j);
    wq_item it;
    CHECK(!wq_inject_pop(&q, &it)); /* the stalled one is not written yet */
    CHECK(wq_inject_blocks(&q) <= 3);

    /* It resumes: its item comes out once. */
    atomic_store(&resume, 1);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(wq_inject_nonempty(&q));
    CHECK_EQ(pop_id(&q), 0);
    CHECK(!wq_inject_pop(&q, &it));
    CHECK(!wq_inject_nonempty(&q));
    CHECK(wq_inject_blocks(&q) <= 2);
    wq_inject_destroy(&q);
}

int main(void)
{
    double f = scale(), t0 = now_s(), t;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("queue_inject_stress: scale %.2f\n", f);

    wq_inject q;
    CHECK_EQ(wq_inject_init(&q, 0), EINVAL);
    CHECK_EQ(wq_inject_init(&q, 11), EINVAL);
    wq_inject_destroy(&q); /* after a failed init: nothing */
    for (unsigned log2 = 1; log2 <= 3; log2++)
        test_sequential(log2);
    test_sequential(8);

    t = now_s();
    test_stalled_producer(1, 1000);
    test_stalled_producer(2, 1000);
    test_stalled_producer(8, 1000);
    printf("  stalled producer: %.2f s\n", now_s() - t);

    t = now_s();
    test_concurrent(1, (uint64_t)(100000 * f));
    test_concurrent(4, (uint64_t)(250000 * f));
    test_concurrent(8, (uint64_t)(250000 * f));
    printf("  concurrent: %.2f s\n", now_s() - t);

    t = now_s();
    test_late_consumers(2, (uint64_t)(50000 * f));
    printf("  late consumers: %.2f s\n", now_s() - t);

    printf("queue_inject_stress: ok in %.2f s\n", now_s() - t0);
    return 0;
}
