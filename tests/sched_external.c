/*
 * External threads (threads that are no pool's workers):
 *   - several threads each open a flow and spawn hundreds of thousands of
 *     tiny tasks at once, on one shared pool and on the default pool: every
 *     task runs exactly once, on a worker of the flow's pool, and only
 *     before the close returns;
 *   - several threads feed one shared flow, opened by main and closed, after
 *     the feeders are done, by main or by yet another thread, while the
 *     tasks also spawn into it themselves;
 *   - weft_join from external threads (concurrently): both halves run, on
 *     default-pool workers, with the contract's result rule.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <stdbool.h>

enum { NTHREADS = 4 };

typedef struct counter {
    _Alignas(64) atomic_long runs;
    atomic_int bad;
    const char *prefix;     /* expected worker thread-name prefix */
    unsigned    nworkers;
} counter;

static int tiny_task(void *p)
{
    counter *c = p;
    int idx = weft_worker_index();
    if (idx < 0 || (unsigned)idx >= c->nworkers)
        atomic_store(&c->bad, 1);
    atomic_fetch_add_explicit(&c->runs, 1, memory_order_relaxed);
    return 0;
}

static int tiny_task_named(void *p)
{
    counter *c = p;
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    if (strncmp(name, c->prefix, strlen(c->prefix)) != 0)
        atomic_store(&c->bad, 2);
    return tiny_task(p);
}

/* ---- many threads, each its own flow ------------------------------------ */

typedef struct own_flow_arg {
    weft_pool *pool; /* NULL: the default pool */
    long       tasks;
    counter    c;
} own_flow_arg;

static pthread_barrier_t g_start;

static void *own_flow_thread(void *p)
{
    own_flow_arg *a = p;
    CHECK_EQ(weft_worker_index(), -1);
    CHECK(weft_current_flow() == NULL);
    pthread_barrier_wait(&g_start);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, a->pool), 0);
    for (long i = 0; i < a->tasks; i++)
        CHECK_EQ(weft_spawn(&f, (i & 1023) == 0 ? tiny_task_named : tiny_task, &a->c), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    /* Read right after the close: every task has run, none is pending. */
    CHECK_EQ(atomic_load(&a->c.runs), a->tasks);
    CHECK_EQ(atomic_load(&a->c.bad), 0);
    return NULL;
}

static void test_own_flows(weft_pool *pool, const char *prefix)
{
    own_flow_arg args[NTHREADS];
    pthread_t t[NTHREADS];
    long tasks = SCALED(250000);
    weft_pool *effective = pool ? pool : weft_default_pool();
    CHECK(effective != NULL);
    CHECK_EQ(pthread_barrier_init(&g_start, NULL, NTHREADS), 0);
    for (int i = 0; i < NTHREADS; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].pool = pool;
        args[i].tasks = tasks + i; /* distinct counts catch cross-talk */
        args[i].c.prefix = prefix;
        args[i].c.nworkers = weft_pool_workers(effective);
        t[i] = start_thread(own_flow_thread, &args[i]);
    }
    for (int i = 0; i < NTHREADS; i++)
        join_thread(t[i]);
    pthread_barrier_destroy(&g_start);
}

/* ---- many feeders, one shared flow, a third party closes ----------------- */

typedef struct feeder_arg {
    weft_flow *flow;
    long       tasks;
    counter    c;
} feeder_arg;

static counter g_respawned;

/* Some tasks spawn one more task into their own flow (the shared one). */
static int respawning_task(void *p)
{
    counter *c = p;
    tiny_task(c);
    weft_flow *f = weft_current_flow();
    CHECK(f != NULL);
    CHECK_EQ(weft_spawn(f, tiny_task, &g_respawned), 0);
    return 0;
}

static void *feeder_thread(void *p)
{
    feeder_arg *a = p;
    pthread_barrier_wait(&g_start);
    for (long i = 0; i < a->tasks; i++)
        CHECK_EQ(weft_spawn(a->flow, (i % 97) == 0 ? respawning_task : tiny_task, &a->c), 0);
    return NULL;
}

typedef struct closer_arg {
    weft_flow   *flow;
    pthread_t   *feeders;
    feeder_arg  *args;
    int          n;
} closer_arg;

static void *closer_thread(void *p)
{
    closer_arg *a = p;
    for (int i = 0; i < a->n; i++)
        join_thread(a->feeders[i]);
    CHECK_EQ(weft_flow_close(a->flow), 0);
    long respawns = 0;
    for (int i = 0; i < a->n; i++) {
        CHECK_EQ(atomic_load(&a->args[i].c.runs), a->args[i].tasks);
        CHECK_EQ(atomic_load(&a->args[i].c.bad), 0);
        respawns += (a->args[i].tasks + 96) / 97;
    }
    CHECK_EQ(atomic_load(&g_respawned.runs), respawns);
    return NULL;
}

/* third_party: a separate thread joins the feeders and closes; else main. */
static void test_shared_flow(weft_pool *pool, bool third_party)
{
    feeder_arg args[NTHREADS];
    pthread_t t[NTHREADS];
    long tasks = SCALED(100000);
    weft_flow f;
    memset(&g_respawned, 0, sizeof g_respawned);
    g_respawned.nworkers = weft_pool_workers(pool);
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    CHECK_EQ(pthread_barrier_init(&g_start, NULL, NTHREADS), 0);
    for (int i = 0; i < NTHREADS; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].flow = &f;
        args[i].tasks = tasks + 3 * i;
        args[i].c.nworkers = weft_pool_workers(pool);
        t[i] = start_thread(feeder_thread, &args[i]);
    }
    closer_arg ca = {&f, t, args, NTHREADS};
    if (third_party)
        join_thread(start_thread(closer_thread, &ca));
    else
        closer_thread(&ca);
    pthread_barrier_destroy(&g_start);
    /* The flow's memory is ours again: reuse it. */
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
}

/* ---- weft_join from external threads ------------------------------------ */

typedef struct half {
    atomic_int ran;
    int        ret;
    atomic_int bad;
} half;

static int half_fn(void *p)
{
    half *h = p;
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    if (strncmp(name, "weft-", 5) != 0 || weft_worker_index() < 0)
        atomic_store(&h->bad, 1);
    atomic_fetch_add(&h->ran, 1);
    return h->ret;
}

static void *join_thread_main(void *p)
{
    (void)p;
    static const int rets[][2] = {{0, 0}, {3, 0}, {0, 4}, {5, 6}};
    int rounds = (int)SCALED(200);
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 4; k++) {
            half a = {0, rets[k][0], 0}, b = {0, rets[k][1], 0};
            int want = rets[k][0] ? rets[k][0] : rets[k][1];
            CHECK_EQ(weft_join(half_fn, &a, half_fn, &b), want);
            CHECK_EQ(atomic_load(&a.ran), 1);
            CHECK_EQ(atomic_load(&b.ran), 1);
            CHECK_EQ(atomic_load(&a.bad) + atomic_load(&b.bad), 0);
        }
    }
    test_fib_arg f = {TEST_SANITIZED ? 18 : 24, 0};
    CHECK_EQ(test_fib_join(&f), 0);
    CHECK_EQ(f.r, TEST_SANITIZED ? 2584 : 46368);
    CHECK_EQ(weft_worker_index(), -1);
    return NULL;
}

static void test_join_external(void)
{
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        t[i] = start_thread(join_thread_main, NULL);
    for (int i = 0; i < NTHREADS; i++)
        join_thread(t[i]);
}

int main(void)
{
    watchdog_start(120);
    unsetenv("WEFT_WORKERS");
    weft_pool *pool;
    weft_pool_config cfg = {.workers = 2, .name = "ext"};
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);

    double t0 = now_s();
    STAGE("threads each with a flow, shared pool");
    test_own_flows(pool, "ext-");
    STAGE("threads each with a flow, default pool");
    test_own_flows(NULL, "weft-");
    printf("own flows: ok (%.2f s)\n", now_s() - t0);

    t0 = now_s();
    STAGE("feeders into one shared flow");
    int rounds = (int)SCALED(3);
    for (int r = 0; r < rounds; r++) {
        test_shared_flow(pool, false);
        test_shared_flow(pool, true);
    }
    weft_pool *one;
    weft_pool_config cfg1 = {.workers = 1, .name = "ext1"};
    CHECK_EQ(weft_pool_create(&one, &cfg1), 0);
    test_shared_flow(one, true);
    CHECK_EQ(weft_pool_destroy(one), 0);
    printf("shared flow: ok (%.2f s)\n", now_s() - t0);

    t0 = now_s();
    STAGE("weft_join from external threads");
    test_join_external();
    printf("external join: ok (%.2f s)\n", now_s() - t0);

    STAGE("destroy");
    CHECK_EQ(weft_pool_destroy(pool), 0);
    printf("sched_external: ok\n");
    return 0;
}
