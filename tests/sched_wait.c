/*
 * Waiting:
 *   - a worker waiting in weft_flow_close executes work meanwhile: on a
 *     1-worker pool a task spawns N children and closes (all run, on that
 *     worker, before the close returns); and a task waiting on a flow of
 *     another pool runs an unrelated task of its own pool that the awaited
 *     flow depends on (if the waiting worker blocked instead, it would never
 *     run and the awaited task would give up after a long timeout);
 *   - an external thread waiting (weft_flow_close, weft_join, weft_for) for a
 *     task that sleeps ~0.5 s sleeps too: its CPU time stays well under
 *     0.1 s;
 *   - a worker waiting ~0.5 s for a task on another pool does not spin a
 *     core either (a loose bound: it may nap-and-look).
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/resource.h>

static double rusage_thread_s(void)
{
    struct rusage ru;
    CHECK_EQ(getrusage(RUSAGE_THREAD, &ru), 0);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* ---- a waiting worker runs its children --------------------------------- */

typedef struct child_rec {
    pthread_t thread;
    int       index;
    atomic_int ran;
} child_rec;

static int child_task(void *p)
{
    child_rec *r = p;
    r->thread = pthread_self();
    r->index = weft_worker_index();
    atomic_fetch_add(&r->ran, 1);
    return 0;
}

typedef struct parent_arg {
    int       n;
    unsigned  nworkers;
    child_rec *recs;
} parent_arg;

static int parent_task(void *p)
{
    parent_arg *a = p;
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    for (int i = 0; i < a->n; i++)
        CHECK_EQ(weft_spawn(&f, child_task, &a->recs[i]), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    int mine = weft_worker_index();
    for (int i = 0; i < a->n; i++) {
        CHECK_EQ(atomic_load(&a->recs[i].ran), 1);
        if (a->nworkers == 1) {
            /* Nobody else could have run them: the waiting worker did. */
            CHECK(pthread_equal(a->recs[i].thread, pthread_self()));
            CHECK_EQ(a->recs[i].index, mine);
        } else {
            CHECK(a->recs[i].index >= 0 && (unsigned)a->recs[i].index < a->nworkers);
        }
    }
    return 0;
}

static void test_worker_runs_children(void)
{
    STAGE("waiting worker runs its children");
    for (unsigned w = 1; w <= 2; w++) {
        weft_pool *pool;
        weft_pool_config cfg = {.workers = w, .name = "wait"};
        CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
        int n = (int)SCALED(10000);
        child_rec *recs = calloc((size_t)n, sizeof *recs);
        CHECK(recs != NULL);
        parent_arg a = {n, w, recs};
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        CHECK_EQ(weft_spawn(&f, parent_task, &a), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        free(recs);
        CHECK_EQ(weft_pool_destroy(pool), 0);
    }
}

/* ---- a waiting worker runs other work of its pool ------------------------ */

static weft_pool *g_p, *g_q;
static atomic_int g_a_started, g_e_ran, g_z_timed_out;
static pthread_t g_a_thread;
static atomic_int g_e_same_thread;

static int e_task(void *p)
{
    (void)p;
    /* P has one worker, and it is inside A's close: E runs there. */
    atomic_store(&g_e_same_thread, pthread_equal(pthread_self(), g_a_thread));
    atomic_store_explicit(&g_e_ran, 1, memory_order_release);
    return 0;
}

static int z_task(void *p)
{
    (void)p;
    /* On Q: waits for E, a task of P that only P's waiting worker can run. */
    if (!wait_flag(&g_e_ran, 30))
        atomic_store(&g_z_timed_out, 1);
    return 0;
}

static int a_task(void *p)
{
    (void)p;
    g_a_thread = pthread_self();
    weft_flow h;
    CHECK_EQ(weft_flow_open(&h, g_q), 0);
    CHECK_EQ(weft_spawn(&h, z_task, NULL), 0);
    atomic_store_explicit(&g_a_started, 1, memory_order_release);
    CHECK_EQ(weft_flow_close(&h), 0);
    CHECK_EQ(atomic_load(&g_e_ran), 1);
    return 0;
}

static void test_worker_runs_other_work(void)
{
    STAGE("waiting worker runs other work of its pool");
    weft_pool_config cp = {.workers = 1, .name = "wp"}, cq = {.workers = 1, .name = "wq"};
    CHECK_EQ(weft_pool_create(&g_p, &cp), 0);
    CHECK_EQ(weft_pool_create(&g_q, &cq), 0);
    int rounds = (int)SCALED(20);
    for (int r = 0; r < rounds; r++) {
        atomic_store(&g_a_started, 0);
        atomic_store(&g_e_ran, 0);
        atomic_store(&g_e_same_thread, 0);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, g_p), 0);
        CHECK_EQ(weft_spawn(&f, a_task, NULL), 0);
        CHECK(wait_flag(&g_a_started, 30));
        if (r & 1)
            sleep_us(2000); /* let A's worker settle into its wait */
        CHECK_EQ(weft_spawn(&f, e_task, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(atomic_load(&g_z_timed_out), 0);
        CHECK_EQ(atomic_load(&g_e_ran), 1);
        CHECK_EQ(atomic_load(&g_e_same_thread), 1);
    }
    CHECK_EQ(weft_pool_destroy(g_p), 0);
    CHECK_EQ(weft_pool_destroy(g_q), 0);
}

/* ---- an external waiter sleeps ------------------------------------------ */

enum { NAP_US = 500000 };

static int sleepy_task(void *p)
{
    (void)p;
    sleep_us(NAP_US);
    return 0;
}

static int nothing_task(void *p)
{
    (void)p;
    return 0;
}

static void sleepy_range(size_t b, size_t e, void *p)
{
    (void)b;
    (void)e;
    (void)p;
    sleep_us(NAP_US);
}

static void check_slept(const char *what, double wall, double cpu)
{
    printf("%s: waited %.3f s, used %.4f s CPU\n", what, wall, cpu);
    CHECK(wall >= 0.45);
    if (cpu >= 0.1)
        fprintf(stderr, "%s: the waiting thread spun (%.3f s CPU)\n", what, cpu);
    CHECK(cpu < 0.1);
}

static void test_external_sleeps(void)
{
    weft_pool *pool;
    weft_pool_config cfg = {.workers = 2, .name = "ws"};
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);

    STAGE("external thread sleeps in weft_flow_close");
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    CHECK_EQ(weft_spawn(&f, sleepy_task, NULL), 0);
    double w0 = now_s(), c0 = rusage_thread_s(), t0 = thread_cpu_s();
    CHECK_EQ(weft_flow_close(&f), 0);
    double wall = now_s() - w0, cpu = rusage_thread_s() - c0, tcpu = thread_cpu_s() - t0;
    check_slept("weft_flow_close", wall, cpu > tcpu ? cpu : tcpu);

    STAGE("external thread sleeps in weft_join");
    w0 = now_s(), c0 = rusage_thread_s();
    CHECK_EQ(weft_join(sleepy_task, NULL, nothing_task, NULL), 0);
    check_slept("weft_join", now_s() - w0, rusage_thread_s() - c0);

    STAGE("external thread sleeps in weft_for");
    w0 = now_s(), c0 = rusage_thread_s();
    CHECK_EQ(weft_for(pool, 0, 1, 1, sleepy_range, NULL), 0);
    check_slept("weft_for", now_s() - w0, rusage_thread_s() - c0);

    CHECK_EQ(weft_pool_destroy(pool), 0);
}

/* ---- a waiting worker does not spin either ------------------------------- */

static double g_worker_wait_wall, g_worker_wait_cpu;

static int waiter_task(void *p)
{
    weft_pool *other = p;
    weft_flow h;
    CHECK_EQ(weft_flow_open(&h, other), 0);
    CHECK_EQ(weft_spawn(&h, sleepy_task, NULL), 0);
    double w0 = now_s(), c0 = thread_cpu_s();
    CHECK_EQ(weft_flow_close(&h), 0);
    g_worker_wait_wall = now_s() - w0;
    g_worker_wait_cpu = thread_cpu_s() - c0;
    return 0;
}

static void test_worker_wait_cpu(void)
{
    STAGE("worker waiting on another pool");
    weft_pool *a, *b;
    weft_pool_config ca = {.workers = 1, .name = "wa"}, cb = {.workers = 1, .name = "wb"};
    CHECK_EQ(weft_pool_create(&a, &ca), 0);
    CHECK_EQ(weft_pool_create(&b, &cb), 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, a), 0);
    CHECK_EQ(weft_spawn(&f, waiter_task, b), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    printf("worker wait: waited %.3f s, used %.4f s CPU\n", g_worker_wait_wall, g_worker_wait_cpu);
    CHECK(g_worker_wait_wall >= 0.45);
    CHECK(g_worker_wait_cpu < 0.1);
    CHECK_EQ(weft_pool_destroy(a), 0);
    CHECK_EQ(weft_pool_destroy(b), 0);
}

int main(void)
{
    watchdog_start(120);
    unsetenv("WEFT_WORKERS");
    double t0 = now_s();
    test_worker_runs_children();
    printf("worker runs children: ok (%.2f s)\n", now_s() - t0);
    t0 = now_s();
    test_worker_runs_other_work();
    printf("worker runs other work: ok (%.2f s)\n", now_s() - t0);
    test_external_sleeps();
    test_worker_wait_cpu();
    printf("sched_wait: ok\n");
    return 0;
}
