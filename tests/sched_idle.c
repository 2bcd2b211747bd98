/*
 * Idle:
 *   - a pool with nothing to do uses under 1% of a core: after a burst of
 *     work, pools of 1, 2 and 8 workers and the default pool sit idle for a
 *     second; the CPU time of all their workers together (per-thread CPU
 *     clocks) stays under 0.01 s, and the whole process less the main
 *     thread (getrusage) under 0.05 s;
 *   - a spawn from any thread wakes a sleeper: after the pool has been idle
 *     ~50 ms, an external spawn completes; n tasks that each wait until all
 *     n run start on the n workers of an idle pool; a task's spawn wakes the
 *     other, sleeping, worker, which runs it; a task of one pool wakes
 *     another, idle, pool;
 *   - no lost wake-up: 100,000 rounds (scaled) alternating idleness and
 *     bursts of 1..3 tasks (some of which spawn one more), from one and from
 *     two external threads, on 1-, 2- and 8-worker pools. A lost wake-up is a
 *     hang: the watchdog reports the round.
 *
 * SPDX-License-Identifier: MIT
 */
#include "weft.h"
#include "test_common.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/resource.h>

enum { MAXW = WEFT_MAX_WORKERS };

/* ---- every worker at once: a gathering ---------------------------------- */

typedef struct gather {
    unsigned   n;
    atomic_int arrived;
    atomic_int timed_out;
    clockid_t  clocks[MAXW];
    atomic_int seen[MAXW];
} gather;

static int gather_task(void *p)
{
    gather *g = p;
    int idx = weft_worker_index();
    CHECK(idx >= 0 && (unsigned)idx < g->n);
    CHECK_EQ(atomic_fetch_add(&g->seen[idx], 1), 0);
    CHECK_EQ(pthread_getcpuclockid(pthread_self(), &g->clocks[idx]), 0);
    atomic_fetch_add(&g->arrived, 1);
    /* Each task holds its worker until all n have started: they can only
     * all start if every worker was woken. */
    double end = now_s() + 30;
    while ((unsigned)atomic_load(&g->arrived) < g->n) {
        if (now_s() > end) {
            atomic_store(&g->timed_out, 1);
            break;
        }
        sleep_us(20);
    }
    return 0;
}

/* Spawns one gathering task per worker from this external thread. */
static void gather_all(weft_pool *pool, gather *g)
{
    memset(g, 0, sizeof *g);
    g->n = weft_pool_workers(pool);
    CHECK(g->n >= 1 && g->n <= MAXW);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    for (unsigned i = 0; i < g->n; i++)
        CHECK_EQ(weft_spawn(&f, gather_task, g), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g->timed_out), 0);
    for (unsigned i = 0; i < g->n; i++)
        CHECK_EQ(atomic_load(&g->seen[i]), 1);
}

static double clocks_sum(const gather *g)
{
    double s = 0;
    for (unsigned i = 0; i < g->n; i++) {
        struct timespec ts;
        CHECK_EQ(clock_gettime(g->clocks[i], &ts), 0);
        s += (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    return s;
}

static double rusage_s(int who)
{
    struct rusage ru;
    CHECK_EQ(getrusage(who, &ru), 0);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* ---- idle CPU ------------------------------------------------------------ */

static atomic_long g_count;

static int count_task(void *p)
{
    (void)p;
    atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
    return 0;
}

static void burst(weft_pool *pool, long n)
{
    atomic_store(&g_count, 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, pool), 0);
    for (long i = 0; i < n; i++)
        CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_count), n);
}

static void test_idle_cpu(void)
{
    STAGE("idle CPU");
    static const unsigned counts[] = {1, 2, 8};
    enum { NP = 4 };
    weft_pool *pools[NP];
    gather *g = calloc(NP, sizeof *g);
    CHECK(g != NULL);
    for (int i = 0; i < NP; i++) {
        if (i < 3) {
            weft_pool_config cfg = {.workers = counts[i], .name = "idle"};
            CHECK_EQ(weft_pool_create(&pools[i], &cfg), 0);
        } else {
            pools[i] = weft_default_pool();
            CHECK(pools[i] != NULL);
        }
        burst(pools[i], SCALED(100000));
        gather_all(pools[i], &g[i]);
    }
    /* Let the idle rounds end: on a loaded machine they can outlast any
     * fixed sleep, so wait until every worker is seen blocked (where /proc
     * names no thread, 200 ms). */
    if (!wait_threads_parked("idle-", 60) || !wait_threads_parked("weft-", 60))
        sleep_us(200000);
    double w0[NP], p0 = rusage_s(RUSAGE_SELF) - rusage_s(RUSAGE_THREAD), t0 = now_s();
    for (int i = 0; i < NP; i++)
        w0[i] = clocks_sum(&g[i]);
    sleep_us(1000000);
    double wall = now_s() - t0;
    double proc = rusage_s(RUSAGE_SELF) - rusage_s(RUSAGE_THREAD) - p0;
    double total = 0;
    for (int i = 0; i < NP; i++) {
        double used = clocks_sum(&g[i]) - w0[i];
        total += used;
        printf("idle pool of %u workers: %.5f s CPU over %.2f s\n", g[i].n, used, wall);
    }
    printf("idle: all workers %.5f s, process less main thread %.5f s\n", total, proc);
    CHECK(total < 0.01 * wall);
    /* ThreadSanitizer's own background thread is counted in RUSAGE_SELF. */
    CHECK(proc < (TEST_TSAN ? 0.2 : 0.05));
    /* And the pools still work. */
    for (int i = 0; i < NP; i++)
        burst(pools[i], 1000);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_pool_destroy(pools[i]), 0);
    free(g);
}

/* ---- wake-ups ------------------------------------------------------------ */

static void test_external_wakes(void)
{
    STAGE("external spawn wakes an idle pool");
    for (unsigned w = 1; w <= 3; w++) {
        weft_pool *pool;
        weft_pool_config cfg = {.workers = w, .name = "wake"};
        CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
        for (int r = 0; r < 5; r++) {
            ROUND(r);
            sleep_us(50000);
            burst(pool, 1 + r);
            sleep_us(50000);
            gather g;
            gather_all(pool, &g);
        }
        CHECK_EQ(weft_pool_destroy(pool), 0);
    }
    STAGE("external spawn wakes an idle, oversubscribed pool");
    weft_pool *pool;
    weft_pool_config cfg = {.workers = 8, .name = "wake"};
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
    for (int r = 0; r < 3; r++) {
        ROUND(r);
        sleep_us(50000);
        gather g;
        gather_all(pool, &g);
    }
    CHECK_EQ(weft_pool_destroy(pool), 0);
}

typedef struct wake_arg {
    atomic_int w_started;
    int        w_index;
    int        p_index;
    atomic_long dummies;
} wake_arg;

static int w_task(void *p)
{
    wake_arg *a = p;
    a->w_index = weft_worker_index();
    atomic_store_explicit(&a->w_started, 1, memory_order_release);
    return 0;
}

static int dummy_task(void *p)
{
    wake_arg *a = p;
    atomic_fetch_add(&a->dummies, 1);
    return 0;
}

/* Spawns W, then keeps its own worker busy until W has started: only the
 * other worker, asleep when W was spawned, can run it. A further spawn
 * every millisecond gives the scheduler a chance to hand work over if it
 * only does so at spawns. */
static int p_task(void *p)
{
    wake_arg *a = p;
    a->p_index = weft_worker_index();
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, NULL), 0);
    CHECK_EQ(weft_spawn(&f, w_task, a), 0);
    double end = now_s() + 30, next = now_s() + 0.001;
    long spawned = 0;
    while (!atomic_load_explicit(&a->w_started, memory_order_acquire)) {
        CHECK(now_s() < end);
        if (now_s() > next) {
            CHECK_EQ(weft_spawn(&f, dummy_task, a), 0);
            spawned++;
            next = now_s() + 0.001;
        }
    }
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&a->dummies), spawned);
    return 0;
}

static void test_worker_wakes(void)
{
    STAGE("a worker's spawn wakes a sleeping worker");
    weft_pool *pool;
    weft_pool_config cfg = {.workers = 2, .name = "wake"};
    CHECK_EQ(weft_pool_create(&pool, &cfg), 0);
    for (int r = 0; r < 5; r++) {
        ROUND(r);
        sleep_us(50000);
        wake_arg a;
        memset(&a, 0, sizeof a);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, pool), 0);
        CHECK_EQ(weft_spawn(&f, p_task, &a), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK(a.p_index >= 0 && a.w_index >= 0);
        CHECK(a.p_index != a.w_index);
    }
    CHECK_EQ(weft_pool_destroy(pool), 0);
}

/* A task of one pool spawns into a flow of another, idle, pool. */
static weft_pool *g_target;

static int cross_spawner(void *p)
{
    (void)p;
    atomic_store(&g_count, 0);
    weft_flow f;
    CHECK_EQ(weft_flow_open(&f, g_target), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_spawn(&f, count_task, NULL), 0);
    CHECK_EQ(weft_flow_close(&f), 0);
    CHECK_EQ(atomic_load(&g_count), 3);
    return 0;
}

static void test_cross_pool_wakes(void)
{
    STAGE("a worker of another pool wakes an idle pool");
    weft_pool *src;
    weft_pool_config cs = {.workers = 1, .name = "src"}, ct = {.workers = 2, .name = "dst"};
    CHECK_EQ(weft_pool_create(&src, &cs), 0);
    CHECK_EQ(weft_pool_create(&g_target, &ct), 0);
    for (int r = 0; r < 5; r++) {
        ROUND(r);
        sleep_us(50000);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, src), 0);
        CHECK_EQ(weft_spawn(&f, cross_spawner, NULL), 0);
        CHECK_EQ(weft_flow_close(&f), 0);
    }
    CHECK_EQ(weft_pool_destroy(src), 0);
    CHECK_EQ(weft_pool_destroy(g_target), 0);
}

/* ---- no lost wake-up ----------------------------------------------------- */

typedef struct stress_task_arg {
    atomic_long *count;
    int          spawn_child;
} stress_task_arg;

static int stress_child(void *p)
{
    atomic_fetch_add_explicit((atomic_long *)p, 1, memory_order_relaxed);
    return 0;
}

static int stress_task(void *p)
{
    stress_task_arg *a = p;
    atomic_fetch_add_explicit(a->count, 1, memory_order_relaxed);
    if (a->spawn_child)
        CHECK_EQ(weft_spawn(weft_current_flow(), stress_child, a->count), 0);
    return 0;
}

typedef struct stress_arg {
    weft_pool *pool;
    long       first, rounds;
    int        report; /* this thread reports its round to the watchdog */
} stress_arg;

static void *stress_thread(void *p)
{
    stress_arg *s = p;
    atomic_long count;
    for (long r = s->first; r < s->first + s->rounds; r++) {
        if (s->report)
            ROUND(r);
        uint64_t h = mix64((uint64_t)r);
        int k = 1 + (int)(h % 3);
        stress_task_arg args[3];
        long expect = 0;
        atomic_store_explicit(&count, 0, memory_order_relaxed);
        weft_flow f;
        CHECK_EQ(weft_flow_open(&f, s->pool), 0);
        for (int i = 0; i < k; i++) {
            args[i].count = &count;
            args[i].spawn_child = ((h >> (8 + i)) & 7) == 0;
            expect += 1 + args[i].spawn_child;
            CHECK_EQ(weft_spawn(&f, stress_task, &args[i]), 0);
        }
        CHECK_EQ(weft_flow_close(&f), 0);
        CHECK_EQ(atomic_load_explicit(&count, memory_order_relaxed), expect);
        /* Idleness: mostly none, often a little, sometimes long enough for
         * every worker to park. */
        unsigned sel = (unsigned)(h >> 20) & 63;
        if (sel < 16)
            sleep_us((long)((h >> 32) % 51));
        else if (sel == 16)
            sleep_us(200 + (long)((h >> 32) % 300));
    }
    return NULL;
}

static void test_lost_wakeup(void)
{
    /* Cheap enough to run more rounds than the usual scale under sanitizers. */
    long total = SCALED(100000) * (TEST_SANITIZED ? 3 : 1);
    long a = total * 2 / 5, b = total * 2 / 5, c = total - a - b;
    double t0 = now_s();

    STAGE("no lost wake-up: 1 worker, 1 external thread");
    weft_pool *p1, *p2;
    weft_pool_config c1 = {.workers = 1, .name = "lw"}, c2 = {.workers = 2, .name = "lw"};
    CHECK_EQ(weft_pool_create(&p1, &c1), 0);
    CHECK_EQ(weft_pool_create(&p2, &c2), 0);
    stress_arg s1 = {p1, 0, a, 1};
    stress_thread(&s1);

    STAGE("no lost wake-up: 2 workers, 1 external thread");
    stress_arg s2 = {p2, a, b, 1};
    stress_thread(&s2);

    STAGE("no lost wake-up: 2 workers and 1 worker, 2 external threads each");
    stress_arg s3[4] = {{p2, a + b, c / 2, 1}, {p2, a + b + c / 2, c - c / 2, 0},
                        {p1, 7 * total, c / 2, 0}, {p1, 9 * total, c / 2, 0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = start_thread(stress_thread, &s3[i]);
    for (int i = 0; i < 4; i++)
        join_thread(t[i]);
    CHECK_EQ(weft_pool_destroy(p1), 0);
    CHECK_EQ(weft_pool_destroy(p2), 0);

    STAGE("no lost wake-up: 8 workers (oversubscribed), 1 external thread");
    weft_pool *p8;
    weft_pool_config c8 = {.workers = 8, .name = "lw"};
    CHECK_EQ(weft_pool_create(&p8, &c8), 0);
    stress_arg s8 = {p8, 11 * total, c, 1};
    stress_thread(&s8);
    CHECK_EQ(weft_pool_destroy(p8), 0);
    printf("lost wake-up stress: %ld rounds, ok (%.2f s)\n", total + 2 * c, now_s() - t0);
}

int main(void)
{
    watchdog_start(60);
    unsetenv("WEFT_WORKERS");
    test_idle_cpu();
    printf("idle CPU: ok\n");
    double t0 = now_s();
    test_external_wakes();
    test_worker_wakes();
    test_cross_pool_wakes();
    printf("wake-ups: ok (%.2f s)\n", now_s() - t0);
    test_lost_wakeup();
    printf("sched_idle: ok\n");
    return 0;
}
