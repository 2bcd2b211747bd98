/*
 * Batched completion counts (sched/done.c): a worker that runs tasks of one
 * external flow back to back takes their counts out of the flow's state
 * together. It must hand them over before it runs a task of another flow
 * and whenever it finds nothing to do, or a close waits for a count
 * nobody will hand over.
 *
 *   - switch: on a one-worker pool, flow D's task gate runs and spawns
 *     d1 into D (onto the worker's own deque, so that the worker takes it
 *     next: external submissions of different flows may be taken in any
 *     order, since each external opener has a ring of its own), then
 *     flow E's task e1 is queued; gate holds the worker until all three
 *     are. e1 waits until D's close has returned. The worker runs gate and
 *     d1 (counting them for D), then e1: unless it hands D's counts over
 *     before e1, D's close waits for e1, which waits for D's close (a hang:
 *     the watchdog reports it).
 *   - idle: rounds of an external flow with 1..3 tasks on 1- and 2-worker
 *     pools, each closed at once; a count kept after the worker ran out of
 *     work is a hang.
 *   - counts: four external threads, each with its own flow, interleave
 *     spawns of a few hundred tasks (so workers switch between flows all the
 *     time); every task runs exactly once, every close returns 0.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

/* ---- switch --------------------------------------------------------------- */

static atomic_int gate_open, d_closed, d1_ran, e1_ran, d1_spawned;

static int d1_task(void *p)
{
    (void)p;
    atomic_store(&d1_ran, 1);
    return 0;
}

/* D's first task: spawns d1 into D (p), then holds the worker. */
static int gate_task(void *p)
{
    CHECK_EQ(weft_spawn((weft_flow *)p, d1_task, NULL), 0);
    atomic_store(&d1_spawned, 1);
    while (!atomic_load(&gate_open))
        sleep_us(100);
    return 0;
}

static int e1_task(void *p)
{
    (void)p;
    while (!atomic_load(&d_closed))
        sleep_us(100);
    atomic_store(&e1_ran, 1);
    return 0;
}

typedef struct dsub {
    weft_pool *pool;
    atomic_int spawned;
} dsub;

/* Opens D, spawns gate (which spawns d1), closes D, says so. */
static void *d_thread(void *p)
{
    dsub *s = p;
    weft_flow d;
    CHECK_EQ(weft_flow_open(&d, s->pool), 0);
    CHECK_EQ(weft_spawn(&d, gate_task, &d), 0); /* holds the worker */
    atomic_store(&s->spawned, 1);
    CHECK_EQ(weft_flow_close(&d), 0);
    CHECK_EQ(atomic_load(&d1_ran), 1);
    atomic_store(&d_closed, 1);
    return NULL;
}

static void test_switch(void)
{
    STAGE("switch: another flow's task after a batched one");
    weft_pool_config cfg = {.workers = 1, .name = "wdone"};
    weft_pool *pool;
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
    for (int round = 0; round < 20; round++) {
        ROUND(round);
        atomic_store(&gate_open, 0);
        atomic_store(&d_closed, 0);
        atomic_store(&d1_ran, 0);
        atomic_store(&e1_ran, 0);
        atomic_store(&d1_spawned, 0);
        weft_flow e;
        dsub s = {.pool = pool};
        atomic_init(&s.spawned, 0);
        pthread_t t = start_thread(d_thread, &s);
        while (!atomic_load(&s.spawned) || !atomic_load(&d1_spawned))
            sleep_us(100);
        CHECK_EQ(weft_flow_open(&e, pool), 0);
        CHECK_EQ(weft_spawn(&e, e1_task, NULL), 0); /* queued after d1 */
        atomic_store(&gate_open, 1);
        CHECK_EQ(weft_flow_close(&e), 0);
        CHECK_EQ(atomic_load(&e1_ran), 1);
        join_thread(t);
    }
    weft_pool_destroy(pool);
}

/* ---- idle ------------------------------------------------------------------ */

static atomic_long ran;

static int count_task(void *p)
{
    (void)p;
    atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
    return 0;
}

static void test_idle(unsigned workers, long rounds)
{
    STAGE(workers == 1 ? "idle: 1 worker" : "idle: 2 workers");
    weft_pool_config cfg = {.workers = workers, .name = "wdone"};
    weft_pool *pool;
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
    for (long r = 0; r < rounds; r++) {
        ROUND(r);
        atomic_store(&ran, 0);
        long n = 1 + r % 3;
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        for (long i = 0; i < n; i++)
            CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(atomic_load(&ran), n);
        if (r % 97 == 0)
            sleep_us(200); /* let the workers go to sleep now and then */
    }
    weft_pool_destroy(pool);
}

/* ---- counts ---------------------------------------------------------------- */

enum { SUBMITTERS = 4 };

typedef struct csub {
    weft_pool  *pool;
    long        tasks;
    atomic_int *seen;
} csub;

static int seen_task(void *p)
{
    CHECK_EQ(atomic_fetch_add((atomic_int *)p, 1), 0);
    return 0;
}

static void *c_thread(void *p)
{
    csub *s = p;
    for (int round = 0; round < 20; round++) {
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, s->pool), 0);
        for (long i = 0; i < s->tasks; i++) {
            atomic_store_explicit(&s->seen[i], 0, memory_order_relaxed);
            CHECK_EQ(weft_spawn(&f, seen_task, &s->seen[i]), 0);
        }
        CHECK_EQ(weft_flow_close(&f), 0);
        for (long i = 0; i < s->tasks; i++)
            CHECK_EQ(atomic_load_explicit(&s->seen[i], memory_order_relaxed), 1);
    }
    return NULL;
}

static void test_counts(unsigned workers, long tasks)
{
    STAGE("counts: four submitters, interleaved flows");
    weft_pool_config cfg = {.workers = workers, .name = "wdone"};
    weft_pool *pool;
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
    csub s[SUBMITTERS];
    pthread_t t[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        s[i] = (csub){pool, tasks, calloc((size_t)tasks, sizeof(atomic_int))};
        CHECK(s[i].seen != NULL);
        t[i] = start_thread(c_thread, &s[i]);
    }
    for (int i = 0; i < SUBMITTERS; i++) {
        join_thread(t[i]);
        free(s[i].seen);
    }
    weft_pool_destroy(pool);
}

int main(void)
{
    watchdog_start(120);
    test_switch();
    test_idle(1, SCALED(20000));
    test_idle(2, SCALED(20000));
    test_counts(1, SCALED(300));
    test_counts(2, SCALED(300));
    printf("sched_done_batch: ok\n");
    return 0;
}
