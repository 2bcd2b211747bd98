/*
 * A worker's batch (queue/wq_batch.h, sched/pool.c): with other workers
 * around, what a worker takes from a submission ring in one claim waits in
 * its batch, where only it takes, with no fence; a peer takes over what is
 * left when the worker is stuck in a long task. tests/model/batch_rescue.pml
 * checks the claim/rescue pairing exhaustively; this test checks the code:
 *
 *   - hostage: an external opener spawns a gate task, which waits until
 *     every task spawned after it has run, then tiny tasks, into a pool of
 *     2 and of 4 workers. Whoever takes the gate with tiny ones behind it in
 *     its batch is stuck until a peer rescues them: without the rescue the
 *     gate waits forever (the watchdog fires);
 *   - exactly once: openers on 3 threads spawn runs of tasks of which some
 *     sleep (100-400 us, so rescues happen while the owners take), every
 *     task counted once, the counts of the pool's stats exact;
 *   - ctest runs it again with $WEFT_NO_MEMBARRIER=1: the seq_cst claims.
 *
 * SPDX-License-Identifier: MIT
 */
#include "test_common.h"

#include <stdlib.h>
#include <string.h>

enum { TINY = 200 };

static atomic_long tiny_ran;

static int tiny_task(void *p)
{
    (void)p;
    atomic_fetch_add_explicit(&tiny_ran, 1, memory_order_release); /* pairs with gate_task */
    return 0;
}

static int gate_task(void *p)
{
    long want = *(long *)p;
    double end = now_s() + 60;
    while (atomic_load_explicit(&tiny_ran, memory_order_acquire) < want) {
        CHECK(now_s() < end); /* the tasks behind us never ran: not rescued */
        sched_yield();
    }
    return 0;
}

static void test_hostage(unsigned workers, long rounds)
{
    STAGE(workers == 2 ? "hostage, 2 workers" : "hostage, 4 workers");
    weft_pool_config cfg = {.workers = workers, .name = "wbatch"};
    weft_pool *p;
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    weft_stats before, after;
    CHECK_EQ(weft_pool_stats(p, -1, &before), 0);
    for (long r = 0; r < rounds; r++) {
        ROUND(r);
        atomic_store_explicit(&tiny_ran, 0, memory_order_relaxed);
        long want = TINY;
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, p), 0);
        CHECK_EQ(weft_spawn(&f, gate_task, &want), 0);
        for (int i = 0; i < TINY; i++)
            CHECK_EQ(weft_spawn(&f, tiny_task, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(atomic_load_explicit(&tiny_ran, memory_order_relaxed), TINY);
        /* Let the workers fall asleep, so that the next burst lands in the
         * ring before they look (one batch, the gate first). */
        if (r % 4 == 3)
            sleep_us(2000);
    }
    CHECK_EQ(weft_pool_stats(p, -1, &after), 0);
    printf("sched_batch: %u workers: %llu items rescued in %ld rounds\n", workers,
           (unsigned long long)(after.rescued - before.rescued), rounds);
    CHECK_EQ(weft_pool_destroy(p), 0);
}

/* ---- exactly once, with rescues under way -------------------------------- */

typedef struct {
    weft_pool  *pool;
    int         id, runs, per_run;
    atomic_int *hits;
} opener;

static int slow_or_tiny(void *p)
{
    atomic_int *hit = p;
    int prev = atomic_fetch_add_explicit(hit, 1, memory_order_relaxed);
    CHECK_EQ(prev, 0);
    uintptr_t a = (uintptr_t)p;
    if ((a / sizeof(atomic_int)) % 61 == 0)
        sleep_us(100 + (a / sizeof(atomic_int)) % 300);
    return 0;
}

static void *opener_main(void *arg)
{
    opener *o = arg;
    unsigned seed = (unsigned)o->id * 7919u + 1;
    for (int r = 0; r < o->runs; r++) {
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, o->pool), 0);
        int n = 1 + (int)(rand_r(&seed) % (unsigned)o->per_run);
        for (int i = 0; i < n; i++)
            CHECK_EQ(weft_spawn(&f, slow_or_tiny, &o->hits[r * o->per_run + i]), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        for (int i = 0; i < n; i++)
            CHECK_EQ(atomic_load_explicit(&o->hits[r * o->per_run + i], memory_order_relaxed), 1);
        if (rand_r(&seed) % 8 == 0)
            sleep_us(rand_r(&seed) % 500);
    }
    return NULL;
}

static void test_exactly_once(int runs)
{
    STAGE("exactly once");
    enum { T = 3, PER = 96 };
    weft_pool_config cfg = {.workers = 2, .name = "wbatch"};
    weft_pool *p;
    CHECK_EQ(weft_pool_create(&p, &cfg), 0);
    opener o[T];
    pthread_t t[T];
    for (int i = 0; i < T; i++) {
        o[i] = (opener){p, i, runs, PER, calloc((size_t)runs * PER, sizeof(atomic_int))};
        CHECK(o[i].hits != NULL);
        t[i] = start_thread(opener_main, &o[i]);
    }
    for (int i = 0; i < T; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        free(o[i].hits);
    }
    weft_stats s;
    CHECK_EQ(weft_pool_stats(p, -1, &s), 0);
    CHECK_EQ(s.tasks_spawned, s.tasks_run + s.tasks_skipped);
    printf("sched_batch: exactly once: %llu tasks, %llu rescued\n", (unsigned long long)s.tasks_run,
           (unsigned long long)s.rescued);
    CHECK_EQ(weft_pool_destroy(p), 0);
}

int main(void)
{
    watchdog_start(240);
    test_hostage(2, SCALED(40));
    test_hostage(4, SCALED(40));
    test_exactly_once((int)SCALED(300));
    printf("sched_batch: ok\n");
    return 0;
}
